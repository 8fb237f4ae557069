// kuat benchmark <archive> [--batch-size 64] [--epochs 1]
//
// Decode throughput with the reference decode, batches spread over the thread pool.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "args.h"
#include "commands.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/archive.h"

namespace kuat_cli {

int cmd_benchmark(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {{"batch-size", 0, true, "samples per batch (default 64)"},
                                         {"epochs", 0, true, "passes over the archive (default 1)"},
                                         {"shuffle", 0, false, "random sample order"},
                                         {"help", 'h', false, "show this help"}};
  const Args args(argc, argv, 2, specs);
  if (args.has("help")) {
    std::printf("usage: kuat benchmark <archive> [options]\n\n%s", options_help(specs).c_str());
    return 0;
  }
  args.expect_positional(1, "<archive>");
  const std::uint64_t batch = args.get_uint("batch-size", 64), epochs = args.get_uint("epochs", 1);
  if (batch == 0 || epochs == 0) throw UsageError("--batch-size and --epochs must be positive");
  const lowbit::kuat::Archive a(args.positional()[0]);
  std::vector<std::uint64_t> order(a.size());
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  std::mt19937_64 rng(0);
  std::size_t max_bytes = 0;
  for (std::uint64_t i = 0; i < (a.fixed_shape() ? 1 : a.size()); ++i) max_bytes = std::max(max_bytes, a.sample_geometry(i).pixel_bytes());
  std::vector<std::uint8_t> out(batch * max_bytes);
  std::uint64_t images = 0, bytes = 0, batches = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t e = 0; e < epochs; ++e) {
    if (args.has("shuffle")) std::shuffle(order.begin(), order.end(), rng);
    for (std::uint64_t b = 0; b < a.size(); b += batch) {
      const std::uint64_t n = std::min<std::uint64_t>(batch, a.size() - b);
      lowbit::parallel_for(0, n, 4, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t j = lo; j < hi; ++j) a.decode(order[b + j], out.data() + j * max_bytes);
      });
      for (std::uint64_t j = 0; j < n; ++j) bytes += a.sample_geometry(order[b + j]).pixel_bytes();
      images += n;
      ++batches;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %llu images in %llu batches of %llu, %zu threads, reference decode\n", a.path().c_str(),
              static_cast<unsigned long long>(images), static_cast<unsigned long long>(batches),
              static_cast<unsigned long long>(batch), lowbit::default_thread_pool().size());
  std::printf("  %.0f img/s   %.3f ms/batch   %.3f GB/s decoded\n", images / s, 1e3 * s / batches, bytes / s / 1e9);
  return 0;
}

}  // namespace kuat_cli

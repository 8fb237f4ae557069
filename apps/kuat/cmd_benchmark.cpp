// kuat benchmark <archive> [--batch-size/-b 64] [--epochs/-e 1] [--device cpu] [...]
//
// --device other than cpu: this executable decodes on the CPU only, so it hands the command to
// the Python benchmark (`python -m kuat benchmark`, PyTorch decode on the device), run by
// $KUAT_PYTHON or the python beside this executable (a venv's bin/); without one it says so.
//
// Throughput of the batch loader (lowbit::kuat::Loader, the engine behind KuatDataset): shuffled
// batches decoded by its worker threads, as training reads them. With --raw it also times the
// no-compression limit on the same batches: memcpy of each sample's pixels from a decoded
// in-memory copy of the archive (one thread, like numpy indexing of a raw array).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "lowbit/core/aligned_buffer.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/loader.h"

namespace kuat_cli {
namespace {

using Clock = std::chrono::steady_clock;

// The raw copy must fit comfortably in memory; beyond this --raw is refused.
constexpr std::uint64_t kRawLimitBytes = std::uint64_t{4} << 30;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Run {
  std::uint64_t images = 0, batches = 0;
  double seconds = 0;
};

Run run_loader(const lowbit::kuat::Loader& loader, std::uint64_t first_epoch, std::uint64_t epochs) {
  Run r;
  const auto t0 = Clock::now();
  for (std::uint64_t e = first_epoch; e < first_epoch + epochs; ++e) {
    auto reader = loader.read_epoch(e);
    while (auto batch = reader->next()) {
      r.images += batch->size();
      ++r.batches;
    }
  }
  r.seconds = seconds_since(t0);
  return r;
}

// Epochs first_epoch .. first_epoch + epochs - 1 of memcpy from `raw` (the decoded archive).
Run run_raw(const lowbit::AlignedBuffer<std::uint8_t>& raw, std::size_t bytes, const lowbit::kuat::Loader& loader,
            std::uint64_t first_epoch, std::uint64_t epochs) {
  lowbit::AlignedBuffer<std::uint8_t> out(loader.options().batch_size * bytes);
  std::vector<std::uint64_t> order(loader.samples_per_rank());
  Run r;
  Clock::duration spent{};
  for (std::uint64_t e = first_epoch; e < first_epoch + epochs; ++e) {
    for (std::uint64_t q = 0; q < order.size(); ++q) order[q] = loader.sample_at(e, q);  // not timed
    const auto t0 = Clock::now();
    for (std::uint64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const std::uint64_t first = b * loader.options().batch_size;
      const std::uint64_t n = std::min<std::uint64_t>(loader.options().batch_size, order.size() - first);
      for (std::uint64_t j = 0; j < n; ++j) std::memcpy(out.data() + j * bytes, raw.data() + order[first + j] * bytes, bytes);
      r.images += n;
      ++r.batches;
    }
    spent += Clock::now() - t0;
  }
  r.seconds = std::chrono::duration<double>(spent).count();
  return r;
}

// Replaces this process with `python -m kuat benchmark ARGS...`; returns only if that fails.
int run_python_benchmark(int argc, char** argv, const std::string& device) {
  std::vector<std::string> candidates;
  if (const char* explicit_python = std::getenv("KUAT_PYTHON"); explicit_python && *explicit_python) {
    candidates.push_back(explicit_python);
  } else {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      std::string dir(self, static_cast<std::size_t>(n));
      dir = dir.substr(0, dir.rfind('/') + 1);
      candidates.push_back(dir + "python3");
      candidates.push_back(dir + "python");
    }
  }
  for (const std::string& python : candidates) {
    if (access(python.c_str(), X_OK) != 0) continue;
    std::vector<std::string> args = {python, "-m", "kuat", "benchmark"};
    for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    std::fflush(stdout);
    execv(python.c_str(), cargs.data());
  }
  if (const char* explicit_python = std::getenv("KUAT_PYTHON"); explicit_python && *explicit_python) {
    const bool exists = access(explicit_python, F_OK) == 0;
    throw lowbit::InvalidArgument("--device " + device +
                                  ": this kuat executable decodes on the CPU only; device decode runs in PyTorch, "
                                  "and KUAT_PYTHON points to " +
                                  (exists ? "a file that cannot be executed" : "a missing file") + ": '" +
                                  explicit_python + "'");
  }
  throw lowbit::InvalidArgument("--device " + device +
                                ": this kuat executable decodes on the CPU only; device decode runs in PyTorch "
                                "(`python -m kuat benchmark ARCHIVE --device " + device +
                                "`), and no Python was found beside it (set KUAT_PYTHON)");
}

}  // namespace

int cmd_benchmark(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {
      {"batch-size", 'b', true, "samples per batch (default 64)"},
      {"epochs", 'e', true, "timed passes over the archive, after one warm-up pass (default 1)"},
      {"device", 0, true, "cpu (default: this C++ loader) or a torch device such as cuda (PyTorch decode)"},
      {"threads", 0, true, "loader worker threads (default: LOWBIT_NUM_THREADS or all cores)"},
      {"layout", 0, true, "NHWC (default) or NCHW"},
      {"dtype", 0, true, "uint8 (default) or float32"},
      {"sequential", 0, false, "read in archive order instead of shuffled"},
      {"raw", 0, false, "also time memcpy of the same batches from a decoded in-memory copy"},
      {"help", 'h', false, "show this help"}};
  const Args args(argc, argv, 2, specs);
  if (args.has("help")) {
    std::printf("usage: kuat benchmark <archive> [options]\n\n%s", options_help(specs).c_str());
    return 0;
  }
  args.expect_positional(1, "<archive>");
  const std::string device = args.get("device", "cpu");
  if (device != "cpu") return run_python_benchmark(argc, argv, device);
  const std::uint64_t batch = args.get_uint("batch-size", 64), epochs = args.get_uint("epochs", 1);
  if (batch == 0 || epochs == 0) throw UsageError("--batch-size and --epochs must be positive");

  const std::string path = args.positional()[0];
  auto archive = std::make_shared<const lowbit::kuat::Archive>(path);
  if (!archive->fixed_shape()) {
    throw lowbit::InvalidArgument(path + ": holds images of different sizes; the batch loader needs one size "
                                         "(convert with --width/--height)");
  }
  lowbit::kuat::LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = !args.has("sequential");
  o.num_threads = args.get_uint("threads", 0);
  o.layout = lowbit::kuat::parse_layout(args.get("layout", "NHWC"));
  o.dtype = lowbit::kuat::parse_pixel_type(args.get("dtype", "uint8"));
  const lowbit::kuat::Loader loader({archive->view()}, o, {archive});

  run_loader(loader, 0, 1);  // warm-up: page the archive in, allocate the batch buffers
  const Run r = run_loader(loader, 1, epochs);
  const auto& g = archive->geometry();
  const double sample_bytes = double(g.pixel_bytes()) * (o.dtype == lowbit::kuat::PixelType::UInt8 ? 1 : 4);
  const double ips = r.images / r.seconds;
  const std::size_t threads = loader.options().num_threads;
  std::printf("%s: %llu images (%ux%ux%u) in %llu batches of %llu, %s, %s %s, %zu threads, %s\n", path.c_str(),
              static_cast<unsigned long long>(r.images), g.height, g.width, g.channels,
              static_cast<unsigned long long>(r.batches), static_cast<unsigned long long>(batch),
              o.shuffle ? "shuffled" : "sequential", lowbit::kuat::layout_name(o.layout),
              lowbit::kuat::pixel_type_name(o.dtype), threads, lowbit::simd_level_name(lowbit::simd_level()));
  std::printf("  %.0f img/s   %.0f img/s per thread   %.3f ms/batch   %.3f ms per 64 images   %.3f GB/s decoded\n", ips,
              ips / threads, 1e3 * r.seconds / r.batches, 64e3 / ips, ips * sample_bytes / 1e9);
  std::printf("  archive %.1f MB, raw pixels %.1f MB (%.1fx smaller)\n", archive->file_bytes() / 1e6,
              double(archive->size()) * g.pixel_bytes() / 1e6,
              double(archive->size()) * g.pixel_bytes() / double(archive->file_bytes()));
  if (args.has("raw")) {
    if (archive->size() * g.pixel_bytes() > kRawLimitBytes) {
      std::printf("  raw gather: skipped, the decoded copy would exceed %llu GB\n",
                  static_cast<unsigned long long>(kRawLimitBytes >> 30));
    } else {
      const std::size_t bytes = g.pixel_bytes();
      lowbit::AlignedBuffer<std::uint8_t> pixels(archive->size() * bytes);
      for (std::uint64_t i = 0; i < archive->size(); ++i) archive->decode(i, pixels.data() + i * bytes);
      run_raw(pixels, bytes, loader, 0, 1);
      const Run raw = run_raw(pixels, bytes, loader, 1, epochs);
      const double raw_ips = raw.images / raw.seconds;
      std::printf("  raw uint8 gather (memcpy, 1 thread, same batches): %.0f img/s; loader = %.2fx raw\n", raw_ips,
                  ips / raw_ips);
    }
  }
  return 0;
}

}  // namespace kuat_cli

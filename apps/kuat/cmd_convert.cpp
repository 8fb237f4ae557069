// kuat convert <input> <output.kuat> [options]
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "args.h"
#include "commands.h"
#include "lowbit/kuat/convert.h"

namespace kuat_cli {

namespace {
const std::vector<OptionSpec> kSpecs = {
    {"format", 'f', true, "input format: auto, idx, cifar, images, imagenet (default auto)"},
    {"bits", 'b', true, "codebook training precision, 1-8 bits per channel (default 4)"},
    {"codebook-size", 0, true, "codebook entries K, 2-65536 (default 512)"},
    {"width", 'W', true, "target width (with --height); default: native sizes"},
    {"height", 'H', true, "target height (with --width)"},
    {"resize", 0, true, "crop (shorter side, centre crop; default) or stretch"},
    {"patch", 0, true, "patch size, 2 or 4 (default 2)"},
    {"channels", 0, true, "1 (grayscale) or 3 (RGB); default: the source's"},
    {"codebook", 0, true, "reuse the codebook of another .kuat archive"},
    {"shard", 0, true, "convert shard i/N (samples with index % N == i)"},
    {"split", 0, true, "idx/cifar split: train or test (default train)"},
    {"labels", 0, true, "images: a 'path,label' file"},
    {"classes", 0, true, "class names to store, one per line in label order (e.g. for idx files)"},
    {"strict", 0, false, "fail on the first broken image instead of skipping it"},
    {"max-pixels", 0, true, "refuse images above this many pixels (default 178956970, PIL's bomb limit)"},
    {"background", 0, true, "R,G,B that transparent pixels are composited onto (default 0,0,0)"},
    {"exif-transpose", 0, false, "apply the EXIF orientation (as PIL's ImageOps.exif_transpose)"},
    {"threads", 0, true, "worker threads (default: all cores)"},
    {"iterations", 0, true, "k-means iterations (default 20)"},
    {"seed", 0, true, "random seed (default 1234)"},
    {"limit", 0, true, "convert at most this many samples"},
    {"quiet", 'q', false, "no progress output"},
    {"help", 'h', false, "show this help"},
};
// Ctrl-C / SIGTERM / SIGHUP: the first one asks the converter to stop (it removes its temporary
// file and throws lowbit::Interrupted, which main() reports); the handler then reverts to the
// default action, so a second one ends the process at once.
std::atomic<bool> g_interrupt{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_interrupt(int) { g_interrupt.store(true, std::memory_order_relaxed); }

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    // A signal the parent ignores (nohup, a background job) stays ignored.
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
}
}  // namespace

int cmd_convert(int argc, char** argv) {
  const Args args(argc, argv, 2, kSpecs);
  if (args.has("help")) {
    std::printf("usage: kuat convert <input> <output.kuat> [options]\n\n%s", options_help(kSpecs).c_str());
    return 0;
  }
  args.expect_positional(2, "<input> <output.kuat>");
  lowbit::kuat::ConvertOptions o;
  o.source.format = args.get("format", "auto");
  o.source.split = args.get("split", "train");
  o.source.labels_file = args.get("labels");
  o.classes_file = args.get("classes");
  o.source.channels = static_cast<std::uint32_t>(args.get_uint("channels", 0));
  o.bits = static_cast<std::uint32_t>(args.get_uint("bits", 4));
  o.codebook_size = static_cast<std::uint32_t>(std::min<std::uint64_t>(args.get_uint("codebook-size", 512), UINT32_MAX));
  o.patch = static_cast<std::uint32_t>(args.get_uint("patch", 2));
  o.target.width = static_cast<std::uint32_t>(std::min<std::uint64_t>(args.get_uint("width", 0), 1u << 20));
  o.target.height = static_cast<std::uint32_t>(std::min<std::uint64_t>(args.get_uint("height", 0), 1u << 20));
  if (args.has("resize")) o.target.mode = lowbit::kuat::parse_resize_mode(args.get("resize"));
  o.codebook_from = args.get("codebook");
  if (args.has("shard")) lowbit::kuat::parse_shard(args.get("shard"), &o.shard_index, &o.shard_count);
  o.strict = args.has("strict");
  {
    // One message for every bad value (text, negative or 0): a pixel count of at least 1.
    const auto bad = [&] { return UsageError("--max-pixels needs a positive integer, got '" + args.get("max-pixels") + "'"); };
    try {
      o.source.decode.max_pixels = args.get_uint("max-pixels", lowbit::kuat::kDefaultMaxPixels);
    } catch (const UsageError&) {
      throw bad();
    }
    if (o.source.decode.max_pixels == 0) throw bad();
  }
  if (args.has("background")) o.source.decode.background = lowbit::kuat::parse_rgb(args.get("background"));
  o.source.decode.exif_transpose = args.has("exif-transpose");
  o.iterations = static_cast<std::uint32_t>(args.get_uint("iterations", 20));
  o.seed = args.get_uint("seed", 1234);
  o.limit = args.get_uint("limit", 0);
  const bool quiet = args.has("quiet");
  o.progress = !quiet;
  if (args.has("threads")) {
    const std::uint64_t t = args.get_uint("threads", 0);
    if (t == 0 || t > 1024) throw UsageError("--threads must be between 1 and 1024");
    ::setenv("LOWBIT_NUM_THREADS", std::to_string(t).c_str(), 1);  // sizes the default pool
  }
  const std::string& input = args.positional()[0];
  const std::string& output = args.positional()[1];
  auto warn = [quiet](const std::string& line) {
    if (!quiet) std::fprintf(stderr, "kuat convert: warning: %s\n", line.c_str());
  };
  o.interrupt = &g_interrupt;
  install_interrupt_handlers();
  const lowbit::kuat::ConvertStats s = lowbit::kuat::convert_dataset(input, output, o, warn);
  if (s.refused > 0) {
    std::fprintf(stderr, "kuat convert: warning: refused %llu input(s) over --max-pixels\n",
                 static_cast<unsigned long long>(s.refused));
  }
  if (s.skipped > s.refused) {
    std::fprintf(stderr, "kuat convert: warning: skipped %llu broken input(s)\n",
                 static_cast<unsigned long long>(s.skipped - s.refused));
  }
  if (!quiet && !s.ignored.empty()) {
    std::string listing;
    for (std::size_t i = 0; i < s.ignored.size() && i < 10; ++i) listing += (i ? ", " : " ") + s.ignored[i];
    if (s.ignored.size() > 10) listing += ", ... (" + std::to_string(s.ignored.size() - 10) + " more)";
    std::printf("ignored %zu hidden entr%s:%s\n", s.ignored.size(), s.ignored.size() == 1 ? "y" : "ies", listing.c_str());
  }
  if (!quiet) {
    // A tiny dataset can make the archive (header, codebook) bigger than its pixels: say so.
    char size[64];
    if (s.compression_ratio >= 1 || s.compression_ratio <= 0) {
      std::snprintf(size, sizeof size, "%.1fx smaller than", s.compression_ratio);
    } else {
      std::snprintf(size, sizeof size, "%.1fx larger than", 1.0 / s.compression_ratio);
    }
    std::printf("%s: %llu samples (%s), %s raw pixels, PSNR %.2f dB (worst %.2f dB), %.1f s (codebook %.1f s)\n",
                output.c_str(), static_cast<unsigned long long>(s.samples), s.format.c_str(), size, s.psnr,
                s.psnr_worst, s.seconds, s.training_seconds);
  }
  return 0;
}

}  // namespace kuat_cli

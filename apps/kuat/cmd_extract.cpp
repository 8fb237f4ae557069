// kuat extract <archive> <folder> [--count N | --indices a,b | --all]
#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/archive.h"
#include "lowbit/kuat/image.h"
#include "sample_selection.h"

namespace kuat_cli {

int cmd_extract(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {{"count", 'n', true, "the first N samples (default 16)"},
                                         {"indices", 0, true, "comma-separated sample numbers"},
                                         {"all", 0, false, "every sample"},
                                         {"quiet", 'q', false, "print nothing on success"},
                                         {"help", 'h', false, "show this help"}};
  const Args args(argc, argv, 2, specs);
  if (args.has("help")) {
    std::printf("usage: kuat extract <archive> <folder> [options]\n\nWrites <folder>/<index>_<label>.png per sample.\n\n%s",
                options_help(specs).c_str());
    return 0;
  }
  args.expect_positional(2, "<archive> <folder>");
  const lowbit::kuat::Archive a(args.positional()[0]);
  const std::filesystem::path dir = args.positional()[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir)) throw lowbit::IoError(lowbit::io_message(dir.string(), "cannot create the folder", ec.value()));
  const auto samples = selected_samples(args, a.size(), 16);
  for (std::uint64_t i : samples) {
    const lowbit::kuat::ImageGeometry g = a.sample_geometry(i);
    lowbit::kuat::Image img;
    img.height = g.height;
    img.width = g.width;
    img.channels = g.channels;
    img.pixels.resize(g.pixel_bytes());
    a.decode(i, img.pixels.data());
    char name[64];
    std::snprintf(name, sizeof name, "%06llu_%d.png", static_cast<unsigned long long>(i), a.label(i));
    lowbit::kuat::write_png((dir / name).string(), img);
  }
  if (!args.has("quiet")) std::printf("wrote %zu PNG files to %s\n", samples.size(), dir.string().c_str());
  return 0;
}

}  // namespace kuat_cli

// kuat: convert image datasets to Kuat archives and work with them.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "args.h"
#include "commands.h"
#include "lowbit/core/build_info.h"
#include "lowbit/core/error.h"

namespace {

const char* const kUsage =
    "usage: kuat <command> [options]\n"
    "\n"
    "commands:\n"
    "  convert <input> <output.kuat>   compress a dataset (idx, cifar, images, imagenet)\n"
    "  info <archive> [--json]         describe an archive\n"
    "  benchmark <archive>             decode throughput (-b batch size, -e epochs, --device)\n"
    "  verify <archive>                check every checksum and decode every sample\n"
    "  extract <archive> <folder>      write samples back as PNG files\n"
    "  preview <archive> <out.png>     PNG grid of originals beside decoded images\n"
    "\n"
    "`kuat <command> --help` lists a command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  // No command prints the help and succeeds, as `kuat --help` (and Kuat-Beta's `kuat`) does.
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("kuat %s\n", lowbit::version());
    return 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "convert") return kuat_cli::cmd_convert(argc, argv);
    if (cmd == "info") return kuat_cli::cmd_info(argc, argv);
    if (cmd == "benchmark") return kuat_cli::cmd_benchmark(argc, argv);
    if (cmd == "verify") return kuat_cli::cmd_verify(argc, argv);
    if (cmd == "extract") return kuat_cli::cmd_extract(argc, argv);
    if (cmd == "preview") return kuat_cli::cmd_preview(argc, argv);
    std::fprintf(stderr, "kuat: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const kuat_cli::UsageError& e) {
    std::fprintf(stderr, "kuat %s: %s (see `kuat %s --help`)\n", cmd.c_str(), e.what(), cmd.c_str());
    return 2;
  } catch (const lowbit::Interrupted&) {
    std::fprintf(stderr, "\nkuat %s: interrupted; nothing was written (the temporary file was removed)\n", cmd.c_str());
    return 130;  // 128 + SIGINT, as shells report an interrupted command
  } catch (const lowbit::InvalidArgument& e) {
    std::fprintf(stderr, "kuat %s: error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kuat %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}

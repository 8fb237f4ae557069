// kuat verify <archive>
#include <chrono>
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "lowbit/kuat/archive.h"

namespace kuat_cli {

int cmd_verify(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {{"quiet", 'q', false, "print nothing on success"},
                                         {"help", 'h', false, "show this help"}};
  const Args args(argc, argv, 2, specs);
  if (args.has("help")) {
    std::printf("usage: kuat verify <archive>\n\nChecks every section checksum and the zero padding, and decodes every sample.\n\n%s",
                options_help(specs).c_str());
    return 0;
  }
  args.expect_positional(1, "<archive>");
  const auto t0 = std::chrono::steady_clock::now();
  const lowbit::kuat::Archive a(args.positional()[0]);
  a.verify();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!args.has("quiet")) {
    std::printf("%s: OK (%llu samples, all checksums match, every sample decodes; %.2f s)\n", a.path().c_str(),
                static_cast<unsigned long long>(a.size()), s);
  }
  return 0;
}

}  // namespace kuat_cli

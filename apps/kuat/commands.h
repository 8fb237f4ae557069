// The kuat subcommands; each lives in its own cmd_<name>.cpp. They return the exit code and
// throw lowbit errors (main prints them) or UsageError.
#pragma once

namespace kuat_cli {

int cmd_convert(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_benchmark(int argc, char** argv);
int cmd_verify(int argc, char** argv);
int cmd_extract(int argc, char** argv);
int cmd_preview(int argc, char** argv);

}  // namespace kuat_cli

// kuat info <archive> [--json]
#include <cstdio>
#include <string>

#include "lowbit/kuat/archive_summary.h"
#include "args.h"
#include "commands.h"

namespace kuat_cli {

namespace {
const std::vector<OptionSpec> kSpecs = {{"json", 0, false, "print JSON instead of a table"},
                                        {"help", 'h', false, "show this help"}};

std::string number(const lowbit::kuat::Json* v, const char* fmt) {
  if (!v || !v->is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v->as_number());
  return buf;
}

std::string text(const lowbit::kuat::Json* v) { return v && v->is_string() ? v->as_string() : "-"; }
}  // namespace

int cmd_info(int argc, char** argv) {
  const Args args(argc, argv, 2, kSpecs);
  if (args.has("help")) {
    std::printf("usage: kuat info <archive> [--json]\n\n%s", options_help(kSpecs).c_str());
    return 0;
  }
  args.expect_positional(1, "<archive>");
  const lowbit::kuat::Archive a(args.positional()[0]);
  const lowbit::kuat::Json s = lowbit::kuat::archive_summary(a);
  if (args.has("json")) {
    std::printf("%s\n", s.dump(2).c_str());
    return 0;
  }
  const lowbit::kuat::Json& m = a.metadata();
  const lowbit::kuat::Json* conv = m.find("conversion");
  const lowbit::kuat::Json* quality = m.find("quality");
  auto row = [](const char* k, const std::string& v) { std::printf("  %-18s %s\n", k, v.c_str()); };
  std::printf("%s\n", a.path().c_str());
  row("format version", s.find("version")->as_string());
  row("samples", std::to_string(a.size()));
  row("image size", a.fixed_shape() ? std::to_string(a.geometry().height) + " x " + std::to_string(a.geometry().width) + " x " +
                                          std::to_string(a.channels())
                                    : "variable x " + std::to_string(a.channels()));
  row("patch", std::to_string(a.patch()) + " x " + std::to_string(a.patch()));
  row("codebook", std::to_string(a.codebook_size()) + " entries, " + std::to_string(a.index_bits()) + " bits/index, hash " +
                      s.find("codebook_hash")->as_string());
  row("training bits", number(conv ? conv->find("bits") : nullptr, "%.0f"));
  row("file size", number(s.find("file_bytes"), "%.0f") + " bytes");
  row("compression", number(s.find("compression_ratio"), "%.2fx") + " vs raw pixels");
  row("PSNR", number(quality ? quality->find("psnr") : nullptr, "%.2f dB") + " (worst " +
                  number(quality ? quality->find("psnr_worst") : nullptr, "%.2f dB") + ")");
  row("source", text(m.find("format")) + " " + text(m.find("source")));
  std::string classes = std::to_string(a.class_names().size());
  for (std::size_t c = 0; c < a.class_names().size() && c < 5; ++c) classes += (c ? ", " : ": ") + a.class_names()[c];
  if (a.class_names().size() > 5) classes += ", ...";
  row("classes", classes);
  const lowbit::kuat::Json* tool = m.find("tool");
  row("written by", tool ? text(tool->find("name")) + " " + text(tool->find("version")) : "-");
  return 0;
}

}  // namespace kuat_cli

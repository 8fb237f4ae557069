#include "args.h"

namespace kuat_cli {

Args::Args(int argc, char** argv, int first, const std::vector<OptionSpec>& specs) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-' || a == "--") {
      positional_.push_back(a);
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::string value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2);
      const auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
      for (const auto& s : specs) {
        if (s.long_name == name) spec = &s;
      }
    } else if (a.size() == 2) {
      for (const auto& s : specs) {
        if (s.short_name == a[1]) spec = &s;
      }
    }
    if (!spec) throw UsageError("unknown option '" + a + "'");
    if (spec->takes_value) {
      if (!has_inline) {
        if (i + 1 >= argc) throw UsageError("option '" + a + "' needs a value");
        value = argv[++i];
      }
      values_[spec->long_name] = value;
    } else {
      if (has_inline) throw UsageError("option '--" + spec->long_name + "' takes no value");
      values_[spec->long_name] = "1";
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::uint64_t Args::get_uint(const std::string& name, std::uint64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::string& v = it->second;
  std::size_t used = 0;
  unsigned long long x = 0;
  try {
    if (v.empty() || v[0] == '-') throw std::invalid_argument("negative");
    x = std::stoull(v, &used);
  } catch (const std::exception&) {
    throw UsageError("--" + name + " needs a non-negative integer, got '" + v + "'");
  }
  if (used != v.size()) throw UsageError("--" + name + " needs a non-negative integer, got '" + v + "'");
  return x;
}

void Args::expect_positional(std::size_t n, const std::string& what) const {
  if (positional_.size() != n) {
    throw UsageError("expected " + what + ", got " + std::to_string(positional_.size()) + " argument(s)");
  }
}

std::string options_help(const std::vector<OptionSpec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    std::string left = "  --" + s.long_name;
    if (s.short_name) left += ", -" + std::string(1, s.short_name);
    if (s.takes_value) left += " VALUE";
    if (left.size() < 26) left.resize(26, ' ');
    out += left + " " + s.help + "\n";
  }
  return out;
}

}  // namespace kuat_cli

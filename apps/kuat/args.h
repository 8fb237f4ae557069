// A small command-line option parser for the kuat subcommands.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace kuat_cli {

// Bad command-line usage: printed with the subcommand's usage, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string long_name;   // without "--"
  char short_name = 0;     // 0: none
  bool takes_value = false;
  std::string help;
};

class Args {
 public:
  // Parses argv[first..argc). Throws UsageError for unknown options or missing values.
  Args(int argc, char** argv, int first, const std::vector<OptionSpec>& specs);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::uint64_t get_uint(const std::string& name, std::uint64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Exactly n positional arguments, else UsageError naming what is expected.
  void expect_positional(std::size_t n, const std::string& what) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::string options_help(const std::vector<OptionSpec>& specs);

}  // namespace kuat_cli

#include "sample_selection.h"

#include <algorithm>
#include <sstream>
#include <string>

namespace kuat_cli {

std::vector<std::uint64_t> selected_samples(const Args& args, std::uint64_t archive_size, std::uint64_t default_count) {
  std::vector<std::uint64_t> out;
  if (args.has("indices")) {
    std::stringstream ss(args.get("indices"));
    std::string item;
    while (std::getline(ss, item, ',')) {
      std::size_t used = 0;
      unsigned long long v = 0;
      try {
        v = std::stoull(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != item.size()) throw UsageError("--indices needs comma-separated sample numbers, got '" + item + "'");
      if (v >= archive_size) {
        throw UsageError("sample " + item + " is out of range (the archive has " + std::to_string(archive_size) + ")");
      }
      out.push_back(v);
    }
    return out;
  }
  const std::uint64_t n = args.has("all") ? archive_size : std::min(archive_size, args.get_uint("count", default_count));
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(i);
  return out;
}

}  // namespace kuat_cli

// Which samples extract/preview work on: --indices a,b,c or the first --count.
#pragma once

#include <cstdint>
#include <vector>

#include "args.h"

namespace kuat_cli {

std::vector<std::uint64_t> selected_samples(const Args& args, std::uint64_t archive_size, std::uint64_t default_count);

}  // namespace kuat_cli

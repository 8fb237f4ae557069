// Writing a file so that readers see either the old file or the complete new one.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace lowbit {

// Calls write(stream) on a uniquely named temporary file beside `path`, then renames it onto
// `path`. If `write` throws or any I/O step fails, the temporary file is removed and `path` is
// left untouched; I/O failures throw IoError naming the file and the reason.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace lowbit

// Writing a file so that readers see either the old file or the complete new one, and reading a
// whole file with errors that name it.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace lowbit {

// Calls write(stream) on a uniquely named temporary file beside `path`, then renames it onto
// `path`. If `write` throws or any I/O step fails, the temporary file is removed and `path` is
// left untouched; I/O failures throw IoError naming the file and the reason.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// The bytes of the file at `path`. IoError naming the file and the reason when it cannot be opened,
// is a directory ("is a directory, not <what>"), is not a regular file (a device such as /dev/zero,
// a FIFO, a socket: "is not a regular file"), or a read fails; `what` names the expected kind
// ("GGUF file", "model file", "input file").
std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& what);

}  // namespace lowbit

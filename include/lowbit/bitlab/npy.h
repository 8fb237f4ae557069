// Minimal NumPy .npy I/O for float32 C-order arrays (what bitlab-run reads and writes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::bitlab {

struct FloatArray {
  std::vector<std::size_t> shape;
  std::vector<float> values;  // C order
};

// IoError unless the file is a version 1/2/3 .npy of little-endian float32 ('<f4') in C order.
FloatArray read_npy_f32(const std::string& path);
// The same for the bytes of a .npy file; `name` is used in error messages.
FloatArray parse_npy_f32(const std::uint8_t* data, std::size_t size, const std::string& name);
// Writes path.tmp then renames it over path.
void write_npy_f32(const std::string& path, const FloatArray& array);

}  // namespace lowbit::bitlab

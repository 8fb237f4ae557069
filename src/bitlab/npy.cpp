// .npy float32 reader and writer (format: numpy.lib.format, versions 1.0 to 3.0).
#include "lowbit/bitlab/npy.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string_view>

#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

namespace {

std::string header_value(const std::string& header, const std::string& key, const std::string& path) {
  const std::size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw IoError(io_message(path, "npy header lacks '" + key + "'"));
  const std::size_t colon = header.find(':', at);
  if (colon == std::string::npos) throw IoError(io_message(path, "malformed npy header"));
  return header.substr(colon + 1);
}

}  // namespace

FloatArray read_npy_f32(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path, "input file");
  return parse_npy_f32(bytes.data(), bytes.size(), path);
}

FloatArray parse_npy_f32(const std::uint8_t* data, std::size_t size, const std::string& path) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    throw IoError(io_message(path, "not a .npy file"));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw IoError(io_message(path, "truncated npy header"));
    for (int i = 0; i < 4; ++i) header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw IoError(io_message(path, "unsupported npy version " + std::to_string(major)));
  }
  if (bytes.size() < offset + header_len) throw IoError(io_message(path, "truncated npy header"));
  const std::string header(bytes.data() + offset, header_len);
  const std::string descr = header_value(header, "descr", path);
  if (descr.find("'<f4'") == std::string::npos) {
    throw IoError(io_message(path, "input must be little-endian float32 ('<f4'); convert with x.astype(np.float32)"));
  }
  if (header_value(header, "fortran_order", path).find("False") == std::string::npos) {
    throw IoError(io_message(path, "input must be in C order"));
  }
  std::string shape_text = header_value(header, "shape", path);
  const std::size_t open = shape_text.find('('), close = shape_text.find(')');
  if (open == std::string::npos || close == std::string::npos) throw IoError(io_message(path, "malformed npy shape"));
  shape_text = shape_text.substr(open + 1, close - open - 1);
  FloatArray array;
  std::size_t count = 1, pos = 0;
  while (pos < shape_text.size()) {
    while (pos < shape_text.size() && (shape_text[pos] == ' ' || shape_text[pos] == ',')) ++pos;
    if (pos >= shape_text.size()) break;
    std::size_t end = pos;
    while (end < shape_text.size() && shape_text[end] >= '0' && shape_text[end] <= '9') ++end;
    if (end == pos || end - pos > 18) throw IoError(io_message(path, "malformed npy shape"));
    const std::size_t dim = std::stoull(shape_text.substr(pos, end - pos));
    array.shape.push_back(dim);
    // The element count is checked against the data size below; stop before it can overflow.
    if (dim != 0 && count > (std::numeric_limits<std::size_t>::max() / sizeof(float)) / dim) {
      throw IoError(io_message(path, "npy shape is too large"));
    }
    count *= dim;
    pos = end;
  }
  const std::size_t data_offset = offset + header_len;
  if (bytes.size() - data_offset != count * sizeof(float)) {
    throw IoError(io_message(path, "npy data size does not match its shape"));
  }
  array.values.resize(count);
  if (count) std::memcpy(array.values.data(), bytes.data() + data_offset, count * sizeof(float));
  return array;
}

void write_npy_f32(const std::string& path, const FloatArray& array) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < array.shape.size(); ++i) header += (i ? ", " : "") + std::to_string(array.shape[i]);
  header += array.shape.size() == 1 ? ",), }" : "), }";
  // Pad with spaces so the data starts 64-byte aligned; the header ends with a newline.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  write_file_atomically(path, [&](std::ostream& out) {
    const char preamble[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    out.write(preamble, 8);
    const std::uint16_t len = static_cast<std::uint16_t>(header.size());
    const char len_bytes[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(array.values.data()),
              static_cast<std::streamsize>(array.values.size() * sizeof(float)));
  });
}

}  // namespace lowbit::bitlab

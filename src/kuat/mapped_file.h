// A read-only memory map of a whole file (internal to the Kuat reader).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::kuat {

class MappedFile {
 public:
  // Throws IoError naming the path and the OS reason.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace lowbit::kuat

// Whole-file reads, atomic writes, and PNG encoding.
#include <fcntl.h>
#if LOWBIT_IMAGE_CODECS
#include <png.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <csetjmp>

#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"
#include "lowbit/kuat/image.h"

namespace lowbit::kuat {

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(io_message(path, "cannot open", errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(io_message(path, "not a regular file"));
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int err = r < 0 ? errno : 0;
      ::close(fd);
      throw IoError(io_message(path, "read failed", err));
    }
    done += static_cast<std::size_t>(r);
  }
  ::close(fd);
  return bytes;
}

void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  });
}

#if !LOWBIT_IMAGE_CODECS
std::vector<std::uint8_t> encode_png(const Image&) { throw IoError(io_message("PNG output", no_image_codecs_reason())); }
#else
std::vector<std::uint8_t> encode_png(const Image& image) {
  require(image.channels == 1 || image.channels == 3, "PNG output supports 1 or 3 channels");
  require(image.pixels.size() == std::size_t{image.height} * image.width * image.channels, "image buffer size mismatch");
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = image.width;
  png.height = image.height;
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr)) {
    throw RuntimeError(std::string("PNG encoding failed: ") + png.message);
  }
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    throw RuntimeError(std::string("PNG encoding failed: ") + png.message);
  }
  out.resize(size);
  return out;
}
#endif  // LOWBIT_IMAGE_CODECS

void write_png(const std::string& path, const Image& image) { write_file_atomic(path, encode_png(image)); }

}  // namespace lowbit::kuat

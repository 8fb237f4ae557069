#include "lowbit/core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "lowbit/core/error.h"

namespace lowbit {

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  std::string temp = path + ".tmp-" + std::string(6, 'X');  // mkstemp template
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) throw IoError(io_message(path, "cannot create a temporary file beside it", errno));
  temp.assign(name.data());
  fchmod(fd, 0644);  // mkstemp creates 0600; the result should be readable like any written file
  close(fd);
  try {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(io_message(temp, "cannot open the temporary file", errno));
    write(out);
    out.flush();
    if (!out) throw IoError(io_message(temp, "write failed", errno));
    out.close();
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
      throw IoError(io_message(path, "cannot rename the temporary file into place", errno));
    }
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& what) {
  // Opened without blocking (a FIFO would wait for a writer) and checked on the open descriptor:
  // only a regular file has an end, so /dev/zero, /dev/urandom, FIFOs and sockets are refused
  // before a read that would grow without bound or never return.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw IoError(io_message(path, "cannot open " + what, errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError(io_message(path, "cannot stat " + what, errno));
  if (S_ISDIR(st.st_mode)) throw IoError(io_message(path, "is a directory, not a " + what));
  if (!S_ISREG(st.st_mode)) throw IoError(io_message(path, "is not a regular file (expected a " + what + ")"));
  std::vector<std::uint8_t> bytes;
  bytes.reserve(static_cast<std::size_t>(st.st_size));
  std::uint8_t buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(io_message(path, "read failed", errno));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), buffer, buffer + n);
  }
  return bytes;
}

}  // namespace lowbit

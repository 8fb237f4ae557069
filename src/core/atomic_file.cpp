#include "lowbit/core/atomic_file.h"

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
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw IoError(io_message(path, "is a directory, not a " + what));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(io_message(path, "cannot open " + what, errno));
  std::vector<std::uint8_t> bytes;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    bytes.insert(bytes.end(), buffer, buffer + in.gcount());
    if (!in) break;
  }
  if (in.bad()) throw IoError(io_message(path, "read failed", errno));
  return bytes;
}

}  // namespace lowbit

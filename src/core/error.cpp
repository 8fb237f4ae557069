#include "lowbit/core/error.h"

#include <cstring>

namespace lowbit {

std::string io_message(const std::string& path, const std::string& reason, int errno_value) {
  std::string message = "'" + path + "': " + reason;
  if (errno_value != 0) {
    message += " (";
    message += std::strerror(errno_value);
    message += ")";
  }
  return message;
}

}  // namespace lowbit

// Error types shared by every lowbit library.
//
// The Python bindings translate them one to one: InvalidArgument -> ValueError,
// IoError -> OSError, RuntimeError -> RuntimeError, with the message intact.
// Messages name the offending input and the reason, e.g.
//   "convert: input folder '/data/x' does not exist".
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>

namespace lowbit {

enum class ErrorKind { InvalidArgument, Io, Runtime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// A caller passed a value that cannot be used (bad shape, out-of-range option, ...).
class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& message) : Error(ErrorKind::InvalidArgument, message) {}
};

// A file could not be opened, read, written, or its contents are malformed.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(ErrorKind::Io, message) {}
};

// Anything else that went wrong at run time.
class RuntimeError : public Error {
 public:
  explicit RuntimeError(const std::string& message) : Error(ErrorKind::Runtime, message) {}
};

// The caller asked to stop (Ctrl-C in the CLI, KeyboardInterrupt in Python): the work was
// abandoned and its partial output removed. The Python bindings re-raise the pending Python
// exception (KeyboardInterrupt) instead of translating it.
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& message) : Error(ErrorKind::Runtime, message) {}
};

// Throws Interrupted("<what>: interrupted") when `flag` is set (a null flag never is). Cheap
// enough to call once per image from any thread.
inline void check_interrupt(const std::atomic<bool>* flag, const char* what) {
  if (flag && flag->load(std::memory_order_relaxed)) throw Interrupted(std::string(what) + ": interrupted");
}

// Throws InvalidArgument(message) unless `condition` holds.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw InvalidArgument(message);
}

// "path: reason" with the OS error text appended when errno_value != 0.
std::string io_message(const std::string& path, const std::string& reason, int errno_value = 0);

}  // namespace lowbit

// A strict reader for the subset of Python pickles that CIFAR files use. It never executes
// anything: the only callables it knows are rebuilt as data (numpy arrays and dtypes,
// _codecs.encode of latin-1 text, bytes()); any other global or opcode is an error.
//
// Supported: protocols 0-5 binary opcodes for None/bool/int/float/str/bytes/bytearray, lists,
// tuples, dicts, the memo, GLOBAL/STACK_GLOBAL, REDUCE and BUILD for
//   numpy.core.multiarray._reconstruct / numpy._core.multiarray._reconstruct (+ numpy.ndarray),
//   numpy.dtype, numpy.core.numeric._frombuffer / numpy._core.numeric._frombuffer,
//   _codecs.encode(text, 'latin1'), __builtin__.bytes / builtins.bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit::kuat::pickle {

enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Global, Dtype, NDArray };

struct Value {
  Kind kind = Kind::None;
  std::int64_t i = 0;                              // Bool, Int
  double f = 0;                                    // Float
  std::string s;                                   // Str (UTF-8), Bytes, Global ("module.name"), Dtype descr
  std::vector<Value*> items;                       // List, Tuple
  std::vector<std::pair<Value*, Value*>> entries;  // Dict
  // Dtype: byte order ('|', '<', '>', '='). NDArray: dtype descr in s, shape, raw data.
  char byteorder = '|';
  std::vector<std::uint64_t> shape;
  std::string data;
  bool built = false;  // NDArray from _reconstruct awaits its BUILD
};

// The values live in the document's arena; pointers stay valid while it exists.
class Document {
 public:
  const Value* root() const { return root_; }

 private:
  friend Document parse(const std::uint8_t*, std::size_t, const std::string&);
  std::deque<Value> arena_;
  const Value* root_ = nullptr;
};

// Throws IoError("'what': malformed pickle: reason at offset N").
Document parse(const std::uint8_t* data, std::size_t size, const std::string& what);

// Helpers for reading the parsed structure (nullptr when absent / of another kind).
const Value* dict_get(const Value* dict, std::string_view key);  // str or bytes keys
// Element size in bytes and signedness of a supported numpy integer dtype ("u1", "<i8", ...).
bool integer_dtype(const std::string& descr, std::size_t* bytes, bool* is_signed);
// Integers from a list/tuple of ints or a 1-D numpy integer array; false otherwise.
bool to_int_vector(const Value* v, std::vector<std::int64_t>* out);
// Strings from a list of str/bytes; false otherwise.
bool to_string_vector(const Value* v, std::vector<std::string>* out);

}  // namespace lowbit::kuat::pickle

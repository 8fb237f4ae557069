// A reader for GGUF files (llama.cpp's model format, versions 2 and 3), enough to run BitLM.
//
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md. Little-endian:
//   u32 magic "GGUF"; u32 version; u64 tensor_count; u64 kv_count;
//   kv      string key; u32 value_type; value      (string = u64 length + bytes; array = u32 type,
//                                                   u64 count, values)
//   tensor  string name; u32 n_dims; u64 dims[n_dims] (fastest first); u32 ggml_type; u64 offset
//   data    starts at the next multiple of general.alignment (default 32); offsets are relative to it
// Every length, count and offset is checked against the file size: a truncated or corrupt file is
// an IoError naming the file, never a read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lowbit::bitlab {

enum class GgufValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

// The ggml tensor types this reader decodes.
enum class GgmlType : std::uint32_t { F32 = 0, F16 = 1, TQ1_0 = 34, TQ2_0 = 35 };

inline constexpr std::size_t kTqBlock = 256;         // weights per TQ1_0 / TQ2_0 block
inline constexpr std::size_t kTq1BlockBytes = 54;    // qs[48], qh[4], f16 d
inline constexpr std::size_t kTq2BlockBytes = 66;    // qs[64], f16 d

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  std::uint64_t u = 0;   // unsigned integers and bool
  std::int64_t i = 0;    // signed integers
  double f = 0;          // floats
  std::string s;         // strings
  GgufValueType element_type = GgufValueType::U8;  // arrays
  std::vector<GgufValue> elements;                 // arrays
};

struct GgufTensor {
  std::string name;
  std::vector<std::uint64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;
  const std::uint8_t* data = nullptr;  // into the file's bytes
  std::size_t nbytes = 0;
  std::size_t elements() const noexcept;
};

class GgufFile {
 public:
  // IoError when the file cannot be read or is not a valid GGUF file (the message names it).
  static GgufFile load(const std::string& path);
  static GgufFile from_bytes(std::vector<std::uint8_t> bytes, const std::string& name);

  const std::string& name() const noexcept { return name_; }
  std::uint32_t version() const noexcept { return version_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  // IoError naming the file and key when it is missing or of another kind.
  const GgufValue& value(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::uint64_t get_uint(const std::string& key) const;   // any non-negative integer type
  double get_float(const std::string& key) const;         // f32, f64 or an integer
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  const std::vector<GgufTensor>& tensors() const noexcept { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;  // nullptr if absent

  // A tensor's values as float32 (F32, F16, TQ1_0, TQ2_0), row-major with dims[0] fastest.
  static std::vector<float> to_float(const GgufTensor& t);
  // Elements [first, first + count) of the same, into out (count floats), so that a large tensor
  // can be decoded piece by piece. For TQ1_0 / TQ2_0, first and count must be multiples of
  // kTqBlock; InvalidArgument otherwise or when the range leaves the tensor.
  static void to_float(const GgufTensor& t, std::size_t first, std::size_t count, float* out);

 private:
  std::string name_;
  std::uint32_t version_ = 0;
  std::vector<std::uint8_t> bytes_;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
};

// IEEE half -> float (exact).
float half_to_float(std::uint16_t h) noexcept;

}  // namespace lowbit::bitlab

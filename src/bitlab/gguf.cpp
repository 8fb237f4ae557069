// GGUF reader: bounds-checked parsing of the header, metadata and tensor table; tensor decoding.
#include "lowbit/bitlab/gguf.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

namespace {

constexpr std::uint32_t kMaxDims = 4;
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 2;

class Cursor {
 public:
  Cursor(const std::vector<std::uint8_t>& bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(io_message(name_, "not a valid GGUF file: " + what + " (at byte " + std::to_string(pos_) + " of " +
                                        std::to_string(bytes_.size()) + ")"));
  }
  void need(std::uint64_t n, const char* what) const {
    if (n > bytes_.size() - pos_) fail(std::string("truncated ") + what);
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // the format and every supported host are little-endian
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const auto n = read<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

 private:
  const std::vector<std::uint8_t>& bytes_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

GgufValue read_value(Cursor& c, GgufValueType type, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::U8: v.u = c.read<std::uint8_t>("value"); break;
    case GgufValueType::I8: v.i = c.read<std::int8_t>("value"); break;
    case GgufValueType::U16: v.u = c.read<std::uint16_t>("value"); break;
    case GgufValueType::I16: v.i = c.read<std::int16_t>("value"); break;
    case GgufValueType::U32: v.u = c.read<std::uint32_t>("value"); break;
    case GgufValueType::I32: v.i = c.read<std::int32_t>("value"); break;
    case GgufValueType::U64: v.u = c.read<std::uint64_t>("value"); break;
    case GgufValueType::I64: v.i = c.read<std::int64_t>("value"); break;
    case GgufValueType::F32: v.f = c.read<float>("value"); break;
    case GgufValueType::F64: v.f = c.read<double>("value"); break;
    case GgufValueType::Bool: {
      const auto b = c.read<std::uint8_t>("value");
      if (b > 1) c.fail("bool value " + std::to_string(b));
      v.u = b;
      break;
    }
    case GgufValueType::String: v.s = c.read_string("string"); break;
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth) c.fail("arrays nested too deep");
      const auto element = c.read<std::uint32_t>("array type");
      if (element > static_cast<std::uint32_t>(GgufValueType::F64)) c.fail("unknown array type " + std::to_string(element));
      const auto count = c.read<std::uint64_t>("array length");
      if (count > c.remaining()) c.fail("array length " + std::to_string(count) + " beyond the end of the file");
      v.element_type = static_cast<GgufValueType>(element);
      v.elements.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t k = 0; k < count; ++k) v.elements.push_back(read_value(c, v.element_type, depth + 1));
      break;
    }
    default: c.fail("unknown value type " + std::to_string(static_cast<std::uint32_t>(type)));
  }
  return v;
}

std::size_t type_bytes(GgmlType type, std::uint64_t elements, const std::string& tensor, Cursor& c) {
  switch (type) {
    case GgmlType::F32: return static_cast<std::size_t>(elements * 4);
    case GgmlType::F16: return static_cast<std::size_t>(elements * 2);
    case GgmlType::TQ1_0:
    case GgmlType::TQ2_0:
      if (elements % kTqBlock) c.fail("tensor '" + tensor + "' has a row length that is not a multiple of 256");
      return static_cast<std::size_t>(elements / kTqBlock *
                                      (type == GgmlType::TQ1_0 ? kTq1BlockBytes : kTq2BlockBytes));
  }
  c.fail("tensor '" + tensor + "' has ggml type " + std::to_string(static_cast<std::uint32_t>(type)) +
         " (this reader takes F32, F16, TQ1_0 and TQ2_0)");
}

bool known_type(std::uint32_t t) { return t == 0 || t == 1 || t == 34 || t == 35; }

}  // namespace

std::size_t GgufTensor::elements() const noexcept {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  float magnitude;
  if (exp == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    magnitude = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  std::uint32_t bits;
  std::memcpy(&bits, &magnitude, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

GgufFile GgufFile::load(const std::string& path) {
  return from_bytes(read_file_bytes(path, "GGUF file"), path);
}

GgufFile GgufFile::from_bytes(std::vector<std::uint8_t> bytes, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  f.bytes_ = std::move(bytes);
  Cursor c(f.bytes_, f.name_);
  const auto magic = c.read<std::uint32_t>("header");
  if (magic != 0x46554747u) c.fail("bad magic (expected \"GGUF\")");
  f.version_ = c.read<std::uint32_t>("header");
  if (f.version_ != 2 && f.version_ != 3) c.fail("unsupported version " + std::to_string(f.version_));
  const auto n_tensors = c.read<std::uint64_t>("header");
  const auto n_kv = c.read<std::uint64_t>("header");
  if (n_kv > c.remaining() || n_tensors > c.remaining()) c.fail("counts beyond the end of the file");
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key");
    const auto type = c.read<std::uint32_t>("metadata type");
    if (type > static_cast<std::uint32_t>(GgufValueType::F64)) c.fail("key '" + key + "' has unknown type " + std::to_string(type));
    f.kv_[key] = read_value(c, static_cast<GgufValueType>(type), 0);
  }
  for (std::uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor info;
    info.name = c.read_string("tensor name");
    const auto n_dims = c.read<std::uint32_t>("tensor dims");
    if (n_dims == 0 || n_dims > kMaxDims) c.fail("tensor '" + info.name + "' has " + std::to_string(n_dims) + " dims");
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = c.read<std::uint64_t>("tensor dims");
      if (dim == 0 || dim > (std::uint64_t{1} << 40) || elements > (std::uint64_t{1} << 40) / dim) {
        c.fail("tensor '" + info.name + "' has an invalid shape");
      }
      elements *= dim;
      info.dims.push_back(dim);
    }
    const auto type = c.read<std::uint32_t>("tensor type");
    if (!known_type(type)) {
      c.fail("tensor '" + info.name + "' has ggml type " + std::to_string(type) +
             " (this reader takes F32, F16, TQ1_0 and TQ2_0)");
    }
    info.type = static_cast<GgmlType>(type);
    if (info.type == GgmlType::TQ1_0 || info.type == GgmlType::TQ2_0) {
      if (info.dims[0] % kTqBlock) c.fail("tensor '" + info.name + "' has rows that are not a multiple of 256");
    }
    info.offset = c.read<std::uint64_t>("tensor offset");
    info.nbytes = type_bytes(info.type, elements, info.name, c);
    f.tensors_.push_back(std::move(info));
  }
  std::uint64_t alignment = kDefaultAlignment;
  if (f.has("general.alignment")) {
    alignment = f.get_uint("general.alignment");
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > 65536) c.fail("bad general.alignment");
  }
  const std::uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (GgufTensor& t : f.tensors_) {
    if (data_start > f.bytes_.size() || t.offset > f.bytes_.size() - data_start ||
        t.nbytes > f.bytes_.size() - data_start - t.offset) {
      throw IoError(io_message(name, "not a valid GGUF file: truncated data of tensor '" + t.name + "'"));
    }
    t.data = f.bytes_.data() + data_start + t.offset;
  }
  return f;
}

const GgufValue& GgufFile::value(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) throw IoError(io_message(name_, "metadata key '" + key + "' is missing"));
  return it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufValueType::String) throw IoError(io_message(name_, "metadata key '" + key + "' is not a string"));
  return v.s;
}

std::uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = value(key);
  switch (v.type) {
    case GgufValueType::U8: case GgufValueType::U16: case GgufValueType::U32: case GgufValueType::U64:
      return v.u;
    case GgufValueType::I8: case GgufValueType::I16: case GgufValueType::I32: case GgufValueType::I64:
      if (v.i >= 0) return static_cast<std::uint64_t>(v.i);
      break;
    default: break;
  }
  throw IoError(io_message(name_, "metadata key '" + key + "' is not a non-negative integer"));
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type == GgufValueType::F32 || v.type == GgufValueType::F64) return v.f;
  return static_cast<double>(get_uint(key));
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufValueType::Bool) throw IoError(io_message(name_, "metadata key '" + key + "' is not a bool"));
  return v.u != 0;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufValueType::Array || v.element_type != GgufValueType::String) {
    throw IoError(io_message(name_, "metadata key '" + key + "' is not an array of strings"));
  }
  std::vector<std::string> out;
  out.reserve(v.elements.size());
  for (const GgufValue& e : v.elements) out.push_back(e.s);
  return out;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<float> GgufFile::to_float(const GgufTensor& t) {
  std::vector<float> out(t.elements());
  to_float(t, 0, out.size(), out.data());
  return out;
}

void GgufFile::to_float(const GgufTensor& t, std::size_t first, std::size_t count, float* out) {
  const std::size_t n = t.elements();
  const bool blocked = t.type == GgmlType::TQ1_0 || t.type == GgmlType::TQ2_0;
  require(first <= n && count <= n - first && (!blocked || (first % kTqBlock == 0 && count % kTqBlock == 0)),
          "GgufFile::to_float: elements [" + std::to_string(first) + ", +" + std::to_string(count) +
              ") are outside tensor '" + t.name + "' or not whole blocks");
  const std::uint8_t* p = t.data;
  switch (t.type) {
    case GgmlType::F32: std::memcpy(out, p + 4 * first, count * 4); break;
    case GgmlType::F16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * (first + i), 2);
        out[i] = half_to_float(h);
      }
      break;
    case GgmlType::TQ2_0:
      // block: qs[64], f16 d; element 128 * j + 32 * l + m is bits 2l of qs[32 * j + m]
      for (std::size_t b = first / kTqBlock; b < (first + count) / kTqBlock; ++b) {
        const std::uint8_t* blk = p + b * kTq2BlockBytes;
        std::uint16_t dh;
        std::memcpy(&dh, blk + 64, 2);
        const float d = half_to_float(dh);
        float* y = out + (b * kTqBlock - first);
        for (std::size_t j = 0; j < 2; ++j)
          for (std::size_t l = 0; l < 4; ++l)
            for (std::size_t m = 0; m < 32; ++m)
              *y++ = static_cast<float>(((blk[32 * j + m] >> (2 * l)) & 3) - 1) * d;
      }
      break;
    case GgmlType::TQ1_0: {
      // block: qs[48], qh[4], f16 d; base-3 digits read most significant first by (q * 3^n * 3) >> 8
      static constexpr std::uint8_t pow3[5] = {1, 3, 9, 27, 81};
      auto trit = [](std::uint8_t q, std::size_t n) {
        const std::uint8_t shifted = static_cast<std::uint8_t>(q * pow3[n]);
        return static_cast<int>((static_cast<std::uint16_t>(shifted) * 3) >> 8) - 1;
      };
      for (std::size_t b = first / kTqBlock; b < (first + count) / kTqBlock; ++b) {
        const std::uint8_t* blk = p + b * kTq1BlockBytes;
        std::uint16_t dh;
        std::memcpy(&dh, blk + 52, 2);
        const float d = half_to_float(dh);
        float* y = out + (b * kTqBlock - first);
        for (std::size_t k = 0; k < 5; ++k)
          for (std::size_t m = 0; m < 32; ++m) *y++ = static_cast<float>(trit(blk[m], k)) * d;
        for (std::size_t k = 0; k < 5; ++k)
          for (std::size_t m = 0; m < 16; ++m) *y++ = static_cast<float>(trit(blk[32 + m], k)) * d;
        for (std::size_t k = 0; k < 4; ++k)
          for (std::size_t j = 0; j < 4; ++j) *y++ = static_cast<float>(trit(blk[48 + j], k)) * d;
      }
      break;
    }
  }
}

}  // namespace lowbit::bitlab

// The LBBITMLP v1 file format (model.h, docs/bitlab.md): little-endian reader and writer.
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "lowbit/bitlab/model.h"
#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"

namespace lowbit::bitlab {

namespace {

constexpr std::size_t kHeaderBytes = 8 + 4 + 4 + 4 + 4 + 8;
constexpr std::size_t kLayerHeaderBytes = 16;

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

class Writer {
 public:
  void u8(std::uint8_t v) { bytes.push_back(v); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void f32s(const std::vector<float>& v) {
    for (float f : v) {
      std::uint32_t bits;
      std::memcpy(&bits, &f, 4);
      u32(bits);
    }
  }
  void raw(const std::uint8_t* p, std::size_t n) { bytes.insert(bytes.end(), p, p + n); }
  std::vector<std::uint8_t> bytes;
};

class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size, std::string name) : p_(data), size_(size), name_(std::move(name)) {}
  void need(std::size_t n, const char* what) {
    if (size_ - pos_ < n) throw IoError(io_message(name_, std::string("truncated model file (reading ") + what + ")"));
  }
  std::uint8_t u8(const char* what) {
    need(1, what);
    return p_[pos_++];
  }
  std::uint32_t u32(const char* what) {
    need(4, what);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p_[pos_ + i]) << (8 * i);
    pos_ += 4;
    return v;
  }
  std::uint64_t u64(const char* what) {
    const std::uint64_t lo = u32(what);
    return lo | (static_cast<std::uint64_t>(u32(what)) << 32);
  }
  std::vector<float> f32s(std::size_t n, const char* what) {
    need(n * 4, what);
    std::vector<float> v(n);
    for (auto& f : v) {
      const std::uint32_t bits = u32(what);
      std::memcpy(&f, &bits, 4);
      if (!std::isfinite(f)) throw IoError(io_message(name_, std::string(what) + " holds NaN or Inf"));
    }
    return v;
  }
  const std::uint8_t* take(std::size_t n, const char* what) {
    need(n, what);
    const std::uint8_t* at = p_ + pos_;
    pos_ += n;
    return at;
  }
  std::size_t pos() const { return pos_; }
  const std::string& name() const { return name_; }

 private:
  const std::uint8_t* p_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string name_;
};

// Caps a declared size so a corrupt header cannot ask for absurd allocations.
void check_dim(const Reader& r, std::uint32_t v, const char* what) {
  if (v == 0 || v > (1u << 24)) throw IoError(io_message(r.name(), std::string("implausible ") + what));
}

}  // namespace

std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc) noexcept {
  static const std::array<std::uint32_t, 256> table = make_crc_table();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

std::vector<std::uint8_t> BitMLPModel::to_bytes() const {
  Writer body;
  for (const Layer& layer : layers_) {
    const BitLayerSpec& s = layer.spec;
    body.u32(static_cast<std::uint32_t>(s.in_features));
    body.u32(static_cast<std::uint32_t>(s.out_features));
    body.u8(s.int8_activations ? 0 : 1);
    body.u8(static_cast<std::uint8_t>(s.activation_granularity));
    body.u8(s.bias.empty() ? 0 : 1);
    body.u8(s.relu_after ? 1 : 0);
    body.u32(0);
    body.f32s(s.weight_scale);
    body.f32s(s.bias);
    const std::vector<std::uint8_t> trits = pack_ternary_base3(s.trits.data(), s.trits.size());
    body.raw(trits.data(), trits.size());
  }
  Writer out;
  out.raw(reinterpret_cast<const std::uint8_t*>(kModelMagic), 8);
  out.u32(kModelVersion);
  out.u32(static_cast<std::uint32_t>(layers_.size()));
  out.u32(static_cast<std::uint32_t>(in_features()));
  out.u32(static_cast<std::uint32_t>(out_features()));
  out.u64(body.bytes.size());
  out.raw(body.bytes.data(), body.bytes.size());
  out.u32(crc32(out.bytes.data(), out.bytes.size()));
  return std::move(out.bytes);
}

BitMLPModel BitMLPModel::from_bytes(const std::uint8_t* data, std::size_t size, const std::string& name) {
  Reader r(data, size, name);
  const std::uint8_t* magic = r.take(8, "magic");
  if (std::memcmp(magic, kModelMagic, 8) != 0) throw IoError(io_message(name, "not a BitLab model (bad magic)"));
  const std::uint32_t version = r.u32("version");
  if (version != kModelVersion) {
    throw IoError(io_message(name, "unsupported model version " + std::to_string(version) + " (this build reads " +
                                       std::to_string(kModelVersion) + ")"));
  }
  const std::uint32_t num_layers = r.u32("num_layers");
  if (num_layers == 0 || num_layers > 4096) throw IoError(io_message(name, "implausible layer count"));
  const std::uint32_t in_features = r.u32("in_features");
  const std::uint32_t out_features = r.u32("out_features");
  const std::uint64_t payload = r.u64("payload_bytes");
  if (size < kHeaderBytes + 4 || payload != size - kHeaderBytes - 4) {
    throw IoError(io_message(name, "file size " + std::to_string(size) + " does not match the header"));
  }
  std::uint32_t stored_crc = 0;
  for (int i = 0; i < 4; ++i) stored_crc |= static_cast<std::uint32_t>(data[size - 4 + i]) << (8 * i);
  if (crc32(data, size - 4) != stored_crc) throw IoError(io_message(name, "checksum mismatch (corrupt model file)"));

  std::vector<BitLayerSpec> layers(num_layers);
  for (auto& s : layers) {
    const std::uint32_t in = r.u32("layer in_features");
    const std::uint32_t out = r.u32("layer out_features");
    check_dim(r, in, "layer in_features");
    check_dim(r, out, "layer out_features");
    const std::uint8_t act_dtype = r.u8("activation_dtype");
    const std::uint8_t act_gran = r.u8("activation_granularity");
    const std::uint8_t has_bias = r.u8("has_bias");
    const std::uint8_t relu = r.u8("relu_after");
    r.u32("reserved");
    if (act_dtype > 1 || act_gran > 1 || has_bias > 1 || relu > 1) {
      throw IoError(io_message(name, "invalid layer flags"));
    }
    s.in_features = in;
    s.out_features = out;
    s.int8_activations = act_dtype == 0;
    s.activation_granularity = static_cast<Granularity>(act_gran);
    s.relu_after = relu == 1;
    s.weight_scale = r.f32s(out, "weight_scale");
    if (has_bias) s.bias = r.f32s(out, "bias");
    const std::size_t count = static_cast<std::size_t>(in) * out;
    const std::size_t nbytes = (count + kTritsPerStorageByte - 1) / kTritsPerStorageByte;
    const std::uint8_t* trits = r.take(nbytes, "trits");
    s.trits.resize(count);
    try {
      unpack_ternary_base3(trits, nbytes, count, s.trits.data());
    } catch (const InvalidArgument& e) {
      throw IoError(io_message(name, std::string("corrupt weights: ") + e.what()));
    }
  }
  if (r.pos() != size - 4) throw IoError(io_message(name, "trailing bytes after the last layer"));
  if (layers.front().in_features != in_features || layers.back().out_features != out_features) {
    throw IoError(io_message(name, "header features do not match the layers"));
  }
  try {
    return BitMLPModel(std::move(layers));
  } catch (const InvalidArgument& e) {
    throw IoError(io_message(name, e.what()));
  }
}

BitMLPModel BitMLPModel::load(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path, "model file");
  return from_bytes(bytes.data(), bytes.size(), path);
}

void BitMLPModel::save(const std::string& path) const {
  const std::vector<std::uint8_t> bytes = to_bytes();
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace lowbit::bitlab

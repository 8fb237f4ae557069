// BitLMModel: GGUF loading, the decoder forward pass with a KV cache, greedy decoding, byte tokens.
#include "lowbit/bitlab/lm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <cstdio>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "gemm_isa.h"
#include "lm_ops.h"
#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/gguf.h"
#include "lowbit/core/aligned_buffer.h"
#include "lowbit/core/error.h"
#include "team.h"

namespace lowbit::bitlab {

namespace {

const char* const kArch = "bitnet";

[[noreturn]] void bad(const std::string& file, const std::string& what) { throw IoError(io_message(file, what)); }

// GPT-2's reversible byte -> code point map (the byte-level BPE alphabet).
std::vector<std::uint32_t> byte_code_points() {
  std::vector<std::uint32_t> cp(256);
  std::uint32_t extra = 0;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    cp[b] = printable ? b : 256 + extra++;
  }
  return cp;
}

// The single code point of a UTF-8 string, or UINT32_MAX if it holds anything else.
std::uint32_t single_code_point(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  if (s.size() == 1 && p[0] < 0x80) return p[0];
  if (s.size() == 2 && (p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  return std::numeric_limits<std::uint32_t>::max();
}

std::size_t round_up16(std::size_t n) { return (n + 15) / 16 * 16; }

// y = (x / sqrt(mean(x^2) + eps)) * w, with the sum of squares in the fixed order of LmOps::dot.
void rms_norm(const kernels::LmOps& ops, const float* x, const float* w, std::size_t n, float eps, float* y) {
  const float ss = ops.dot(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) y[i] = (x[i] * inv) * w[i];
}

constexpr std::size_t kHugePage = std::size_t{2} << 20;

}  // namespace

// Measured on the 2-core EPYC, 180M-weight model (46.6 MiB of packed weights, more than the
// 32 MiB L3: read from DRAM per token; KV cache 8 MiB), bitlab-run generate, interleaved runs
// against 4-KiB pages: decode +25-40 % at 1 thread, +10-25 % at 2 threads, prefill unchanged
// (BENCHMARKS.md).
void* huge_allocate(std::size_t bytes) {
  const std::size_t align = bytes >= kHugePage ? kHugePage : kCacheLine;
  const std::size_t size = (std::max<std::size_t>(bytes, 1) + align - 1) / align * align;
  if (size < bytes) throw std::bad_alloc();
  void* p = std::aligned_alloc(align, size);
  if (!p) throw std::bad_alloc();
#if defined(__linux__)
  if (align == kHugePage) madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

void huge_deallocate(void* p) noexcept { std::free(p); }

BitLMModel BitLMModel::load(const std::string& path) {
  const GgufFile f = GgufFile::load(path);
  const std::string arch = f.get_string("general.architecture");
  if (arch != kArch) bad(path, "architecture '" + arch + "' is not supported (expected 'bitnet')");
  const std::string p = std::string(kArch) + ".";
  BitLMModel m;
  BitLMConfig& c = m.config_;
  c.hidden_size = f.get_uint(p + "embedding_length");
  c.num_layers = f.get_uint(p + "block_count");
  c.num_heads = f.get_uint(p + "attention.head_count");
  c.num_kv_heads = f.has(p + "attention.head_count_kv") ? f.get_uint(p + "attention.head_count_kv") : c.num_heads;
  c.intermediate_size = f.get_uint(p + "feed_forward_length");
  c.context_length = f.get_uint(p + "context_length");
  c.rms_norm_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon"));
  c.rope_theta = f.has(p + "rope.freq_base") ? static_cast<float>(f.get_float(p + "rope.freq_base")) : 10000.0f;
  if (f.has(p + "hidden_activation")) {
    const std::string act = f.get_string(p + "hidden_activation");
    if (act == "relu2" || act == "relu_sqr") {
      c.relu2 = true;
    } else if (act == "silu" || act == "swiglu") {
      c.relu2 = false;
    } else {
      bad(path, "hidden_activation '" + act + "' is not supported (relu2 or silu)");
    }
  } else {
    c.relu2 = false;  // llama.cpp's default for bitnet
  }
  // Each hyperparameter is checked on its own, and the message names the key, its value and the
  // rule it breaks.
  auto key_rule = [&](bool ok, const std::string& key, const std::string& value, const std::string& rule) {
    if (!ok) bad(path, p + key + "=" + value + " " + rule);
  };
  auto num = [](double v) {
    char text[64];
    std::snprintf(text, sizeof text, "%g", v);
    return std::string(text);
  };
  using std::to_string;
  key_rule(c.hidden_size > 0, "embedding_length", "0", "must be positive");
  key_rule(c.num_layers > 0, "block_count", "0", "must be positive");
  key_rule(c.num_layers <= 4096, "block_count", to_string(c.num_layers), "exceeds 4096");
  key_rule(c.num_heads > 0, "attention.head_count", "0", "must be positive");
  key_rule(c.num_kv_heads > 0, "attention.head_count_kv", "0", "must be positive");
  key_rule(c.intermediate_size > 0, "feed_forward_length", "0", "must be positive");
  key_rule(c.context_length > 0, "context_length", "0", "must be positive");
  key_rule(c.context_length <= kMaxContextLength, "context_length", to_string(c.context_length),
           "exceeds " + to_string(kMaxContextLength) + ", the most this runner supports");
  key_rule(c.hidden_size % c.num_heads == 0, "attention.head_count", to_string(c.num_heads),
           "must divide embedding_length=" + to_string(c.hidden_size));
  key_rule(c.num_heads % c.num_kv_heads == 0, "attention.head_count_kv", to_string(c.num_kv_heads),
           "must divide attention.head_count=" + to_string(c.num_heads));
  key_rule((c.hidden_size / c.num_heads) % 2 == 0, "attention.head_count", to_string(c.num_heads),
           "gives an odd head size " + to_string(c.hidden_size / c.num_heads) + " (rotary needs an even one)");
  key_rule(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, "attention.layer_norm_rms_epsilon",
           num(c.rms_norm_eps), "must be a finite number > 0");
  key_rule(std::isfinite(c.rope_theta) && c.rope_theta > 0, "rope.freq_base", num(c.rope_theta),
           "must be a finite number > 0");
  c.head_dim = c.hidden_size / c.num_heads;
  if (f.has(p + "rope.dimension_count") && f.get_uint(p + "rope.dimension_count") != c.head_dim) {
    bad(path, "rope.dimension_count differs from the head size (partial rotary is not supported)");
  }

  // Every tensor of the file must be one the model reads (as the Python loader requires): an extra
  // one (a layer beyond block_count, a misspelt name) means the file is not what its keys say.
  {
    std::set<std::string> known = {"token_embd.weight", "output.weight", "output_norm.weight"};
    for (std::size_t i = 0; i < c.num_layers; ++i) {
      const std::string b = "blk." + std::to_string(i) + ".";
      for (const char* norm : {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"}) known.insert(b + norm + ".weight");
      for (const char* proj : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
        known.insert(b + proj + ".weight");
        known.insert(b + proj + ".scale");
      }
    }
    for (const GgufTensor& t : f.tensors()) {
      if (!known.count(t.name)) {
        bad(path, "tensor '" + t.name + "' is not part of a " + to_string(c.num_layers) + "-layer bitnet model");
      }
    }
  }

  auto tensor = [&](const std::string& name, std::vector<std::size_t> shape) -> const GgufTensor& {
    const GgufTensor* t = f.find_tensor(name);
    if (!t) bad(path, "tensor '" + name + "' is missing");
    std::vector<std::size_t> got(t->dims.rbegin(), t->dims.rend());  // row-major order
    if (got != shape) {
      std::string g, e;
      for (auto d : got) g += (g.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : shape) e += (e.empty() ? "" : ", ") + std::to_string(d);
      bad(path, "tensor '" + name + "' has shape (" + g + "), expected (" + e + ")");
    }
    return *t;
  };
  // Every float tensor (embeddings, head, norm weights, scales) must be finite: a NaN or Inf
  // would only surface at run time, as a NaN in some later activation.
  auto floats = [&](const std::string& name, std::vector<std::size_t> shape) {
    std::vector<float> values = GgufFile::to_float(tensor(name, std::move(shape)));
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        bad(path, "tensor '" + name + "' holds a non-finite value (" + num(values[i]) + " at index " + to_string(i) + ")");
      }
    }
    return values;
  };
  using Parts = std::vector<std::pair<std::string, std::size_t>>;
  // Stacks the ternary tensors `bases` (each rows_i x cols, in order) into one packed projection at
  // `next` in the weights block (advanced past it), decoding and packing a few rows at a time (peak
  // memory: the packed weights plus one piece).
  std::uint8_t* next = nullptr;
  auto projection = [&](const Parts& bases, std::size_t cols) {
    std::size_t total = 0;
    for (const auto& [base, rows] : bases) total += rows;
    Projection out;
    out.packed.rows = total;
    out.packed.cols = cols;
    out.packed.row_bytes = packed_row_bytes(cols);
    std::uint8_t* const dst = next;
    out.packed.data = dst;
    next += total * out.packed.row_bytes;
    out.scales.reserve(total);
    std::size_t row0 = 0;
    for (const auto& [base, rows] : bases) {
      const GgufTensor& t = tensor(base + ".weight", {rows, cols});
      float scale = 1.0f;
      if (f.find_tensor(base + ".scale")) scale = floats(base + ".scale", {1})[0];
      // whole TQ blocks per piece: rows of a multiple of 256 columns, else the tensor at once
      const std::size_t piece = cols % kTqBlock == 0 ? std::max<std::size_t>(1, (std::size_t{1} << 16) / cols) : rows;
      std::vector<float> values(std::min(piece, rows) * cols);
      std::vector<std::int8_t> trits(values.size());
      float magnitude = 0.0f;
      for (std::size_t r = 0; r < rows; r += piece) {
        const std::size_t nr = std::min(piece, rows - r);
        GgufFile::to_float(t, r * cols, nr * cols, values.data());
        std::fill(trits.begin(), trits.end(), std::int8_t{0});
        for (std::size_t i = 0; i < nr * cols; ++i) {
          const float a = std::fabs(values[i]);
          if (a == 0.0f) continue;
          if (magnitude == 0.0f) magnitude = a;
          if (a != magnitude) bad(path, "tensor '" + base + ".weight' is not ternary (its nonzero magnitudes differ)");
          trits[i] = values[i] > 0 ? 1 : -1;
        }
        const PackedTernary packed = pack_ternary_2bit(trits.data(), nr, cols);
        std::memcpy(dst + (row0 + r) * out.packed.row_bytes, packed.data.data(), nr * out.packed.row_bytes);
      }
      if (magnitude != 0.0f) scale *= magnitude;
      if (!std::isfinite(scale) || scale < 0) bad(path, "tensor '" + base + ".scale' holds an invalid scale");
      out.scales.insert(out.scales.end(), rows, scale);
      row0 += rows;
    }
    return out;
  };

  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->dims.size() != 2) bad(path, "tensor 'token_embd.weight' is missing or not 2-D");
  c.vocab_size = embd->dims[1];
  const std::size_t d = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
                    ff = c.intermediate_size, vocab = c.vocab_size;
  // The head is kept transposed (hidden x vocab: the logits are a column product, LmOps::columns);
  // with tied embeddings it is the only copy and embed() reads its columns.
  std::vector<float> embedding = floats("token_embd.weight", {vocab, d});
  const bool tied = f.find_tensor("output.weight") == nullptr;
  const std::vector<float> head = tied ? std::vector<float>{} : floats("output.weight", {vocab, d});
  const std::vector<float>& h = tied ? embedding : head;
  m.head_ld_ = round_up16(vocab);
  m.head_t_.assign(d * m.head_ld_, 0.0f);
  for (std::size_t v = 0; v < vocab; ++v)
    for (std::size_t e = 0; e < d; ++e) m.head_t_[e * m.head_ld_ + v] = h[v * d + e];
  if (!tied) m.token_embd_ = std::move(embedding);
  m.output_norm_ = floats("output_norm.weight", {d});
  // The four projections of layer i (qkv, o, gate_up, down): their tensors and column count. Every
  // ternary tensor's shape is checked before the weights block is allocated, whose size then
  // follows from tensors the file holds.
  auto layer_parts = [&](std::size_t i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    return std::array<std::pair<Parts, std::size_t>, 4>{{{{{b + "attn_q", q}, {b + "attn_k", kv}, {b + "attn_v", kv}}, d},
                                                         {{{b + "attn_output", d}}, q},
                                                         {{{b + "ffn_gate", ff}, {b + "ffn_up", ff}}, d},
                                                         {{{b + "ffn_down", d}}, ff}}};
  };
  std::size_t weight_bytes = 0;
  for (std::size_t i = 0; i < c.num_layers; ++i) {
    for (const auto& [parts, cols] : layer_parts(i)) {
      for (const auto& [base, rows] : parts) {
        tensor(base + ".weight", {rows, cols});
        weight_bytes += rows * packed_row_bytes(cols);
      }
    }
  }
  m.weights_.resize(weight_bytes);
  next = m.weights_.data();
  for (std::size_t i = 0; i < c.num_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    Layer layer;
    layer.attn_norm = floats(b + "attn_norm.weight", {d});
    layer.attn_sub_norm = floats(b + "attn_sub_norm.weight", {q});
    layer.ffn_norm = floats(b + "ffn_norm.weight", {d});
    layer.ffn_sub_norm = floats(b + "ffn_sub_norm.weight", {ff});
    const auto parts = layer_parts(i);
    layer.qkv = projection(parts[0].first, parts[0].second);
    layer.o = projection(parts[1].first, parts[1].second);
    layer.gate_up = projection(parts[2].first, parts[2].second);
    layer.down = projection(parts[3].first, parts[3].second);
    m.layers_.push_back(std::move(layer));
  }

  // Rotary frequencies, in float32 as the PyTorch model computes them: inv_freq_i =
  // 1 / theta^(2i / head_dim). forward() computes angle = position * inv_freq_i and its cos and sin
  // for the positions it runs (nothing at load grows with context_length).
  const std::size_t half = c.head_dim / 2;
  m.rope_inv_freq_.resize(half);
  for (std::size_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    m.rope_inv_freq_[i] = 1.0f / std::pow(c.rope_theta, exponent);
  }

  // byte-level vocabulary
  if (!f.has("tokenizer.ggml.model") || f.get_string("tokenizer.ggml.model") != "gpt2") {
    bad(path, "tokenizer.ggml.model must be 'gpt2' (a byte-level vocabulary)");
  }
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (tokens.size() != vocab) bad(path, "tokenizer.ggml.tokens has " + std::to_string(tokens.size()) +
                                            " entries but token_embd has " + std::to_string(vocab) + " rows");
  std::vector<std::int32_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    for (const GgufValue& v : f.value("tokenizer.ggml.token_type").elements) types.push_back(static_cast<std::int32_t>(v.i + static_cast<std::int64_t>(v.u)));
  }
  const std::vector<std::uint32_t> cps = byte_code_points();
  std::map<std::uint32_t, int> cp_to_byte;
  for (int b = 0; b < 256; ++b) cp_to_byte[cps[b]] = b;
  m.byte_to_token_.assign(256, -1);
  m.token_to_byte_.assign(vocab, -1);
  for (std::size_t id = 0; id < vocab; ++id) {
    const bool normal = types.size() != vocab || types[id] == 1;
    if (!normal) continue;
    auto it = cp_to_byte.find(single_code_point(tokens[id]));
    if (it == cp_to_byte.end()) continue;
    m.token_to_byte_[id] = static_cast<std::int16_t>(it->second);
    if (m.byte_to_token_[it->second] < 0) m.byte_to_token_[it->second] = static_cast<std::int32_t>(id);
  }
  for (int b = 0; b < 256; ++b) {
    if (m.byte_to_token_[b] < 0) bad(path, "the vocabulary has no token for byte " + std::to_string(b) + " (not byte-level)");
  }
  if (f.has("tokenizer.ggml.bos_token_id")) c.bos_token_id = static_cast<std::int64_t>(f.get_uint("tokenizer.ggml.bos_token_id"));
  if (f.has("tokenizer.ggml.eos_token_id")) c.eos_token_id = static_cast<std::int64_t>(f.get_uint("tokenizer.ggml.eos_token_id"));
  for (const auto& [key, id] : {std::pair<const char*, std::int64_t>{"tokenizer.ggml.bos_token_id", c.bos_token_id},
                                {"tokenizer.ggml.eos_token_id", c.eos_token_id}}) {
    if (f.has(key) && (id < 0 || static_cast<std::uint64_t>(id) >= vocab)) {
      bad(path, std::string(key) + "=" + to_string(id) + " is not below the vocabulary size " + to_string(vocab));
    }
  }
  return m;
}

void BitLMModel::embed(std::int32_t token, float* out) const {
  const std::size_t d = config_.hidden_size, t = static_cast<std::size_t>(token);
  if (!token_embd_.empty()) {
    std::memcpy(out, &token_embd_[t * d], d * sizeof(float));
  } else {
    for (std::size_t e = 0; e < d; ++e) out[e] = head_t_[e * head_ld_ + t];
  }
}

BitLMCache BitLMModel::new_cache(std::size_t max_positions) const {
  require(max_positions <= config_.context_length,
          "BitLMModel::new_cache: " + std::to_string(max_positions) + " positions exceed the context length " +
              std::to_string(config_.context_length));
  BitLMCache cache;
  cache.capacity = max_positions == 0 ? config_.context_length : max_positions;
  const std::size_t row = config_.num_kv_heads * config_.head_dim;
  cache.key_stride = round_up16(cache.capacity);
  if (cache.key_stride / 16 % 2 == 0) cache.key_stride += 16;
  cache.keys.assign(config_.num_layers, HugeVector<float>(cache.key_stride * row));
  cache.values.assign(config_.num_layers, HugeVector<float>(cache.capacity * row));
  return cache;
}

namespace {

// The scratch of one forward pass, carved out of one allocation, uninitialised: carve() runs once
// on a counting Scratch (no memory) for the size, then on the real one. Not on huge pages: with
// the weights on them too, prefill ran 10-20 % slower in interleaved runs (2-core EPYC, 180M
// model, 1 thread: 740-920 tok/s against 890-930 with only the weights and the KV cache on huge
// pages; the cause was not found, the two 2 MiB-aligned blocks may share cache sets).
class Scratch {
 public:
  Scratch() = default;  // counting only
  explicit Scratch(std::size_t bytes) : base_(std::max<std::size_t>(bytes, 1)) {}

  std::size_t used() const noexcept { return used_; }
  // The next count elements (cache-line aligned); nullptr while counting.
  template <class T>
  T* take(std::size_t count) {
    T* p = base_.empty() ? nullptr : reinterpret_cast<T*>(base_.data() + used_);
    used_ += (count * sizeof(T) + kCacheLine - 1) / kCacheLine * kCacheLine;
    return p;
  }

 private:
  AlignedBuffer<std::uint8_t> base_;
  std::size_t used_ = 0;
};

// int8 activation rows for the kernels, padded to the weight layout; the values (padding
// included, zeros) are written row by row by norm_quantize, on the thread that quantizes the row.
struct Int8Rows {
  std::size_t stride = 0;
  std::int8_t* values = nullptr;  // rows x stride, in the forward pass's Scratch
  std::vector<float> scales;
  std::vector<std::int32_t> sums;
  Int8Rows(std::size_t rows, std::size_t cols) : stride(padded_cols(cols)), scales(rows), sums(rows) {}
};

// Multiply-adds a parallel chunk should at least do, so that it outweighs its hand-off.
constexpr std::size_t kMinWork = std::size_t{1} << 15;

// Calls body(begin, end) over [0, count) rows: split over the team when there is more than one
// row (prefill), on the caller for a single row (decode), where a hand-off costs more than it saves.
template <class Body>
void for_rows(Team& team, std::size_t count, Body&& body) {
  if (count <= 1) {
    body(0, count);
    return;
  }
  team.parallel_for(count, 1, 1, [&](std::size_t begin, std::size_t end, std::size_t) { body(begin, end); });
}

// q = quantize(rms_norm(x[m]) * w) for the rows m of x (M x cols, row stride ldx); scratch holds M x cols.
void norm_quantize(Team& team, const kernels::LmOps& ops, const float* x, std::size_t ldx, std::size_t M, std::size_t cols, const float* w,
                   float eps, float* scratch, Int8Rows& q) {
  for_rows(team, M, [&](std::size_t m0, std::size_t m1) {
    for (std::size_t m = m0; m < m1; ++m) {
      float* row = scratch + m * cols;
      std::int8_t* dst = q.values + m * q.stride;
      rms_norm(ops, x + m * ldx, w, cols, eps, row);
      if (!ops.quantize(row, cols, dst, &q.scales[m], &q.sums[m])) {
        quantize_activation_row(row, cols, dst, q.scales[m]);  // throws: NaN or Inf
      }
      std::memset(dst + cols, 0, q.stride - cols);
    }
  });
}

}  // namespace

std::vector<float> BitLMModel::forward(const std::int32_t* tokens, std::size_t n, BitLMCache& cache,
                                       bool all_logits) const {
  const BitLMConfig& c = config_;
  require(n > 0, "BitLMModel::forward: no tokens");
  // Every layer's keys and values must be the sizes new_cache(capacity) gives (a cache of another
  // capacity can have the same key stride, and the kernels write positions up to the capacity).
  bool cache_fits = cache.capacity <= c.context_length && cache.keys.size() == c.num_layers &&
                    cache.values.size() == c.num_layers && cache.key_stride >= round_up16(cache.capacity);
  for (std::size_t l = 0; cache_fits && l < c.num_layers; ++l) {
    cache_fits = cache.keys[l].size() == cache.key_stride * c.num_kv_heads * c.head_dim &&
                 cache.values[l].size() == cache.capacity * c.num_kv_heads * c.head_dim;
  }
  require(cache_fits, "BitLMModel::forward: the cache belongs to another model (use new_cache())");
  require(cache.length + n <= cache.capacity,
          "BitLMModel::forward: " + std::to_string(cache.length + n) + " positions exceed the cache's " +
              std::to_string(cache.capacity) + (cache.capacity == c.context_length ? " (the context length)" : ""));
  for (std::size_t t = 0; t < n; ++t) {
    require(tokens[t] >= 0 && static_cast<std::size_t>(tokens[t]) < c.vocab_size,
            "BitLMModel::forward: token id " + std::to_string(tokens[t]) + " is outside the vocabulary");
  }
  const std::size_t d = c.hidden_size, hd = c.head_dim, nq = c.num_heads * hd, nkv = c.num_kv_heads * hd,
                    ff = c.intermediate_size, group = c.num_heads / c.num_kv_heads, start = cache.length,
                    half = hd / 2, nqkv = nq + 2 * nkv;
  Team& team = default_team();
  const kernels::GemmInt8Fn gemm = kernels::pick_gemm_int8();
  const kernels::LmOps& ops = kernels::lm_ops();
  const std::size_t ks = cache.key_stride;

  // Scratch, uninitialised: every element is written before it is read.
  float *h, *normed, *qkv, *o, *act, *scores, *rope_cos, *rope_sin;
  std::int32_t* acc;
  Int8Rows xd(n, d), xq(n, nq), xff(n, ff);
  auto carve = [&](Scratch& s) {
    h = s.take<float>(n * d);
    normed = s.take<float>(n * std::max(d, std::max(nq, ff)));
    qkv = s.take<float>(n * nqkv);
    o = s.take<float>(n * nq);
    act = s.take<float>(n * ff);
    scores = s.take<float>(team.size() * group * (start + n));
    rope_cos = s.take<float>(n * half);
    rope_sin = s.take<float>(n * half);
    acc = s.take<std::int32_t>(n * std::max(nqkv, std::max(d, 2 * ff)));
    for (Int8Rows* q : {&xd, &xq, &xff}) q->values = s.take<std::int8_t>(n * q->stride);
  };
  Scratch counting;
  carve(counting);
  Scratch scratch(counting.used());
  carve(scratch);
  for (std::size_t t = 0; t < n; ++t) embed(tokens[t], &h[t * d]);
  for (std::size_t t = 0; t < n; ++t) {  // the rotary angles of positions start..start+n
    for (std::size_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(start + t) * rope_inv_freq_[i];
      rope_cos[t * half + i] = std::cos(angle);
      rope_sin[t * half + i] = std::sin(angle);
    }
  }

  // Rows [n0, n1) of projection p's int8 GEMM on the activations x, into acc (n x p.rows).
  auto gemm_rows = [&](const Projection& p, const Int8Rows& x, std::size_t n0, std::size_t n1) {
    gemm(x.values, x.sums.data(), n, x.stride, p.packed.data, n0, n1, acc, p.packed.rows);
  };
  // Groups of 4 weight rows (the kernels' register blocking) per chunk, for kMinWork MACs a chunk.
  auto grain = [&](std::size_t row_macs) { return std::max<std::size_t>(1, kMinWork / (4 * row_macs * n)); };
  // Chunks per thread of the GEMMs and the attention: a prompt's sections take milliseconds, and
  // the smaller their last chunk, the less time a thread waits at the end for the others (a
  // chunk's claim costs well under a microsecond); a decode step keeps a few chunks of kMinWork.
  const std::size_t per_thread = n >= kernels::kTiledMinRows ? 16 : 4;
  // y[m * ldy + r] (= or +=) the projection of x, rows split over the team in groups of 4.
  auto project = [&](const Projection& p, const Int8Rows& x, float* y, std::size_t ldy, bool add) {
    team.parallel_for(p.packed.rows, 4, grain(x.stride), [&](std::size_t r0, std::size_t r1, std::size_t) {
      gemm_rows(p, x, r0, r1);
      for (std::size_t m = 0; m < n; ++m) {
        ops.epilogue(&acc[m * p.packed.rows + r0], &p.scales[r0], x.scales[m], r1 - r0, add, &y[m * ldy + r0]);
      }
    }, per_thread);
  };
  auto rope = [&](float* x, std::size_t t) {  // token t of this call (position start + t)
    const float* cs = &rope_cos[t * half];
    const float* sn = &rope_sin[t * half];
    for (std::size_t i = 0; i < half; ++i) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cs[i] + (-x1) * sn[i];
      x[i + half] = x1 * cs[i] + x0 * sn[i];
    }
  };
  const float softmax_scale = 1.0f / std::sqrt(static_cast<float>(hd));

  for (std::size_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    HugeVector<float>& K = cache.keys[l];
    HugeVector<float>& V = cache.values[l];
    // attention: q, k, v in one GEMM; rotary on q and k; k and v into the cache
    norm_quantize(team, ops, h, d, n, d, L.attn_norm.data(), c.rms_norm_eps, normed, xd);
    project(L.qkv, xd, qkv, nqkv, false);
    for_rows(team, n, [&](std::size_t t0, std::size_t t1) {
      for (std::size_t t = t0; t < t1; ++t) {
        float* row = &qkv[t * nqkv];
        for (std::size_t hh = 0; hh < c.num_heads; ++hh) rope(row + hh * hd, t);
        for (std::size_t hh = 0; hh < c.num_kv_heads; ++hh) rope(row + nq + hh * hd, t);
        for (std::size_t e = 0; e < nkv; ++e) K[e * ks + start + t] = row[nq + e];  // transposed
        std::memcpy(&V[(start + t) * nkv], row + nq + nkv, nkv * sizeof(float));
      }
    });
    // one job per token and KV head: the query heads that share the KV head together (each key
    // and value read once for all of them); jobs in decreasing token order, so the chunks with the
    // longest causal rows are claimed first and the short ones even out the threads at the end
    const std::size_t width = start + n;
    team.parallel_for(n * c.num_kv_heads, 1, 1, [&](std::size_t j0, std::size_t j1, std::size_t slot) {
      float* sc = &scores[slot * group * width];
      for (std::size_t job = j0; job < j1; ++job) {
        const std::size_t t = n - 1 - job / c.num_kv_heads, kh = job % c.num_kv_heads;
        const std::size_t visible = start + t + 1;
        const float* qrows = &qkv[t * nqkv + kh * group * hd];
        ops.columns(qrows, hd, group, &K[kh * hd * ks], hd, ks, visible, softmax_scale, sc, width);
        for (std::size_t g = 0; g < group; ++g) ops.softmax(sc + g * width, visible);
        ops.rows(sc, width, group, &V[kh * hd], nkv, visible, hd, &o[t * nq + kh * group * hd], hd);
      }
    }, per_thread);
    norm_quantize(team, ops, o, nq, n, nq, L.attn_sub_norm.data(), c.rms_norm_eps, normed, xq);
    project(L.o, xq, h, d, true);  // residual

    // gated FFN: gate and up rows j of one thread's range in one pass, then act(gate) * up
    norm_quantize(team, ops, h, d, n, d, L.ffn_norm.data(), c.rms_norm_eps, normed, xd);
    team.parallel_for(ff, 4, grain(2 * xd.stride), [&](std::size_t j0, std::size_t j1, std::size_t) {
      gemm_rows(L.gate_up, xd, j0, j1);
      gemm_rows(L.gate_up, xd, ff + j0, ff + j1);
      const std::size_t ld = L.gate_up.packed.rows;
      for (std::size_t m = 0; m < n; ++m) {
        ops.glu(&acc[m * ld + j0], &acc[m * ld + ff + j0], &L.gate_up.scales[j0], &L.gate_up.scales[ff + j0],
                xd.scales[m], j1 - j0, c.relu2, &act[m * ff + j0]);
      }
    }, per_thread);
    norm_quantize(team, ops, act, ff, n, ff, L.ffn_sub_norm.data(), c.rms_norm_eps, normed, xff);
    project(L.down, xff, h, d, true);  // residual
  }
  cache.length += n;

  const std::size_t first = all_logits ? 0 : n - 1;
  const std::size_t rows = n - first;
  std::vector<float> logits(rows * c.vocab_size);
  for_rows(team, rows, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) rms_norm(ops, &h[(first + r) * d], output_norm_.data(), d, c.rms_norm_eps, &normed[r * d]);
  });
  team.parallel_for(c.vocab_size, 16, std::max<std::size_t>(1, kMinWork / (16 * d * rows)),
                    [&](std::size_t v0, std::size_t v1, std::size_t) {
    for (std::size_t r = 0; r < rows; ++r) {
      ops.columns(&normed[r * d], d, 1, head_t_.data() + v0, d, head_ld_, v1 - v0, 1.0f, &logits[r * c.vocab_size + v0], 0);
    }
  });
  return logits;
}

std::vector<std::int32_t> BitLMModel::generate(const std::vector<std::int32_t>& prompt, std::size_t max_new_tokens) const {
  require(!prompt.empty(), "BitLMModel::generate: the prompt must hold at least one token");
  require(prompt.size() + max_new_tokens <= config_.context_length,
          "BitLMModel::generate: prompt plus new tokens exceed the context length " + std::to_string(config_.context_length));
  BitLMCache cache = new_cache(prompt.size() + max_new_tokens);  // what this run uses, not the whole context
  std::vector<std::int32_t> ids = prompt;
  std::vector<float> logits = forward(prompt.data(), prompt.size(), cache);
  for (std::size_t step = 0; step < max_new_tokens; ++step) {
    const auto best = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    ids.push_back(best);
    if (best == config_.eos_token_id || step + 1 == max_new_tokens) break;
    logits = forward(&ids.back(), 1, cache);
  }
  return ids;
}

std::vector<std::int32_t> BitLMModel::encode(const std::string& text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char ch : text) ids.push_back(byte_to_token_[ch]);
  return ids;
}

std::string BitLMModel::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (std::int32_t id : ids) {
    if (id >= 0 && static_cast<std::size_t>(id) < token_to_byte_.size() && token_to_byte_[id] >= 0) {
      out.push_back(static_cast<char>(token_to_byte_[id]));
    }
  }
  return out;
}

}  // namespace lowbit::bitlab

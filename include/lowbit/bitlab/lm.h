// BitLMModel: a BitNet b1.58 decoder language model loaded from a GGUF file of llama.cpp's
// "bitnet" architecture (as python/bitmodels/gguf_io.py writes it), run on the packed ternary
// kernels (gemm.h) with a KV cache. No Python.
//
// Per block (BitNet b1.58, arXiv:2402.17764 / 2504.12285; llama.cpp src/models/bitnet.cpp):
//   a = rms_norm(h) * attn_norm;  q, k, v = bitlinear_int8(a) (per-token int8 activations) * scale
//   q, k = rope_neox(q, k);  o = softmax(q k^T / sqrt(d), causal) v   (KV heads shared by groups)
//   h += bitlinear_int8(rms_norm(o) * attn_sub_norm) [attn_output]
//   f = rms_norm(h) * ffn_norm;  g = act(gate f) * (up f)   act = relu^2 or silu
//   h += bitlinear_int8(rms_norm(g) * ffn_sub_norm) [ffn_down]
// logits = (rms_norm(h) * output_norm) . token_embd (or output.weight when present).
// The projections are bit-identical to PyTorch's BitLinear eval path; the float glue (norms,
// rotary, softmax, head) follows the same formulas in float32, so greedy tokens agree with
// bitmodels.BitLM.generate (tested) while logits may differ in the last bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "lowbit/bitlab/packing.h"

namespace lowbit::bitlab {

// The largest bitnet.context_length a file may declare: positions enter the rotary angles as float32,
// which holds every integer up to 2^24, so a larger value is refused (IoError naming the key).
// Nothing allocated at load depends on it (the rotary angles are computed per call; caches hold
// the positions asked for).
inline constexpr std::size_t kMaxContextLength = std::size_t{1} << 24;

struct BitLMConfig {
  std::size_t vocab_size = 0;
  std::size_t hidden_size = 0;
  std::size_t num_layers = 0;
  std::size_t num_heads = 0;
  std::size_t num_kv_heads = 0;
  std::size_t intermediate_size = 0;
  std::size_t context_length = 0;
  std::size_t head_dim = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool relu2 = true;  // false: silu (SwiGLU)
  std::int64_t bos_token_id = -1;
  std::int64_t eos_token_id = -1;
};

// Memory that a forward pass streams through (the packed weights, once per token; the KV cache,
// whose transposed keys a token writes and reads across hundreds of rows): from
// 2 MiB on, 2 MiB-aligned and offered to Linux for transparent huge pages (madvise
// MADV_HUGEPAGE; the kernel may decline, and THP "never" turns it off), so that streaming it does
// not miss the TLB every 4 KiB. std::bad_alloc when out of memory.
void* huge_allocate(std::size_t bytes);
void huge_deallocate(void* p) noexcept;
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(huge_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { huge_deallocate(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};
template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

// The keys and values of every layer for the tokens seen so far.
struct BitLMCache {
  std::size_t length = 0;                  // tokens cached
  std::size_t capacity = 0;                // positions it holds (new_cache's max_positions)
  std::size_t key_stride = 0;              // positions per row of keys: capacity rounded up to
                                           // a multiple of 16 (whole tiles of the score kernel), plus
                                           // 16 when that is an even number of 64-byte lines (rows
                                           // of a power-of-two stride would share cache sets)
  std::vector<HugeVector<float>> keys;     // per layer: (num_kv_heads * head_dim) x key_stride
                                           // (transposed: a head's scores read rows of positions)
  std::vector<HugeVector<float>> values;   // per layer: capacity x (num_kv_heads * head_dim)
};

class BitLMModel {
 public:
  // IoError when the file is unreadable, not GGUF, not the "bitnet" architecture, or its tensors
  // are missing, of other shapes, or not ternary; the message names the file.
  static BitLMModel load(const std::string& path);

  // Move-only: the projections point into weights_, whose block a move hands over unchanged.
  BitLMModel(BitLMModel&&) noexcept = default;
  BitLMModel& operator=(BitLMModel&&) noexcept = default;
  BitLMModel(const BitLMModel&) = delete;
  BitLMModel& operator=(const BitLMModel&) = delete;

  const BitLMConfig& config() const noexcept { return config_; }
  // A cache for at most max_positions tokens (0: context_length; like llama.cpp's -c, its memory
  // grows with it). InvalidArgument when max_positions exceeds context_length.
  BitLMCache new_cache(std::size_t max_positions = 0) const;

  // Runs tokens[0..n) at positions cache.length.. and appends them to the cache. Returns the
  // logits of the last token (vocab_size floats), or of every token (n x vocab_size) with
  // all_logits. InvalidArgument on an empty input, an id outside the vocabulary, more tokens
  // than the cache's capacity (at most context_length), or a cache whose layers' sizes are not this model's new_cache().
  // The n tokens go through every projection as one n-row int8 GEMM (prefill), and every token's
  // arithmetic is the same whatever n is and however many threads run: the logits are
  // bit-identical whether a prompt is run at once, in pieces or token by token (tested).
  // Threads: the process-wide bitlab Team (LOWBIT_NUM_THREADS, else every core); calls from
  // several threads at once are safe (one of them runs on the team, the others single-threaded).
  std::vector<float> forward(const std::int32_t* tokens, std::size_t n, BitLMCache& cache,
                             bool all_logits = false) const;

  // Greedy decoding: the prompt followed by up to max_new_tokens tokens (stops after EOS).
  std::vector<std::int32_t> generate(const std::vector<std::int32_t>& prompt, std::size_t max_new_tokens) const;

  // Byte-level tokenizer of the file (GPT-2 byte alphabet, tokenizer.ggml.model "gpt2").
  std::vector<std::int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;  // special tokens are skipped

 private:
  BitLMModel() = default;
  struct Projection {
    PackedTernaryView packed;   // rows in weights_
    std::vector<float> scales;  // one per output row (the tensor's scale repeated)
  };
  struct Layer {
    std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;
    Projection qkv;     // attn_q, attn_k, attn_v stacked (one activation quantization, one pass)
    Projection o;
    Projection gate_up; // ffn_gate rows, then ffn_up rows
    Projection down;
  };
  BitLMConfig config_;
  std::vector<float> rope_inv_freq_;  // head_dim / 2 rotary frequencies
  void embed(std::int32_t token, float* out) const;  // the token's embedding row (hidden floats)

  std::vector<float> token_embd_;  // vocab x hidden; empty when the head is tied to it
  std::vector<float> head_t_;      // the output head transposed: hidden x head_ld_ (zero padding)
  std::size_t head_ld_ = 0;        // vocab rounded up to a multiple of 16 (whole score tiles)
  std::vector<float> output_norm_;
  std::vector<Layer> layers_;
  HugeVector<std::uint8_t> weights_;  // every projection's packed rows, one block

  std::vector<std::int32_t> byte_to_token_;  // 256 entries
  std::vector<std::int16_t> token_to_byte_;  // vocab entries, -1 for special tokens
};

}  // namespace lowbit::bitlab

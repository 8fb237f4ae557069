#include "lowbit/coset/packing.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"

namespace lowbit::coset {

namespace {
int bit_width_of(std::uint64_t v) { return static_cast<int>(std::bit_width(v)); }

std::uint64_t power(int q, int d) {
  std::uint64_t p = 1;
  for (int j = 0; j < d; ++j) p *= static_cast<std::uint64_t>(q);
  return p;
}

// Records start on byte boundaries every 8 records, so chunks of 8k records are independent.
constexpr std::size_t kGrain = 8 * 1024;

// fn(begin, end) over [0, n) in chunks that start at multiples of kGrain.
template <class Fn>
void for_aligned_chunks(std::size_t n, Fn&& fn) {
  const std::size_t chunks = (n + kGrain - 1) / kGrain;
  parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) fn(c * kGrain, std::min(n, (c + 1) * kGrain));
  });
}
}  // namespace

CodeLayout code_layout(const QuantizationConfig& config) {
  config.validate();
  const int max_t = config.disable_overload_protection ? 0 : config.max_scaling_iterations;
  CodeLayout l{};
  l.level_bits = bit_width_of(power(config.q, config.dim()) - 1);
  l.t_bits = bit_width_of(static_cast<std::uint64_t>(max_t));
  l.record_bits = l.t_bits + config.M * l.level_bits;
  return l;
}

std::size_t packed_bytes(const QuantizationConfig& config, std::size_t n) {
  return (n * static_cast<std::size_t>(code_layout(config).record_bits) + 7) / 8;
}

std::uint64_t level_index(const std::uint8_t* b, int d, int q) noexcept {
  std::uint64_t idx = 0;
  for (int j = d - 1; j >= 0; --j) idx = idx * static_cast<std::uint64_t>(q) + b[j];
  return idx;
}

void level_codes(std::uint64_t index, int d, int q, std::uint8_t* b) noexcept {
  for (int j = 0; j < d; ++j) {
    b[j] = static_cast<std::uint8_t>(index % static_cast<std::uint64_t>(q));
    index /= static_cast<std::uint64_t>(q);
  }
}

void pack_codes(const QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
                std::size_t n, std::uint8_t* out) {
  const CodeLayout l = code_layout(config);
  const int d = config.dim();
  const std::size_t stride = static_cast<std::size_t>(config.M) * d;
  const std::size_t total = packed_bytes(config, n);
  for_aligned_chunks(n, [&](std::size_t begin, std::size_t end) {
    // begin is a multiple of kGrain (hence of 8): this chunk owns whole bytes.
    std::size_t byte = begin * l.record_bits / 8;
    const std::size_t last = end == n ? total : end * l.record_bits / 8;
    unsigned __int128 acc = 0;
    int bits = 0;
    auto put = [&](std::uint64_t value, int width) {
      acc |= static_cast<unsigned __int128>(value) << bits;
      bits += width;
      while (bits >= 8) {
        out[byte++] = static_cast<std::uint8_t>(acc);
        acc >>= 8;
        bits -= 8;
      }
    };
    for (std::size_t i = begin; i < end; ++i) {
      put(t[i], l.t_bits);
      for (int m = 0; m < config.M; ++m) put(level_index(codes + i * stride + m * d, d, config.q), l.level_bits);
    }
    if (bits > 0) out[byte++] = static_cast<std::uint8_t>(acc);
    while (byte < last) out[byte++] = 0;
  });
}

void unpack_codes(const QuantizationConfig& config, const std::uint8_t* packed, std::size_t n,
                  std::uint8_t* codes, std::uint8_t* t) {
  const CodeLayout l = code_layout(config);
  const int d = config.dim();
  const std::size_t stride = static_cast<std::size_t>(config.M) * d;
  const std::uint64_t levels_count = power(config.q, d);
  const int max_t = config.disable_overload_protection ? 0 : config.max_scaling_iterations;
  const std::size_t total = packed_bytes(config, n);
  for_aligned_chunks(n, [&](std::size_t begin, std::size_t end) {
    std::size_t byte = begin * l.record_bits / 8;
    unsigned __int128 acc = 0;
    int bits = 0;
    auto get = [&](int width) -> std::uint64_t {
      while (bits < width) {
        const std::uint8_t next = byte < total ? packed[byte] : 0;
        ++byte;
        acc |= static_cast<unsigned __int128>(next) << bits;
        bits += 8;
      }
      const std::uint64_t v = width == 0 ? 0 : static_cast<std::uint64_t>(acc & ((static_cast<unsigned __int128>(1) << width) - 1));
      acc >>= width;
      bits -= width;
      return v;
    };
    for (std::size_t i = begin; i < end; ++i) {
      const std::uint64_t ti = get(l.t_bits);
      if (ti > static_cast<std::uint64_t>(max_t))
        throw InvalidArgument("unpack_codes: record " + std::to_string(i) + " has T=" + std::to_string(ti) +
                              " beyond max_scaling_iterations=" + std::to_string(max_t));
      t[i] = static_cast<std::uint8_t>(ti);
      for (int m = 0; m < config.M; ++m) {
        const std::uint64_t idx = get(l.level_bits);
        if (idx >= levels_count)
          throw InvalidArgument("unpack_codes: record " + std::to_string(i) + " has a level index " +
                                std::to_string(idx) + " >= q^d");
        level_codes(idx, d, config.q, codes + i * stride + m * d);
      }
    }
  });
}

}  // namespace lowbit::coset

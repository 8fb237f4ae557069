// Encode/decode drivers: validation, scaling with overload retries, dither, threads, dispatch.
#include "lowbit/coset/hnlq.h"

#include <cmath>
#include <string>
#include <vector>

#include "hnlq_kernels.h"
#include "lattice_step.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"

namespace lowbit::coset {

void QuantizationConfig::validate() const {
  require(q >= kMinQ && q <= kMaxQ,
          "q: must be in [" + std::to_string(kMinQ) + ", " + std::to_string(kMaxQ) + "], got " + std::to_string(q));
  require(M >= kMinLevels && M <= kMaxLevels, "M: must be in [" + std::to_string(kMinLevels) + ", " +
                                                  std::to_string(kMaxLevels) + "], got " + std::to_string(M));
  require(std::isfinite(beta) && beta > 0.0, "beta: must be a finite positive number");
  require(std::isfinite(alpha) && alpha > 0.0, "alpha: must be a finite positive number");
  require(max_scaling_iterations >= 0 && max_scaling_iterations <= kMaxScalingIterations,
          "max_scaling_iterations: must be in [0, " + std::to_string(kMaxScalingIterations) + "], got " +
              std::to_string(max_scaling_iterations));
  require(std::isfinite(std::exp2(alpha * max_scaling_iterations)) && std::isfinite(scale<float>(max_scaling_iterations)),
          "alpha: beta * 2^(alpha * max_scaling_iterations) overflows float");
}

template <class T>
T QuantizationConfig::scale(int t) const {
  const double base = disable_scaling ? 1.0 : beta;
  return static_cast<T>(base * std::exp2(alpha * t));
}
template float QuantizationConfig::scale<float>(int) const;
template double QuantizationConfig::scale<double>(int) const;

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <class T>
kernels::EncodeFn<T> pick_encode() {
  static constexpr KernelSet<kernels::EncodeFn<T>> kSet{
      kernels::encode_scalar<T>, LOWBIT_AVX2_FN(kernels::encode_avx2<T>),
      LOWBIT_AVX512_FN(kernels::encode_avx512<T>)};
  return kSet.pick();
}

template <class T>
kernels::DecodeFn<T> pick_decode() {
  static constexpr KernelSet<kernels::DecodeFn<T>> kSet{
      kernels::decode_scalar<T>, LOWBIT_AVX2_FN(kernels::decode_avx2<T>),
      LOWBIT_AVX512_FN(kernels::decode_avx512<T>)};
  return kSet.pick();
}

constexpr std::size_t kChunk = 2048;  // vectors per task: a few tens of KiB of scratch

// y = x / s - u for vectors [begin, begin + count); s == 1 skips the (identity) division.
template <class T>
void scaled_input(const QuantizationConfig& cfg, const T* x, std::size_t begin, std::size_t count,
                  T s, T* y) {
  const int d = cfg.dim();
  const T* src = x + begin * d;
  const std::size_t total = count * d;
  if (s == T(1)) {
    for (std::size_t k = 0; k < total; ++k) y[k] = src[k];
  } else {
    for (std::size_t k = 0; k < total; ++k) y[k] = src[k] / s;
  }
  if (cfg.with_dither) {
    T u[kMaxDim];
    for (std::size_t i = 0; i < count; ++i) {
      dither_vector(cfg, begin + i, u);
      for (int j = 0; j < d; ++j) y[i * d + j] = y[i * d + j] - u[j];
    }
  }
}

template <class T>
void encode_block(const QuantizationConfig& cfg, const T* y, std::size_t n, std::uint8_t* codes,
                  std::uint8_t* over) {
  if (cfg.with_tie_dither) {  // the SIMD kernels implement this rule only
    pick_encode<T>()(cfg.lattice, cfg.q, cfg.M, y, n, codes, over);
    return;
  }
  kernels::encode_ref<T>(cfg.lattice, cfg.q, cfg.M, cfg.with_tie_dither, y, n, codes, over);
}

template <class T>
void decode_block(const QuantizationConfig& cfg, const std::uint8_t* codes, std::size_t n, T* out) {
  if (cfg.with_tie_dither) {
    pick_decode<T>()(cfg.lattice, cfg.q, cfg.M, codes, n, out);
    return;
  }
  kernels::decode_ref<T>(cfg.lattice, cfg.q, cfg.M, cfg.with_tie_dither, codes, n, out);
}

template <class T>
void require_finite(const T* x, std::size_t begin, std::size_t end, int d, const char* what) {
  for (std::size_t k = begin * d; k < end * d; ++k)
    if (!std::isfinite(x[k]))
      throw InvalidArgument(std::string(what) + ": x contains NaN or Inf (vector " + std::to_string(k / d) + ")");
}

}  // namespace

template <class T>
void dither_vector(const QuantizationConfig& cfg, std::uint64_t index, T* u) {
  // z uniform over the fundamental parallelepiped G [0,1)^d; z - Q(z) is uniform over the cell.
  const int d = cfg.dim();
  const auto g = generator_matrix(cfg.lattice);
  std::uint64_t state = cfg.dither_seed ^ (index * 0xD1B54A32D192ED03ull);
  double t[kMaxDim];
  for (int j = 0; j < d; ++j) t[j] = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
  T z[kMaxDim] = {}, point[kMaxDim], e[kMaxDim];
  for (int r = 0; r < d; ++r) {
    double s = 0.0;
    for (int k = 0; k < d; ++k) s += g[r * d + k] * t[k];
    z[r] = static_cast<T>(s);
  }
  detail::lattice_step(cfg.lattice, z, detail::make_step<T>(1.0, true, /*snap=*/true), point, e);
  const T inv_c = T(1) / static_cast<T>(coordinate_scale(cfg.lattice));
  for (int j = 0; j < d; ++j) u[j] = z[j] - point[j] * inv_c;
}
template void dither_vector<float>(const QuantizationConfig&, std::uint64_t, float*);
template void dither_vector<double>(const QuantizationConfig&, std::uint64_t, double*);

namespace {
// scales[k]: the divisor of the input after k overload retries, k = 0..max_t.
template <class T>
std::vector<T> scale_table(const QuantizationConfig& cfg, int max_t) {
  std::vector<T> scales(static_cast<std::size_t>(max_t) + 1);
  for (int k = 0; k <= max_t; ++k) scales[static_cast<std::size_t>(k)] = cfg.scale<T>(k);
  return scales;
}
}  // namespace

template <class T>
EncodeStats encode(const QuantizationConfig& cfg, const T* x, std::size_t n, std::uint8_t* codes,
                   std::uint8_t* t) {
  cfg.validate();
  const int d = cfg.dim();
  const std::size_t code_stride = static_cast<std::size_t>(cfg.M) * d;
  const int max_t = cfg.disable_overload_protection ? 0 : cfg.max_scaling_iterations;
  const std::vector<T> scales = scale_table<T>(cfg, max_t);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::size_t> retried(chunks, 0), overloaded(chunks, 0);
  parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
    std::vector<T> y(kChunk * d);
    std::vector<std::uint8_t> over(kChunk);
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t begin = c * kChunk;
      const std::size_t count = std::min(kChunk, n - begin);
      require_finite(x, begin, begin + count, d, "encode");
      scaled_input(cfg, x, begin, count, scales[0], y.data());
      encode_block<T>(cfg, y.data(), count, codes + begin * code_stride, over.data());
      for (std::size_t i = 0; i < count; ++i) {
        int k = 0;
        while (over[i] && k < max_t) {  // overload: retry this vector at the next scale
          ++k;
          scaled_input(cfg, x, begin + i, 1, scales[static_cast<std::size_t>(k)], y.data());
          kernels::encode_ref<T>(cfg.lattice, cfg.q, cfg.M, cfg.with_tie_dither, y.data(), 1,
                                 codes + (begin + i) * code_stride, &over[i]);
        }
        t[begin + i] = static_cast<std::uint8_t>(k);
        retried[c] += k > 0;
        overloaded[c] += over[i];
      }
    }
  });
  EncodeStats stats;
  for (std::size_t c = 0; c < chunks; ++c) {
    stats.retried += retried[c];
    stats.overloaded += overloaded[c];
  }
  return stats;
}

template <class T>
void decode(const QuantizationConfig& cfg, const std::uint8_t* codes, const std::uint8_t* t,
            std::size_t n, T* out) {
  cfg.validate();
  const int d = cfg.dim();
  const std::size_t code_stride = static_cast<std::size_t>(cfg.M) * d;
  const int max_t = cfg.disable_overload_protection ? 0 : cfg.max_scaling_iterations;
  const std::vector<T> scales = scale_table<T>(cfg, max_t);
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
    T u[kMaxDim];
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t begin = c * kChunk;
      const std::size_t count = std::min(kChunk, n - begin);
      const std::uint8_t* b = codes + begin * code_stride;
      for (std::size_t k = 0; k < count * code_stride; ++k)
        if (b[k] >= cfg.q)
          throw InvalidArgument("decode: b has a code " + std::to_string(b[k]) + " outside [0, q=" +
                                std::to_string(cfg.q) + ") (vector " + std::to_string(begin + k / code_stride) + ")");
      for (std::size_t i = 0; i < count; ++i)
        if (t[begin + i] > max_t)
          throw InvalidArgument("decode: T=" + std::to_string(t[begin + i]) + " exceeds the config's " +
                                std::to_string(max_t) + " scaling iterations (vector " + std::to_string(begin + i) + ")");
      T* o = out + begin * d;
      decode_block<T>(cfg, b, count, o);
      for (std::size_t i = 0; i < count; ++i) {
        const T s = scales[t[begin + i]];
        if (cfg.with_dither) {
          dither_vector(cfg, begin + i, u);
          for (int j = 0; j < d; ++j) o[i * d + j] = (o[i * d + j] + u[j]) * s;
        } else {
          for (int j = 0; j < d; ++j) o[i * d + j] = o[i * d + j] * s;
        }
      }
    }
  });
}

template <class T>
void quantize_reference(const QuantizationConfig& cfg, const T* x, std::size_t n, T* out) {
  cfg.validate();
  const int d = cfg.dim();
  const T s = cfg.scale<T>(0);
  std::vector<T> y(n * d);
  scaled_input(cfg, x, 0, n, s, y.data());
  closest_points(cfg.lattice, y.data(), n, out, cfg.with_tie_dither);
  T u[kMaxDim];
  for (std::size_t i = 0; i < n; ++i) {
    if (cfg.with_dither) {
      dither_vector(cfg, i, u);
      for (int j = 0; j < d; ++j) out[i * d + j] = (out[i * d + j] + u[j]) * s;
    } else {
      for (int j = 0; j < d; ++j) out[i * d + j] = out[i * d + j] * s;
    }
  }
}

template EncodeStats encode<float>(const QuantizationConfig&, const float*, std::size_t, std::uint8_t*, std::uint8_t*);
template EncodeStats encode<double>(const QuantizationConfig&, const double*, std::size_t, std::uint8_t*, std::uint8_t*);
template void decode<float>(const QuantizationConfig&, const std::uint8_t*, const std::uint8_t*, std::size_t, float*);
template void decode<double>(const QuantizationConfig&, const std::uint8_t*, const std::uint8_t*, std::size_t, double*);
template void quantize_reference<float>(const QuantizationConfig&, const float*, std::size_t, float*);
template void quantize_reference<double>(const QuantizationConfig&, const double*, std::size_t, double*);

}  // namespace lowbit::coset

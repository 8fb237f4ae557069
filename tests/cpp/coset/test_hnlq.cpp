// Hierarchical encode/decode: exact round trip, every config option, every SIMD level.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "coset/hnlq_kernels.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/coset/hnlq.h"

namespace lowbit::coset {
namespace {

constexpr LatticeType kAll[] = {LatticeType::Z2, LatticeType::D4, LatticeType::E8};

template <class T>
std::vector<T> gaussian(std::size_t count, double sigma, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, sigma);
  std::vector<T> x(count);
  for (auto& v : x) v = static_cast<T>(dist(rng));
  return x;
}

// For vectors that needed no retry (T = 0) and are not overloaded, decode must equal the
// reference quantizer bit for bit; vectors with T > 0 must equal it at their own scale.
template <class T>
void check_round_trip(const QuantizationConfig& cfg, std::size_t n, double sigma, unsigned seed) {
  const int d = cfg.dim();
  const auto x = gaussian<T>(n * d, sigma, seed);
  std::vector<std::uint8_t> codes(n * cfg.M * d), t(n);
  const auto stats = encode(cfg, x.data(), n, codes.data(), t.data());
  std::vector<T> out(n * d), ref(n * d);
  decode(cfg, codes.data(), t.data(), n, out.data());
  quantize_reference(cfg, x.data(), n, ref.data());
  std::size_t zero_t = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = i * cfg.M * d; k < (i + 1) * cfg.M * d; ++k) ASSERT_LT(codes[k], cfg.q);
    if (t[i] != 0) continue;
    ++zero_t;
    for (int j = 0; j < d; ++j)
      ASSERT_EQ(out[i * d + j], ref[i * d + j])
          << lattice_name(cfg.lattice) << " q=" << cfg.q << " M=" << cfg.M << " vector " << i;
  }
  EXPECT_EQ(stats.overloaded, 0u);
  // q = 2 is lopsided: the coset representatives are {-1, 0} per level (ties go up), so
  // about half of a centred input overloads at T = 0 whatever the scale.
  EXPECT_GT(zero_t, cfg.q == 2 ? n / 8 : n / 2) << "the test should mostly exercise T = 0: " << lattice_name(cfg.lattice) << " q=" << cfg.q << " M=" << cfg.M;
}

TEST(CosetHnlq, RoundTripIsExactForEveryLatticeQAndM) {
  for (auto type : kAll)
    for (int q = 2; q <= 16; ++q)
      for (int levels = 1; levels <= 4; ++levels) {
        QuantizationConfig cfg;
        cfg.lattice = type;
        cfg.q = q;
        cfg.M = levels;
        // Scale so that the input fills the nested cell: overloads happen but stay a minority.
        const double sigma = (q == 2 ? 0.04 : 0.1) * std::pow(q, levels);
        check_round_trip<float>(cfg, 257, sigma, 100 + q * 7 + levels);
        check_round_trip<double>(cfg, 65, sigma, 200 + q * 7 + levels);
      }
}

TEST(CosetHnlq, EveryConfigOption) {
  for (auto type : kAll) {
    QuantizationConfig cfg;
    cfg.lattice = type;
    cfg.q = 4;
    cfg.M = 2;
    cfg.beta = 0.37;
    cfg.alpha = 0.5;
    cfg.max_scaling_iterations = 20;
    check_round_trip<float>(cfg, 1000, 0.6, 1);
    cfg.with_dither = true;
    cfg.dither_seed = 99;
    check_round_trip<float>(cfg, 1000, 0.6, 2);
    check_round_trip<double>(cfg, 1000, 0.6, 3);
    cfg.disable_scaling = true;  // beta ignored
    check_round_trip<float>(cfg, 1000, 1.5, 4);
    cfg.with_dither = false;
    cfg.q = 3;  // odd q with the plain tie rule: exact for Z2 and D4 (no rounding ties)
    cfg.with_tie_dither = false;
    if (type != LatticeType::E8) check_round_trip<float>(cfg, 1000, 1.0, 5);
  }
}

TEST(CosetHnlq, OverloadRetriesAndTheirScales) {
  QuantizationConfig cfg;
  cfg.lattice = LatticeType::D4;
  cfg.q = 4;
  cfg.M = 1;
  cfg.max_scaling_iterations = 30;
  const std::size_t n = 500;
  const auto x = gaussian<float>(n * 4, 50.0, 9);  // far beyond q^M: most vectors retry
  std::vector<std::uint8_t> codes(n * 4), t(n);
  const auto stats = encode(cfg, x.data(), n, codes.data(), t.data());
  EXPECT_GT(stats.retried, n / 2);
  EXPECT_EQ(stats.overloaded, 0u);
  std::vector<float> out(n * 4);
  decode(cfg, codes.data(), t.data(), n, out.data());
  for (std::size_t i = 0; i < n; ++i) {
    QuantizationConfig at = cfg;  // the reference at the vector's own scale
    at.beta = std::exp2(static_cast<double>(t[i]));
    float ref[4];
    quantize_reference(at, x.data() + i * 4, 1, ref);
    for (int j = 0; j < 4; ++j) ASSERT_EQ(out[i * 4 + j], ref[j]);
    if (t[i] > 0) {  // minimality: one scale less would overload
      std::uint8_t c[4], over;
      float y[4];
      const float s = cfg.scale<float>(t[i] - 1);
      for (int j = 0; j < 4; ++j) y[j] = x[i * 4 + j] / s;
      kernels::encode_ref<float>(cfg.lattice, cfg.q, cfg.M, true, y, 1, c, &over);
      EXPECT_EQ(over, 1);
    }
  }
  cfg.disable_overload_protection = true;
  const auto none = encode(cfg, x.data(), n, codes.data(), t.data());
  EXPECT_EQ(none.retried, 0u);
  EXPECT_GT(none.overloaded, n / 2);
  for (auto v : t) EXPECT_EQ(v, 0);
}

TEST(CosetHnlq, BadInputThrows) {
  QuantizationConfig cfg;
  std::vector<float> x(8, 0.0f), out(8);
  std::vector<std::uint8_t> codes(16), t(2, 0);
  cfg.q = 1;
  EXPECT_THROW(encode(cfg, x.data(), 2, codes.data(), t.data()), InvalidArgument);
  cfg.q = 17;
  EXPECT_THROW(cfg.validate(), InvalidArgument);
  cfg.q = 4;
  cfg.M = 5;
  EXPECT_THROW(cfg.validate(), InvalidArgument);
  cfg.M = 2;
  cfg.beta = 0.0;
  EXPECT_THROW(cfg.validate(), InvalidArgument);
  cfg.beta = 1.0;
  x[5] = std::nanf("");
  try {
    encode(cfg, x.data(), 2, codes.data(), t.data());
    FAIL() << "NaN accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos);
  }
  codes[3] = 4;
  EXPECT_THROW(decode(cfg, codes.data(), t.data(), 2, out.data()), InvalidArgument);
  codes[3] = 0;
  t[1] = 11;
  EXPECT_THROW(decode(cfg, codes.data(), t.data(), 2, out.data()), InvalidArgument);
}

// The kernels of one SIMD level for element type T.
template <class T>
std::pair<kernels::EncodeFn<T>, kernels::DecodeFn<T>> kernels_at(SimdLevel level) {
#if defined(LOWBIT_HAVE_AVX512)
  if (level == SimdLevel::AVX512) return {kernels::encode_avx512<T>, kernels::decode_avx512<T>};
#endif
#if defined(LOWBIT_HAVE_AVX2)
  if (level == SimdLevel::AVX2) return {kernels::encode_avx2<T>, kernels::decode_avx2<T>};
#endif
  (void)level;
  return {kernels::encode_scalar<T>, kernels::decode_scalar<T>};
}

// One SIMD level against the scalar reference kernels, bit for bit, on awkward sizes and on
// inputs that hit ties (multiples of 1/4) and overloads (huge and just-beyond-the-bound values).
template <class T>
void check_level_matches_reference(SimdLevel level) {
  const auto [enc, dec] = kernels_at<T>(level);
  for (auto type : kAll) {
    const int d = lattice_dim(type);
    for (int q : {2, 3, 4, 7, 16})
      for (int m : {1, 2, 4})
        for (std::size_t n : {1, 3, 7, 15, 17, 33, 100, 1031}) {
          if (n > 100 && q != 4 && q != 3) continue;  // the long sweep on a few alphabets keeps the test fast
          auto y = gaussian<T>(n * d, 0.3 * std::pow(q, m), 77u + n + q);
          for (std::size_t k = 0; k < y.size(); k += 3) y[k] = std::round(y[k] * 4) / 4;
          if (type == LatticeType::E8 && n > 100) {  // near-ties between E8's two cosets: x = 1/4 + tiny
            std::mt19937_64 rng(n);
            std::uniform_int_distribution<int> ulps(-8, 8);
            for (std::size_t k = 0; k < y.size() / 2; ++k)
              y[k] = static_cast<T>(0.25) + static_cast<T>(ulps(rng)) * std::numeric_limits<T>::epsilon() / 8;
          }
          if (n > 5) y[4] = static_cast<T>(1e30);
          if (n > 9) y[9] = static_cast<T>(-kernels::overload_bound(q, m) - 0.25);
          std::vector<std::uint8_t> c_ref(n * m * d), o_ref(n), c(n * m * d), o(n);
          kernels::encode_ref<T>(type, q, m, true, y.data(), n, c_ref.data(), o_ref.data());
          enc(type, q, m, y.data(), n, c.data(), o.data());
          const std::string what = std::string(simd_level_name(level)) + " " + lattice_name(type) +
                                   " q=" + std::to_string(q) + " M=" + std::to_string(m) +
                                   " n=" + std::to_string(n) + " sizeof(T)=" + std::to_string(sizeof(T));
          ASSERT_EQ(c, c_ref) << what;
          ASSERT_EQ(o, o_ref) << what;
          std::vector<T> x_ref(n * d), x(n * d);
          kernels::decode_ref<T>(type, q, m, true, c_ref.data(), n, x_ref.data());
          dec(type, q, m, c_ref.data(), n, x.data());
          ASSERT_EQ(x, x_ref) << what;
        }
  }
}

// The public entry points at one level against the scalar level: same codes, same T (retries
// included), same decoded values.
template <class T>
void check_public_api_matches_scalar(SimdLevel level) {
  for (auto type : kAll) {
    QuantizationConfig cfg{.lattice = type, .q = 4, .M = 2, .beta = 0.3, .alpha = 0.5};
    const std::size_t n = 1037;
    const int d = cfg.dim();
    auto x = gaussian<T>(n * d, 2.0, 5);
    for (std::size_t k = 0; k < x.size(); k += 5) x[k] = std::round(x[k] * 4) / 4;
    for (bool dither : {false, true}) {
      cfg.with_dither = dither;
      std::vector<std::uint8_t> codes[2], t[2];
      std::vector<T> out[2];
      const SimdLevel at[2] = {SimdLevel::Scalar, level};
      for (int k = 0; k < 2; ++k) {
        set_simd_level(at[k]);
        codes[k].resize(n * cfg.M * d);
        t[k].resize(n);
        out[k].resize(n * d);
        encode(cfg, x.data(), n, codes[k].data(), t[k].data());
        EXPECT_EQ(last_dispatched_level(), at[k]);
        decode(cfg, codes[k].data(), t[k].data(), n, out[k].data());
        EXPECT_EQ(last_dispatched_level(), at[k]);
      }
      EXPECT_EQ(codes[1], codes[0]) << simd_level_name(level) << " " << lattice_name(type);
      EXPECT_EQ(t[1], t[0]) << simd_level_name(level) << " " << lattice_name(type);
      EXPECT_EQ(out[1], out[0]) << simd_level_name(level) << " " << lattice_name(type);
      EXPECT_NE(std::count_if(t[0].begin(), t[0].end(), [](std::uint8_t v) { return v > 0; }), 0)
          << "the input should exercise retries";
    }
  }
}

TEST(CosetHnlq, SimdLevelsMatchReferenceBitExactly) {
  for (auto level : available_simd_levels()) {
    set_simd_level(level);
    check_level_matches_reference<float>(level);
    check_level_matches_reference<double>(level);
  }
  set_simd_level(best_simd_level());
}

TEST(CosetHnlq, PublicApiAtEveryLevelMatchesScalar) {
  for (auto level : available_simd_levels()) {
    check_public_api_matches_scalar<float>(level);
    check_public_api_matches_scalar<double>(level);
  }
  set_simd_level(best_simd_level());
}

}  // namespace
}  // namespace lowbit::coset

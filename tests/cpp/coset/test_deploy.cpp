// Deployed layers (deploy.h): every SIMD level against the scalar level bit for bit, the scalar
// level against a double-precision reference within the epilogue's rounding bound, the packed
// decode against coset::decode, and the T entropy code (round trip, corrupt streams).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "coset/deploy_generic.h"
#include "coset/deploy_kernels.h"
#include "coset_test_data.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/coset/deploy.h"

namespace lowbit::coset {
namespace {

using test_data::gaussian;

QuantizationConfig make(LatticeType type, int q, int levels, double beta, double alpha, int max_t) {
  QuantizationConfig c;
  c.lattice = type;
  c.q = q;
  c.M = levels;
  c.beta = beta;
  c.alpha = alpha;
  c.max_scaling_iterations = max_t;
  return c;
}

// The deploy formats: the two fast ones (D4 q=4 M=2, E8 q=16 M=1), generic int8 ones (Z2: scalar
// dot; q not a power of two: 2- and 3-bit codes, some straddling bytes) and wide ones (|w| > 63:
// the int32 path).
std::vector<QuantizationConfig> formats() {
  return {make(LatticeType::D4, 4, 2, 3.08 / 16, 0.25, 15), make(LatticeType::E8, 16, 1, 3.36 / 16, 0.25, 15),
          make(LatticeType::E8, 4, 2, 3.67 / 16, 0.25, 15), make(LatticeType::Z2, 16, 1, 0.25, 1.0, 10),
          make(LatticeType::D4, 16, 1, 0.2, 0.5, 15),
          make(LatticeType::D4, 3, 2, 3.36 / 9, 0.25, 15),    // 2-bit codes, q = 3
          make(LatticeType::E8, 6, 1, 3.3 / 6, 0.25, 15),     // 3-bit codes straddle bytes
          make(LatticeType::Z2, 5, 2, 3.3 / 25, 0.5, 15),     // 3 bits, M = 2
          make(LatticeType::D4, 7, 2, 3.3 / 49, 0.25, 15),    // |w| <= 56: still int8
          make(LatticeType::D4, 4, 4, 3.3 / 256, 0.25, 15),   // wide: |w| <= 340
          make(LatticeType::E8, 16, 2, 3.3 / 256, 0.25, 15),  // wide: |w| <= 544
          make(LatticeType::Z2, 16, 2, 3.3 / 256, 0.5, 15),   // wide: |w| <= 136
          make(LatticeType::E8, 5, 3, 3.3 / 125, 0.25, 15),   // wide, 3-bit codes: |w| <= 310
          // alpha so small that every T rounds to scale(0): the epilogue's exact chunks go by the scale, not
          // by T (packed_linear then runs the panel path instead of the fused GEMV)
          make(LatticeType::D4, 4, 2, 3.08 / 16, 1e-9, 15)};
}

struct Layer {
  QuantizationConfig config;
  std::size_t rows, blocks;
  std::vector<std::uint8_t> codes, t;
  std::vector<float> row_scale, bias;
  PackedLinearView view() const {
    PackedLinearView v;
    v.config = config;
    v.rows = rows;
    v.blocks = blocks;
    v.codes = codes.data();
    v.t = t.data();
    v.row_scale = row_scale.data();
    v.bias = bias.data();
    return v;
  }
};

// A Gaussian matrix encoded with the config (row scale 1.5 + row / 7), packed for deployment.
Layer encoded_layer(const QuantizationConfig& c, std::size_t rows, std::size_t blocks, unsigned seed,
                    std::vector<std::uint8_t>* raw_codes = nullptr, std::vector<std::uint8_t>* raw_t = nullptr) {
  const int d = c.dim();
  const auto a = gaussian(rows * blocks * d, 1.0, seed);
  std::vector<std::uint8_t> codes(rows * blocks * c.M * d), t(rows * blocks);
  encode<float>(c, a.data(), rows * blocks, codes.data(), t.data());
  Layer l{c, rows, blocks, std::vector<std::uint8_t>(rows * deploy_code_row_bytes(c, blocks)),
          std::vector<std::uint8_t>(rows * deploy_t_row_bytes(blocks)), {}, gaussian(rows, 0.5, seed + 1)};
  for (std::size_t n = 0; n < rows; ++n) l.row_scale.push_back(1.5f + static_cast<float>(n) / 7.0f);
  deploy_pack(c, rows, blocks, codes.data(), t.data(), l.codes.data(), l.t.data());
  if (raw_codes) *raw_codes = codes;
  if (raw_t) *raw_t = t;
  return l;
}

// packed_linear on `batch` rows of x at every SIMD level gives the scalar level's bits (and records
// the level it ran at); `what` names the case in a failure.
void expect_every_level_matches_scalar(const Layer& l, const std::vector<float>& x, std::size_t batch,
                                       const std::string& what) {
  std::vector<float> ref(batch * l.rows), got(batch * l.rows);
  {
    ScopedSimdLevel scalar(SimdLevel::Scalar);
    packed_linear(l.view(), x.data(), batch, ref.data());
  }
  for (auto level : available_simd_levels()) {
    ScopedSimdLevel forced(level);
    std::fill(got.begin(), got.end(), -1.0f);
    packed_linear(l.view(), x.data(), batch, got.data());
    EXPECT_EQ(last_dispatched_level(), level);
    ASSERT_EQ(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)))
        << simd_level_name(level) << " " << what << " batch=" << batch;
  }
}

TEST(CosetDeploy, EveryLevelMatchesScalarBitExactly) {
  for (const auto& c : formats())
    for (std::size_t rows : {1, 3, 17})
      for (std::size_t blocks : {1, 3, 7, 15, 17, 33, 64})
        for (std::size_t batch : {1, 3, 5, 8}) {
          const Layer l = encoded_layer(c, rows, blocks, static_cast<unsigned>(rows * 100 + blocks));
          const auto x = gaussian(batch * blocks * c.dim(), 2.0, static_cast<unsigned>(batch + blocks));
          expect_every_level_matches_scalar(l, x, batch,
                                            std::string(lattice_name(c.lattice)) + " q=" + std::to_string(c.q) +
                                                " M=" + std::to_string(c.M) + " rows=" + std::to_string(rows) +
                                                " blocks=" + std::to_string(blocks));
        }
}

TEST(CosetDeploy, MatchesDoubleReferenceWithinEpilogueRounding) {
  // Reference: the decoded weights times the int8 activations, summed in double. The kernel's
  // integer block sums are exact; its float epilogue rounds each s_k * I_k once, adds at most
  // blocks/16 terms per partial sum, 4 tree levels and 3 final products: relative to the sum of
  // magnitudes, its error is below (blocks/16 + 8) * 2^-24 (plus the decoded weights' own
  // rounding in the reference, 3 * 2^-24 per term, and on the wide path the conversion of
  // I_k to float, 2^-24 per term, when |I_k| > 2^24).
  for (const auto& c : formats())
    for (std::size_t blocks : {1, 17, 100}) {
      const std::size_t rows = 9, batch = 2, cols = blocks * c.dim();
      const Layer l = encoded_layer(c, rows, blocks, 5);
      const auto x = gaussian(batch * cols, 1.0, 9);
      std::vector<float> w(rows * cols), y(batch * rows);
      packed_decode(l.view(), w.data());
      packed_linear(l.view(), x.data(), batch, y.data());
      for (std::size_t m = 0; m < batch; ++m) {
        float amax = 0.0f;
        for (std::size_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(x[m * cols + i]));
        const float xs = amax / 127.0f;
        for (std::size_t n = 0; n < rows; ++n) {
          double sum = 0.0, mag = 0.0;
          for (std::size_t i = 0; i < cols; ++i) {
            const double xq = std::clamp(std::nearbyint(x[m * cols + i] / xs), -127.0f, 127.0f);
            sum += static_cast<double>(w[n * cols + i]) * xq * xs;
            mag += std::fabs(static_cast<double>(w[n * cols + i]) * xq * xs);
          }
          const double tol = (static_cast<double>(blocks) / 16 + 12) * std::ldexp(1.0, -24) * mag + 1e-30;
          EXPECT_NEAR(y[m * rows + n], sum + l.bias[n], tol + std::fabs(l.bias[n]) * std::ldexp(1.0, -24))
              << lattice_name(c.lattice) << " q=" << c.q << " blocks=" << blocks;
        }
      }
    }
}

TEST(CosetDeploy, PackedDecodeEqualsHnlqDecode) {
  for (const auto& c : formats()) {
    const std::size_t rows = 5, blocks = 19;
    std::vector<std::uint8_t> codes, t;
    const Layer l = encoded_layer(c, rows, blocks, 3, &codes, &t);
    std::vector<float> w(rows * blocks * c.dim()), ref(w.size());
    packed_decode(l.view(), w.data());
    decode<float>(c, codes.data(), t.data(), rows * blocks, ref.data());
    for (std::size_t i = 0; i < w.size(); ++i) {
      const float expect = ref[i] * l.row_scale[i / (blocks * c.dim())];
      EXPECT_NEAR(w[i], expect, 4e-7f * std::fabs(expect)) << lattice_name(c.lattice) << " q=" << c.q << " i=" << i;
    }
  }
}

TEST(CosetDeploy, FastDecodersEqualHnlqDecodeOnRandomCodesAtEveryLevel) {
  // Uniformly random codes reach every coset, parity fix and tie of the decode; with beta = 1,
  // T = 0 and row scale 1 both sides are exact (half-)integers, so they must be equal.
  std::mt19937 rng(17);
  for (const auto& base : {make(LatticeType::E8, 16, 1, 1.0, 1.0, 15), make(LatticeType::D4, 4, 2, 1.0, 1.0, 15)}) {
    const int d = base.dim();
    const std::size_t blocks = 4099;
    std::vector<std::uint8_t> codes(blocks * base.M * d), t(blocks, 0);
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % base.q);
    Layer l{base, 1, blocks, std::vector<std::uint8_t>(deploy_code_row_bytes(base, blocks)),
            std::vector<std::uint8_t>(deploy_t_row_bytes(blocks)), {1.0f}, {0.0f}};
    deploy_pack(base, 1, blocks, codes.data(), t.data(), l.codes.data(), l.t.data());
    std::vector<float> ref(blocks * d), got(blocks * d);
    decode<float>(base, codes.data(), t.data(), blocks, ref.data());
    for (auto level : available_simd_levels()) {
      ScopedSimdLevel forced(level);
      packed_decode(l.view(), got.data());
      ASSERT_EQ(got, ref) << simd_level_name(level) << " " << lattice_name(base.lattice);
    }
  }
}

TEST(CosetDeploy, D4ByteTableDecodeEqualsTheReference) {
  // Every D4 q=4 M=2 decoder (gathers at AVX2 / AVX-512, byte permutes with VBMI) against the
  // scalar twin on random level indices, lengths around the 16- and 64-block strides.
  QuantizationConfig c = make(LatticeType::D4, 4, 2, 0.5, 0.25, 15);
  std::vector<float> scales16(16);
  for (int t = 0; t < 16; ++t) scales16[static_cast<std::size_t>(t)] = c.scale<float>(t);
  // The tables come from the library's own builder: decode one row through packed_decode first.
  std::mt19937 rng(23);
  for (std::size_t blocks : {1, 15, 16, 63, 64, 65, 200}) {
    std::vector<std::uint8_t> codes(2 * blocks), t((blocks + 1) / 2);
    for (auto& v : codes) v = static_cast<std::uint8_t>(rng());
    for (auto& v : t) v = static_cast<std::uint8_t>(rng());
    std::vector<std::uint8_t> raw(blocks * 2 * 4), traw(blocks);
    for (std::size_t k = 0; k < blocks; ++k) {
      for (int m = 0; m < 2; ++m)
        for (int j = 0; j < 4; ++j) raw[(k * 2 + m) * 4 + j] = static_cast<std::uint8_t>((codes[2 * k + m] >> (2 * j)) & 3);
      traw[k] = static_cast<std::uint8_t>((t[k / 2] >> (4 * (k % 2))) & 15);
    }
    Layer l{c, 1, blocks, std::vector<std::uint8_t>(deploy_code_row_bytes(c, blocks)),
            std::vector<std::uint8_t>(deploy_t_row_bytes(blocks)), {1.0f}, {0.0f}};
    deploy_pack(c, 1, blocks, raw.data(), traw.data(), l.codes.data(), l.t.data());
    ASSERT_EQ(l.codes, codes);
    std::vector<float> ref(blocks * 4), got(blocks * 4);
    {
      ScopedSimdLevel scalar(SimdLevel::Scalar);
      packed_decode(l.view(), ref.data());
    }
    for (auto level : available_simd_levels()) {
      ScopedSimdLevel forced(level);
      packed_decode(l.view(), got.data());
      ASSERT_EQ(got, ref) << simd_level_name(level) << " blocks=" << blocks;
    }
#if defined(LOWBIT_HAVE_AVX512)
    if (cpu_supports(SimdLevel::AVX512) && kernels::cpu_has_avx512_vbmi()) {
      // Direct comparison of the two AVX-512 variants (the dispatcher picks VBMI on this CPU).
      std::vector<std::int8_t> w1(blocks * 4), w2(blocks * 4);
      std::vector<float> s1(blocks), s2(blocks);
      std::vector<std::int32_t> b1(blocks), b2(blocks);
      kernels::D4Q4Tables tables{};
      for (int idx = 0; idx < 256; ++idx) {  // any consistent tables: rep of idx = its 2-bit fields - 2
        std::uint32_t l0 = 0, l1 = 0;
        for (int j = 0; j < 4; ++j) {
          const int rep = ((idx >> (2 * j)) & 3) - 2;
          tables.rep[j][idx] = static_cast<std::int8_t>(rep);
          l0 |= static_cast<std::uint32_t>(rep + 48) << (8 * j);
          l1 |= static_cast<std::uint32_t>(4 * rep + 16) << (8 * j);
        }
        tables.level0[idx] = l0;
        tables.level1[idx] = l1;
      }
      kernels::decode_d4q4_ref(tables, scales16.data(), codes.data(), t.data(), blocks, w1.data(), s1.data(), b1.data());
      kernels::decode_d4q4_avx512_vbmi(tables, scales16.data(), codes.data(), t.data(), blocks, w2.data(), s2.data(),
                                       b2.data());
      ASSERT_EQ(w1, w2) << blocks;
      ASSERT_EQ(s1, s2) << blocks;
      ASSERT_EQ(b1, b2) << blocks;
    }
#endif
  }
}

TEST(CosetDeploy, E8DecodersEqualTheReferenceDirectly) {
  // Each E8 q=16 M=1 decoder called directly (the dispatcher may hide one) against the scalar
  // twin on uniformly random codes, lengths around the 16-, 32- and 64-block strides.
  std::vector<float> scales16(16);
  for (int t = 0; t < 16; ++t) scales16[static_cast<std::size_t>(t)] = 0.25f * static_cast<float>(t + 1);
  std::vector<kernels::DecodeE8Q16Fn> fns;
#if defined(LOWBIT_HAVE_AVX2)
  if (cpu_supports(SimdLevel::AVX2)) fns.push_back(kernels::decode_e8q16_avx2);
#endif
#if defined(LOWBIT_HAVE_AVX512)
  if (cpu_supports(SimdLevel::AVX512)) fns.push_back(kernels::decode_e8q16_avx512);
  if (cpu_supports(SimdLevel::AVX512) && kernels::cpu_has_avx512_vbmi()) fns.push_back(kernels::decode_e8q16_avx512_vbmi);
#endif
  std::mt19937 rng(29);
  for (std::size_t blocks : {1, 16, 31, 32, 63, 64, 65, 128, 1000, 20000}) {
    const std::size_t padded = (blocks + 15) / 16 * 16;
    std::vector<std::uint8_t> codes(4 * blocks), t((blocks + 1) / 2);
    for (auto& v : codes) v = static_cast<std::uint8_t>(rng());
    for (auto& v : t) v = static_cast<std::uint8_t>(rng());
    std::vector<std::int8_t> w_ref(8 * padded, 0), w(8 * padded, 0);
    std::vector<float> s_ref(blocks), s(blocks);
    std::vector<std::int32_t> b_ref(blocks), b(blocks);
    kernels::decode_e8q16_ref(scales16.data(), codes.data(), t.data(), blocks, w_ref.data(), s_ref.data(), b_ref.data());
    for (std::size_t f = 0; f < fns.size(); ++f) {
      std::fill(w.begin(), w.end(), 0);
      fns[f](scales16.data(), codes.data(), t.data(), blocks, w.data(), s.data(), b.data());
      ASSERT_EQ(w, w_ref) << "decoder " << f << " blocks=" << blocks;
      ASSERT_EQ(s, s_ref) << "decoder " << f << " blocks=" << blocks;
      ASSERT_EQ(b, b_ref) << "decoder " << f << " blocks=" << blocks;
    }
  }
}

// Random signed activations in the fused GEMV's layout (zero beyond `blocks`) and their xb.
void fused_activations(int d, std::size_t blocks, std::size_t stride, std::size_t rows, bool extreme, std::mt19937& rng,
                       std::vector<std::int8_t>& xq, std::vector<std::int32_t>& xb) {
  xq.assign(rows * stride * d, 0);
  xb.assign(rows * stride, 0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < blocks; ++k) {
      std::int32_t sum = 0;
      for (int j = 0; j < d; ++j) {
        const int v = extreme ? ((rng() & 1) ? 127 : -127) : static_cast<int>(rng() % 255) - 127;
        xq[r * stride * d + kernels::deploy_pos(d, k, j)] = static_cast<std::int8_t>(v);
        sum += v;
      }
      xb[r * stride + k] = -kernels::fused_weight_bias(d) * sum;
    }
}

// The D4 q=4 M=2 decode tables, rep(idx) read off packed_decode of level-0-only codes (beta = 1, T = 0).
void d4q4_tables_from_decode(kernels::D4Q4Tables& tables) {
  tables = {};
  QuantizationConfig c = make(LatticeType::D4, 4, 2, 1.0, 0.25, 15);
  std::vector<std::uint8_t> codes(2 * 256);
  for (int idx = 0; idx < 256; ++idx) codes[2 * static_cast<std::size_t>(idx)] = static_cast<std::uint8_t>(idx);
  Layer l{c, 1, 256, codes, std::vector<std::uint8_t>(128, 0), {1.0f}, {0.0f}};
  std::vector<float> rep(256 * 4);
  {
    ScopedSimdLevel scalar(SimdLevel::Scalar);
    packed_decode(l.view(), rep.data());
  }
  for (int idx = 0; idx < 256; ++idx) {
    std::uint32_t l0 = 0, l1 = 0;
    for (int j = 0; j < 4; ++j) {
      const int r = static_cast<int>(rep[static_cast<std::size_t>(idx) * 4 + static_cast<std::size_t>(j)]);
      ASSERT_LE(std::abs(r), 4);
      tables.rep[j][idx] = static_cast<std::int8_t>(r);
      l0 |= static_cast<std::uint32_t>(r + 48) << (8 * j);
      l1 |= static_cast<std::uint32_t>(4 * r + 16) << (8 * j);
    }
    tables.level0[idx] = l0;
    tables.level1[idx] = l1;
  }
}

TEST(CosetDeploy, FusedGemvEqualsItsScalarTwinAndTheBlockDot) {
  // The fused small-batch GEMV (AVX-512 VBMI, AVX2) against its scalar twin and against the panel path's
  // decode + block_dot (the documented result), bit for bit: block counts around the 16- and
  // 64-block strides (odd counts: a padding T nibble), T = 15 everywhere, all-extreme codes
  // (0xFF bytes) and all-extreme activations (+-127), 1..4 input rows.
  std::vector<float> scales16(16);
  for (int t = 0; t < 16; ++t) scales16[static_cast<std::size_t>(t)] = 0.25f * static_cast<float>(t + 1);
  kernels::D4Q4Tables tables;
  ASSERT_NO_FATAL_FAILURE(d4q4_tables_from_decode(tables));
  std::mt19937 rng(31);
  for (int d : {4, 8})
    // the last count: int32 lanes moved to int64 on the way
    for (std::size_t blocks : {std::size_t{1}, std::size_t{3}, std::size_t{15}, std::size_t{16}, std::size_t{17},
                               std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{127}, std::size_t{129},
                               std::size_t{1025}, 2 * kernels::kDeployIntChunk + 65})
      for (int variant = 0; variant < 4; ++variant) {
        // random; T = 15 and extreme codes; extreme activations; T = 0 but one block in rows 1 and 2
        // (64-block chunks without escapes in the compact forms; row 0 only exact chunks)
        const std::size_t stride = (blocks + 63) / 64 * 64, blocks16 = (blocks + 15) / 16 * 16;
        const std::size_t code_row = blocks * (d == 4 ? 2 : 4), t_row = (blocks + 1) / 2, n_rows = 3;
        std::vector<std::uint8_t> codes(n_rows * code_row), t(n_rows * t_row);
        for (auto& v : codes) v = variant == 1 ? 0xFF : static_cast<std::uint8_t>(rng());
        for (auto& v : t) v = variant == 1 ? 0xFF : variant == 3 ? 0 : static_cast<std::uint8_t>(rng());
        if (variant == 3)
          for (std::size_t n = 1; n < n_rows; ++n) {
            const std::size_t k = rng() % blocks;
            t[n * t_row + k / 2] = static_cast<std::uint8_t>(7 << (4 * (k % 2)));
          }
        if (blocks % 2)
          for (std::size_t n = 0; n < n_rows; ++n) t[n * t_row + t_row - 1] &= 0x0F;  // zero padding nibbles
        const std::size_t rows = 1 + rng() % 4;
        std::vector<std::int8_t> xq;
        std::vector<std::int32_t> xb;
        fused_activations(d, blocks, stride, rows, variant == 2, rng, xq, xb);
        std::vector<float> ref(n_rows * rows), got(n_rows * rows, -1.0f), dot(rows);
        const kernels::TRows nib{t.data(), t_row, 4, nullptr, nullptr};
        if (d == 4)
          kernels::fused_gemv_d4q4_ref(tables, scales16.data(), codes.data(), nib, blocks, n_rows, xq.data(),
                                       xb.data(), stride, rows, ref.data());
        else
          kernels::fused_gemv_e8q16_ref(scales16.data(), codes.data(), nib, blocks, n_rows, xq.data(), xb.data(),
                                        stride, rows, ref.data());
        // The panel path on the same rows and activations (xq + 128, blocks16 per row).
        std::vector<std::uint8_t> xu(rows * blocks16 * d, static_cast<std::uint8_t>(kernels::kActBias));
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t i = 0; i < blocks16 * d; ++i)
            xu[r * blocks16 * d + i] = static_cast<std::uint8_t>(xq[r * stride * d + i] + kernels::kActBias);
        for (std::size_t n = 0; n < n_rows; ++n) {
          std::vector<std::int8_t> w(blocks16 * d, 0);
          std::vector<float> s(blocks16, scales16[0]);  // padding blocks: T = 0 (deploy_kernels.h)
          std::vector<std::int32_t> wb(blocks16, 0);
          if (d == 4)
            kernels::decode_d4q4_ref(tables, scales16.data(), codes.data() + n * code_row, t.data() + n * t_row, blocks,
                                     w.data(), s.data(), wb.data());
          else
            kernels::decode_e8q16_ref(scales16.data(), codes.data() + n * code_row, t.data() + n * t_row, blocks,
                                      w.data(), s.data(), wb.data());
          std::vector<std::uint8_t> exact((blocks16 + 63) / 64);
          kernels::deploy_exact_chunks(s.data(), blocks16, scales16[0], exact.data());
          kernels::block_dot_ref(d, w.data(), s.data(), exact.data(), wb.data(), xu.data(), blocks16, rows, scales16[0],
                                 dot.data());
          ASSERT_EQ(0, std::memcmp(ref.data() + n * rows, dot.data(), rows * sizeof(float)))
              << "d=" << d << " blocks=" << blocks;
        }
        // Every in-memory T form: nibbles, and compact 2- and 1-bit codes with escapes.
        std::vector<std::uint8_t> traw(n_rows * blocks);
        for (std::size_t n = 0; n < n_rows; ++n)
          for (std::size_t k = 0; k < blocks; ++k)
            traw[n * blocks + k] = static_cast<std::uint8_t>((t[n * t_row + k / 2] >> (4 * (k % 2))) & 15);
        for (int bits : {4, 2, 1}) {
          const CompactT ct = deploy_t_compact(traw.data(), n_rows, blocks, bits);
          ASSERT_EQ(ct.bits, bits);
          const kernels::TRows tr{ct.t.data(), deploy_t_row_bytes(blocks, bits), bits, ct.escapes.data(),
                                  ct.escape_start.data()};
          std::vector<float> twin(n_rows * rows, -1.0f);
          if (d == 4)
            kernels::fused_gemv_d4q4_ref(tables, scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(),
                                         xb.data(), stride, rows, twin.data());
          else
            kernels::fused_gemv_e8q16_ref(scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(), xb.data(),
                                          stride, rows, twin.data());
          ASSERT_EQ(0, std::memcmp(ref.data(), twin.data(), twin.size() * sizeof(float))) << "bits=" << bits;
#if defined(LOWBIT_HAVE_AVX512)
          if (cpu_supports(SimdLevel::AVX512) && kernels::cpu_has_avx512_vbmi()) {
            std::fill(got.begin(), got.end(), -1.0f);
            if (d == 4)
              kernels::fused_gemv_d4q4_avx512_vbmi(tables, scales16.data(), codes.data(), tr, blocks, n_rows,
                                                   xq.data(), xb.data(), stride, rows, got.data());
            else
              kernels::fused_gemv_e8q16_avx512_vbmi(scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(),
                                                    xb.data(), stride, rows, got.data());
            ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), got.size() * sizeof(float)))
                << "d=" << d << " blocks=" << blocks << " variant=" << variant << " rows=" << rows << " bits=" << bits;
          }
#endif
#if defined(LOWBIT_HAVE_AVX2)
          if (cpu_supports(SimdLevel::AVX2)) {
            std::fill(got.begin(), got.end(), -1.0f);
            if (d == 4)
              kernels::fused_gemv_d4q4_avx2(tables, scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(),
                                            xb.data(), stride, rows, got.data());
            else
              kernels::fused_gemv_e8q16_avx2(scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(), xb.data(),
                                             stride, rows, got.data());
            ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), got.size() * sizeof(float)))
                << "avx2 d=" << d << " blocks=" << blocks << " variant=" << variant << " rows=" << rows
                << " bits=" << bits;
          }
#endif
        }
      }
}

TEST(CosetDeploy, FusedD4DecodesEveryPairOfLevelBytes) {
  // Row n, block k hold the level bytes (k, n): all 65536 D4 q=4 M=2 blocks (the AVX2 fused GEMV
  // computes the D4 rule instead of reading the tables), through packed_linear at every level
  // (fused at batch <= 4, panel path at 5) against the scalar path, bit for bit.
  const QuantizationConfig c = formats()[0];
  const std::size_t rows = 256, blocks = 256;
  ASSERT_EQ(deploy_code_row_bytes(c, blocks), 2 * blocks);
  Layer l{c, rows, blocks, std::vector<std::uint8_t>(rows * 2 * blocks),
          std::vector<std::uint8_t>(rows * deploy_t_row_bytes(blocks)), std::vector<float>(rows, 1.0f),
          std::vector<float>(rows, 0.0f)};
  std::mt19937 rng(41);
  for (std::size_t n = 0; n < rows; ++n)
    for (std::size_t k = 0; k < blocks; ++k) {
      l.codes[n * 2 * blocks + 2 * k] = static_cast<std::uint8_t>(k);
      l.codes[n * 2 * blocks + 2 * k + 1] = static_cast<std::uint8_t>(n);
    }
  for (auto& v : l.t) v = static_cast<std::uint8_t>(rng());  // T in 0..15 = max_t
  for (std::size_t batch : {1, 3, 5})
    expect_every_level_matches_scalar(l, gaussian(batch * blocks * 4, 1.0, static_cast<unsigned>(batch + 11)), batch,
                                      "D4 every level-byte pair");
}

TEST(CosetDeploy, FusedGemvOffSwitchRunsThePanelPathWithTheSameBits) {
  // LOWBIT_COSET_FUSED=0 (the benchmarks' A/B switch) takes the panel path at batch <= 4; both
  // paths give the same bits at every level (D4 q=4 M=2 and E8 q=16 M=1: the fused formats).
  for (const auto& c : {formats()[0], formats()[1]})
    for (std::size_t blocks : {17, 100}) {
      const Layer l = encoded_layer(c, 21, blocks, static_cast<unsigned>(blocks));
      for (std::size_t batch : {1, 4}) {
        const auto x = gaussian(batch * blocks * c.dim(), 1.0, static_cast<unsigned>(batch + 7));
        for (auto level : available_simd_levels()) {
          ScopedSimdLevel forced(level);
          std::vector<float> fused(batch * l.rows), panel(batch * l.rows, -1.0f);
          packed_linear(l.view(), x.data(), batch, fused.data());
          ASSERT_EQ(0, ::setenv("LOWBIT_COSET_FUSED", "0", 1));
          packed_linear(l.view(), x.data(), batch, panel.data());
          ASSERT_EQ(0, ::unsetenv("LOWBIT_COSET_FUSED"));
          ASSERT_EQ(0, std::memcmp(fused.data(), panel.data(), fused.size() * sizeof(float)))
              << simd_level_name(level) << " " << lattice_name(c.lattice) << " blocks=" << blocks << " batch=" << batch;
        }
      }
    }
}

TEST(CosetDeploy, EpilogueSumsTheScaleZeroBlocksExactlyAtEveryLevel) {
  // The epilogue of deploy.h written out here (64-block chunks whose scales are all s0 summed
  // exactly in int64, every other block into 16 fused multiply-add partial sums, the halving tree,
  // fma(s0, A, f)) against each block-dot kernel called directly: rows past kDeployIntChunk blocks
  // (the int32 lanes moved to int64 on the way), a last chunk shorter than 64, extreme weights and
  // activations, an inexact s0. The all-float order of the earlier rule must give other bits on
  // some case, so that this test tells the rules apart.
  std::vector<kernels::BlockDotFn> fns{kernels::block_dot_ref};
#if defined(LOWBIT_HAVE_AVX2)
  if (cpu_supports(SimdLevel::AVX2)) fns.push_back(kernels::block_dot_avx2);
#endif
#if defined(LOWBIT_HAVE_AVX512)
  if (cpu_supports(SimdLevel::AVX512)) fns.push_back(kernels::block_dot_avx512);
#endif
  const float s0 = 0.1f;
  const float other[] = {0.37f, 1.5f, 0.0f, 1e-3f};
  std::mt19937 rng(41);
  bool rules_differ = false;
  for (int d : {4, 8})
    for (std::size_t blocks16 : {std::size_t{16}, std::size_t{64}, std::size_t{112}, 2 * kernels::kDeployIntChunk + 48})
      for (int variant = 0; variant < 4; ++variant) {
        // random, chunks mixed; extreme, every block s0; extreme, chunks mixed; random, every chunk
        // but one exact
        const std::size_t rows = variant == 0 ? 3 : 4;
        const bool extreme = variant == 1 || variant == 2;
        std::vector<std::int8_t> w(blocks16 * d);
        std::vector<std::uint8_t> xu(rows * blocks16 * d);
        for (auto& v : w) v = static_cast<std::int8_t>(extreme ? 63 : static_cast<int>(rng() % 127) - 63);
        for (auto& v : xu) v = static_cast<std::uint8_t>(extreme ? 255 : 1 + rng() % 255);
        std::vector<float> s(blocks16, s0);
        std::vector<std::int32_t> wb(blocks16);
        const std::size_t odd_one = rng() % blocks16;
        for (std::size_t k = 0; k < blocks16; ++k) {
          if ((variant == 0 || variant == 2) && (k / 64) % 3 != 1 && rng() % 8 == 0) s[k] = other[rng() % 4];
          if (variant == 3 && k == odd_one) s[k] = other[0];
          std::int32_t sum = 0;
          for (int j = 0; j < d; ++j) sum += w[kernels::deploy_pos(d, k, j)];
          wb[k] = -kernels::kActBias * sum;
        }
        std::vector<std::uint8_t> exact((blocks16 + 63) / 64);  // the kernels' flags (deploy_exact_chunks)
        kernels::deploy_exact_chunks(s.data(), blocks16, s0, exact.data());
        std::vector<float> want(rows), old_rule(rows);
        for (std::size_t r = 0; r < rows; ++r) {
          std::int64_t exact = 0;
          float p[16] = {}, q[16] = {};
          bool exact_chunk = false;
          for (std::size_t k = 0; k < blocks16; ++k) {
            if (k % 64 == 0) {
              exact_chunk = true;
              for (std::size_t c = k; c < std::min(blocks16, k + 64); ++c) exact_chunk = exact_chunk && s[c] == s0;
            }
            std::int32_t i = wb[k];
            for (int j = 0; j < d; ++j) {
              const std::size_t at = kernels::deploy_pos(d, k, j);
              i += static_cast<std::int32_t>(xu[r * blocks16 * d + at]) * w[at];
            }
            if (exact_chunk) exact += i;
            else p[k % 16] = std::fma(s[k], static_cast<float>(i), p[k % 16]);
            q[k % 16] = std::fma(s[k], static_cast<float>(i), q[k % 16]);
          }
          for (int h = 8; h >= 1; h /= 2)
            for (int i = 0; i < h; ++i) {
              p[i] = p[i] + p[i + h];
              q[i] = q[i] + q[i + h];
            }
          want[r] = std::fma(s0, static_cast<float>(exact), p[0]);
          old_rule[r] = q[0];
        }
        rules_differ = rules_differ || std::memcmp(want.data(), old_rule.data(), rows * sizeof(float)) != 0;
        for (std::size_t f = 0; f < fns.size(); ++f) {
          std::vector<float> got(rows, -1.0f);
          fns[f](d, w.data(), s.data(), exact.data(), wb.data(), xu.data(), blocks16, rows, s0, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), rows * sizeof(float)))
              << "kernel " << f << " d=" << d << " blocks16=" << blocks16 << " variant=" << variant << ": "
              << want[0] << " vs " << got[0];
        }
      }
  EXPECT_TRUE(rules_differ);
}

TEST(CosetDeploy, CompactTGivesTheNibbleResultAtEveryLevel) {
  // The compact in-memory T (1 and 2 bits per block plus escapes) against the nibble form, through
  // packed_linear (fused GEMV at batch <= 4, panel path above) and packed_decode, bit for bit.
  for (const auto& c : formats())
    for (std::size_t blocks : {1, 17, 65, 130}) {
      const std::size_t rows = 5;
      Layer l = encoded_layer(c, rows, blocks, static_cast<unsigned>(blocks + 3));
      std::vector<std::uint8_t> traw(rows * blocks);
      std::mt19937 rng(static_cast<unsigned>(blocks));
      for (auto& v : traw) v = static_cast<std::uint8_t>(rng() % 5 == 0 ? rng() % (c.max_scaling_iterations + 1) : 0);
      const CompactT nib = deploy_t_compact(traw.data(), rows, blocks, 4);
      l.t = nib.t;
      for (std::size_t batch : {1, 3, 9}) {
        const auto x = gaussian(batch * blocks * c.dim(), 1.0, static_cast<unsigned>(batch));
        std::vector<float> ref(batch * rows), got(batch * rows);
        {
          ScopedSimdLevel scalar(SimdLevel::Scalar);
          packed_linear(l.view(), x.data(), batch, ref.data());
        }
        for (int bits : {1, 2}) {
          const CompactT ct = deploy_t_compact(traw.data(), rows, blocks, bits);
          PackedLinearView v = l.view();
          v.t = ct.t.data();
          v.t_bits = bits;
          v.t_escapes = ct.escapes.data();
          v.t_escape_start = ct.escape_start.data();
          EXPECT_NO_THROW(deploy_require_t(v, "layer"));
          for (auto level : available_simd_levels()) {
            ScopedSimdLevel forced(level);
            std::fill(got.begin(), got.end(), -1.0f);
            packed_linear(v, x.data(), batch, got.data());
            ASSERT_EQ(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)))
                << simd_level_name(level) << " " << lattice_name(c.lattice) << " q=" << c.q << " bits=" << bits
                << " blocks=" << blocks << " batch=" << batch;
          }
          if (batch == 1) {
            std::vector<float> w1(rows * blocks * c.dim()), w2(w1.size());
            packed_decode(l.view(), w1.data());
            packed_decode(v, w2.data());
            ASSERT_EQ(w1, w2);
          }
        }
      }
    }
}

TEST(CosetDeploy, CompactTChoosesTheWidthAndRejectsBrokenEscapes) {
  std::vector<std::uint8_t> t(6400, 0);
  EXPECT_EQ(deploy_t_compact(t.data(), 2, 3200).bits, 1);  // no escapes
  for (std::size_t i = 0; i < 100; ++i) t[i * 64] = 1;     // 1/64 escape at 1 bit
  EXPECT_EQ(deploy_t_compact(t.data(), 2, 3200).bits, 1);
  t[1] = 1;  // one more: 2 bits (T = 1 is a literal there)
  EXPECT_EQ(deploy_t_compact(t.data(), 2, 3200).bits, 2);
  for (std::size_t i = 0; i < 200; ++i) t[i * 32 + 3] = 7;  // > 1/64 escapes at 2 bits too: nibbles
  EXPECT_EQ(deploy_t_compact(t.data(), 2, 3200).bits, 4);
  t[5] = 16;
  EXPECT_THROW(deploy_t_compact(t.data(), 2, 3200), InvalidArgument);
  // A view whose escape list does not match its escape codes, or holds T beyond the config.
  const QuantizationConfig c = formats()[0];
  Layer l = encoded_layer(c, 2, 9, 1);
  std::vector<std::uint8_t> traw(18, 0);
  traw[3] = 5;
  traw[12] = 2;
  CompactT ct = deploy_t_compact(traw.data(), 2, 9, 1);
  ASSERT_EQ(ct.escapes.size(), 2u);
  PackedLinearView v = l.view();
  v.t = ct.t.data();
  v.t_bits = 1;
  v.t_escapes = ct.escapes.data();
  v.t_escape_start = ct.escape_start.data();
  EXPECT_NO_THROW(deploy_require_t(v, "layer"));
  ct.escape_start[1] = 0;  // row 0's escape moved to row 1
  EXPECT_THROW(deploy_require_t(v, "layer"), InvalidArgument);
  ct.escape_start[1] = 1;
  ct.escapes[1] = 15;
  Layer small = encoded_layer(formats()[3], 2, 9, 1);  // max_t = 10
  PackedLinearView vs = small.view();
  vs.t = ct.t.data();
  vs.t_bits = 1;
  vs.t_escapes = ct.escapes.data();
  vs.t_escape_start = ct.escape_start.data();
  EXPECT_THROW(deploy_require_t(vs, "layer"), InvalidArgument);
}

TEST(CosetDeploy, RefusesConfigsTheKernelsCannotRun) {
  EXPECT_THROW(require_deployable(make(LatticeType::D4, 4, 2, 0.2, 1.0, 16), "x"), InvalidArgument);   // T > 15
  EXPECT_NO_THROW(require_deployable(make(LatticeType::D4, 3, 2, 0.2, 1.0, 10), "x"));   // q=3: 2-bit codes
  EXPECT_NO_THROW(require_deployable(make(LatticeType::D4, 4, 4, 0.2, 1.0, 10), "x"));   // |w| > 63: wide path
  auto dithered = make(LatticeType::E8, 16, 1, 0.2, 1.0, 10);
  dithered.with_dither = true;
  EXPECT_THROW(require_deployable(dithered, "x"), InvalidArgument);
  EXPECT_NO_THROW(require_deployable(make(LatticeType::E8, 16, 1, 0.2, 1.0, 15), "x"));
  EXPECT_EQ(deploy_weight_bound(make(LatticeType::D4, 4, 2, 0.2, 1.0, 10)), 20);  // |rep| <= 4
  // Every valid config deploys, and its codes take ceil(log2 q) bits.
  for (auto type : {LatticeType::Z2, LatticeType::D4, LatticeType::E8})
    for (int q = kMinQ; q <= kMaxQ; ++q)
      for (int levels = kMinLevels; levels <= kMaxLevels; ++levels) {
        const auto c = make(type, q, levels, 0.2, 1.0, 15);
        EXPECT_NO_THROW(require_deployable(c, "x")) << lattice_name(type) << " q=" << q << " M=" << levels;
        EXPECT_EQ(deploy_code_bits(c), static_cast<int>(std::ceil(std::log2(q) - 1e-9))) << "q=" << q;
        EXPECT_EQ(deploy_code_row_bytes(c, 3), (3 * levels * c.dim() * deploy_code_bits(c) + 7) / 8);
      }
}

TEST(CosetDeploy, EveryValidConfigDecodesRandomCodesLikeHnlqDecode) {
  // Every lattice, q in [2, 16] and M in [1, 4]: random codes < q packed in ceil(log2 q) bits
  // (straddling bytes when 3 bits), unpacked and decoded by the int8 path (|w| <= 63) or the
  // wide path; with beta = 1, T = 0 and row scale 1 both sides are exact, so they must be equal.
  std::mt19937 rng(23);
  for (auto type : {LatticeType::Z2, LatticeType::D4, LatticeType::E8})
    for (int q = kMinQ; q <= kMaxQ; ++q)
      for (int levels = kMinLevels; levels <= kMaxLevels; ++levels) {
        const auto c = make(type, q, levels, 1.0, 1.0, 15);
        const int d = c.dim();
        const std::size_t rows = 2, blocks = 37;
        std::vector<std::uint8_t> codes(rows * blocks * levels * d), t(rows * blocks, 0);
        for (auto& v : codes) v = static_cast<std::uint8_t>(rng() % static_cast<unsigned>(q));
        Layer l{c, rows, blocks, std::vector<std::uint8_t>(rows * deploy_code_row_bytes(c, blocks)),
                std::vector<std::uint8_t>(rows * deploy_t_row_bytes(blocks)), {1.0f, 1.0f}, {0.0f, 0.0f}};
        deploy_pack(c, rows, blocks, codes.data(), t.data(), l.codes.data(), l.t.data());
        const std::size_t row_bytes = deploy_code_row_bytes(c, blocks);
        for (std::size_t n = 0; n < rows; ++n)
          for (std::size_t i = 0; i < blocks * levels * d; ++i)
            ASSERT_EQ(generic::unpack_code(l.codes.data() + n * row_bytes, row_bytes, i, deploy_code_bits(c)),
                      codes[n * blocks * levels * d + i]) << "q=" << q << " i=" << i;
        std::vector<float> ref(rows * blocks * d), got(ref.size());
        decode<float>(c, codes.data(), t.data(), rows * blocks, ref.data());
        packed_decode(l.view(), got.data());
        ASSERT_EQ(got, ref) << lattice_name(type) << " q=" << q << " M=" << levels;
      }
}

TEST(CosetDeploy, WidePathEqualsTheInt8PathBitForBit) {
  // The wide path (int32 weights) follows the same activation rule and epilogue order: on a config
  // the int8 kernels also run, both give the same bits.
  for (const auto& c : {formats()[0], formats()[1], formats()[5]})
    for (std::size_t blocks : {1, 17, 40}) {
      const Layer l = encoded_layer(c, 19, blocks, 11);
      const std::size_t batch = 5;
      const auto x = gaussian(batch * blocks * c.dim(), 1.5, 12);
      std::vector<float> ref(batch * 19), got(batch * 19), w_ref(19 * blocks * c.dim()), w_got(w_ref.size());
      packed_linear(l.view(), x.data(), batch, ref.data());
      generic::packed_linear_wide(l.view(), x.data(), batch, got.data());
      ASSERT_EQ(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)))
          << lattice_name(c.lattice) << " q=" << c.q << " blocks=" << blocks;
      packed_decode(l.view(), w_ref.data());
      generic::packed_decode_wide(l.view(), w_got.data());
      ASSERT_EQ(w_got, w_ref);
    }
}

TEST(CosetDeploy, PackRefusesCodesOutOfRange) {
  const auto c = make(LatticeType::D4, 5, 1, 0.2, 1.0, 15);  // 3-bit codes: 5, 6, 7 are invalid
  std::vector<std::uint8_t> codes(4, 1), t(1, 0), out(deploy_code_row_bytes(c, 1)), tout(1);
  codes[2] = 5;
  EXPECT_THROW(deploy_pack(c, 1, 1, codes.data(), t.data(), out.data(), tout.data()), InvalidArgument);
}

TEST(CosetDeploy, InputWithNanThrows) {
  const Layer l = encoded_layer(formats()[0], 2, 3, 1);
  std::vector<float> x(12, 1.0f), y(2);
  x[5] = std::nanf("");
  EXPECT_THROW(packed_linear(l.view(), x.data(), 1, y.data()), InvalidArgument);
}

TEST(CosetDeploy, TBeyondTheConfigIsRejected) {
  Layer l = encoded_layer(formats()[3], 2, 3, 1);  // max_t = 10
  EXPECT_NO_THROW(deploy_require_t(l.view(), "layer"));
  l.t[1] = 0x0B;
  EXPECT_THROW(deploy_require_t(l.view(), "layer"), InvalidArgument);
}

TEST(CosetDeploy, TEntropyCodeRoundTripsAndRejectsCorruptStreams) {
  std::mt19937 rng(4);
  for (int spread : {0, 1, 3, 15}) {
    std::vector<std::uint8_t> t(1000 + spread);
    std::geometric_distribution<int> g(0.45);
    for (auto& v : t) v = static_cast<std::uint8_t>(std::min(spread, g(rng)));
    const auto lengths = t_code_lengths(t.data(), t.size());
    const auto stream = t_encode(t.data(), t.size(), lengths.data());
    std::vector<std::uint8_t> back(t.size());
    t_decode(stream.data(), stream.size(), lengths.data(), t.size(), 15, back.data());
    EXPECT_EQ(back, t) << "spread " << spread;
    if (stream.size() > 1)
      EXPECT_THROW(t_decode(stream.data(), stream.size() / 2, lengths.data(), t.size(), 15, back.data()),
                   InvalidArgument);
    if (spread >= 3)
      EXPECT_THROW(t_decode(stream.data(), stream.size(), lengths.data(), t.size(), 2, back.data()), InvalidArgument);
    auto bad = lengths;
    bad[0] = static_cast<std::uint8_t>(bad[0] + 1);
    if (spread > 0) EXPECT_THROW(t_decode(stream.data(), stream.size(), bad.data(), t.size(), 15, back.data()), InvalidArgument);
  }
}

// ---- a T per group of 4 blocks (deploy.h, t_group = 4; D4 on the int8 path) ----
namespace {

// The D4 formats that take t_group = 4: the fused one and two generic int8 ones.
std::vector<QuantizationConfig> group_formats() {
  return {make(LatticeType::D4, 4, 2, 0.14, 0.125, 15), make(LatticeType::D4, 4, 2, 3.08 / 16, 0.25, 15),
          make(LatticeType::D4, 16, 1, 0.2, 0.5, 15), make(LatticeType::D4, 3, 2, 3.36 / 9, 0.25, 15)};
}

struct GroupLayer {
  Layer layer;
  std::vector<std::uint8_t> codes, t;  // unpacked: rows x blocks x M x d, rows x groups
  std::vector<std::uint8_t> escapes;
  std::vector<std::uint32_t> escape_start;
  int bits = 4;
  PackedLinearView view() const {
    PackedLinearView v = layer.view();
    v.t_group = kDeployTGroupBlocks;
    v.t_bits = bits;
    if (!escape_start.empty()) {
      v.t_escapes = escapes.data();
      v.t_escape_start = escape_start.data();
    }
    return v;
  }
};

// A Gaussian matrix (every `quiet`-th group scaled down so that whole chunks have T = 0, the exact
// path) encoded by deploy_encode with a T per group, T in memory with `bits` bits (4: nibbles).
GroupLayer group_layer(const QuantizationConfig& c, std::size_t rows, std::size_t blocks, unsigned seed, int bits = 4,
                       double quiet = 0.0) {
  auto a = gaussian(rows * blocks * 4, 1.0, seed);
  if (quiet > 0)  // rows whose first 64 blocks are small: T = 0 chunks next to T > 0 ones
    for (std::size_t n = 0; n < rows; n += 2)
      for (std::size_t i = 0; i < std::min<std::size_t>(64, blocks) * 4; ++i) a[n * blocks * 4 + i] *= static_cast<float>(quiet);
  const std::size_t groups = blocks / 4;
  GroupLayer g;
  g.codes.resize(rows * blocks * c.M * 4);
  g.t.resize(rows * groups);
  deploy_encode(c, a.data(), rows, blocks, kDeployTGroupBlocks, g.codes.data(), g.t.data());
  Layer& l = g.layer;
  l = Layer{c, rows, blocks, std::vector<std::uint8_t>(rows * deploy_code_row_bytes(c, blocks)), {}, {},
            gaussian(rows, 0.5, seed + 1)};
  for (std::size_t n = 0; n < rows; ++n) l.row_scale.push_back(1.5f + static_cast<float>(n) / 7.0f);
  std::vector<std::uint8_t> nibbles(rows * deploy_t_row_bytes(groups));
  deploy_pack(c, rows, blocks, g.codes.data(), g.t.data(), l.codes.data(), nibbles.data(), kDeployTGroupBlocks);
  g.bits = bits;
  if (bits == 4) {
    l.t = nibbles;
  } else {
    CompactT ct = deploy_t_compact(g.t.data(), rows, groups, bits);
    l.t = ct.t;
    g.escapes = ct.escapes;
    g.escapes.push_back(0);  // a non-null pointer when there is none
    g.escape_start = ct.escape_start;
  }
  return g;
}

// The same layer with a T per block (each group's T 4 times), as the per-block epilogue sees it.
std::vector<std::uint8_t> spread_t(const std::vector<std::uint8_t>& t_groups) {
  std::vector<std::uint8_t> out;
  for (std::uint8_t v : t_groups)
    for (int b = 0; b < kDeployTGroupBlocks; ++b) out.push_back(v);
  return out;
}

std::string name_of(const QuantizationConfig& c) {
  return std::string(lattice_name(c.lattice)) + " q=" + std::to_string(c.q) + " M=" + std::to_string(c.M) +
         " alpha=" + std::to_string(c.alpha);
}

}  // namespace

TEST(CosetDeployGroupT, EveryLevelAndPathMatchesScalarBitExactly) {
  // Fused GEMV (batch <= 4) and panel path (batch 5, 8; and the fused switch off), nibble and
  // compact T, tails of 4 .. 60 blocks, exact (all T = 0) chunks next to float ones.
  for (const auto& c : group_formats())
    for (std::size_t blocks : {4, 12, 16, 60, 64, 68, 132, 256})
      for (int bits : {4, 2, 1})
        for (std::size_t batch : {1, 2, 4, 5, 8}) {
          const std::size_t rows = 6;
          const GroupLayer g = group_layer(c, rows, blocks, static_cast<unsigned>(blocks + 31 * bits), bits,
                                           bits == 1 ? 0.0 : 0.02);
          const auto x = gaussian(batch * blocks * 4, 2.0, static_cast<unsigned>(batch + blocks));
          std::vector<float> ref(batch * rows), got(batch * rows);
          {
            ScopedSimdLevel scalar(SimdLevel::Scalar);
            packed_linear(g.view(), x.data(), batch, ref.data());
          }
          for (const char* fused : {"1", "0"}) {
            setenv("LOWBIT_COSET_FUSED", fused, 1);
            for (auto level : available_simd_levels()) {
              ScopedSimdLevel forced(level);
              std::fill(got.begin(), got.end(), -1.0f);
              packed_linear(g.view(), x.data(), batch, got.data());
              ASSERT_EQ(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)))
                  << simd_level_name(level) << " " << name_of(c) << " blocks=" << blocks << " bits=" << bits
                  << " batch=" << batch << " fused=" << fused;
            }
          }
          unsetenv("LOWBIT_COSET_FUSED");
        }
}

TEST(CosetDeployGroupT, ScalarEpilogueSumsEachGroupThenFollowsTheRule) {
  // The scalar level against the rule written out here: per group the exact integer sum of its
  // blocks' I (from the decoded weights and int8 activations), chunks of all T = 0 summed in int64,
  // other groups p[u % 16] = fma(s_u, I_u, p[u % 16]) in order, the halving tree, the finish.
  const auto c = group_formats()[0];
  for (std::size_t blocks : {16, 68, 200}) {
    const std::size_t rows = 5, cols = blocks * 4, groups = blocks / 4;
    const GroupLayer g = group_layer(c, rows, blocks, 3, 4, 0.02);
    const auto x = gaussian(cols, 1.5, 4);
    std::vector<float> y(rows);
    {
      ScopedSimdLevel scalar(SimdLevel::Scalar);
      packed_linear(g.view(), x.data(), 1, y.data());
    }
    float amax = 0.0f;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    const float xs = amax / 127.0f;
    std::vector<int> xq(cols);
    for (std::size_t i = 0; i < cols; ++i) xq[i] = static_cast<int>(std::clamp(std::nearbyint(x[i] / xs), -127.0f, 127.0f));
    // Integer weights w: packed_decode of a copy with row scale 1 and scale(T) read off per group.
    PackedLinearView v = g.view();
    std::vector<float> ones(rows, 1.0f), wd(rows * cols);
    v.row_scale = ones.data();
    packed_decode(v, wd.data());
    for (std::size_t n = 0; n < rows; ++n) {
      float p[16] = {};
      std::int64_t a = 0;
      const std::size_t blocks16 = (blocks + 15) / 16 * 16;
      for (std::size_t u = 0; u < blocks16 / 4; ++u) {
        const int t = u < groups ? g.t[n * groups + u] : 0;
        const float s = c.scale<float>(t);
        std::int64_t sum = 0;
        for (std::size_t i = 16 * u; i < std::min(cols, 16 * u + 16); ++i)
          sum += static_cast<std::int64_t>(std::lrint(wd[n * cols + i] / s)) * xq[i];
        bool exact = true;  // the group's 64-block chunk has T = 0 throughout
        for (std::size_t k = u / 16 * 16; k < u / 16 * 16 + 16; ++k) exact = exact && (k >= groups || g.t[n * groups + k] == 0);
        if (exact) a += sum;
        else p[u % 16] = std::fma(s, static_cast<float>(sum), p[u % 16]);
      }
      for (int h = 8; h >= 1; h /= 2)
        for (int k = 0; k < h; ++k) p[k] = p[k] + p[k + h];
      float want = std::fma(c.scale<float>(0), static_cast<float>(a), p[0]) * xs;
      want = want * g.layer.row_scale[n];
      want = want * 1.0f;
      want = want + g.layer.bias[n];
      EXPECT_EQ(y[n], want) << "blocks=" << blocks << " row=" << n;
    }
  }
}

TEST(CosetDeployGroupT, BlockDotKernelsEqualTheScalarTwinDirectly) {
  // Each BlockDotG4Fn called directly against block_dot_g4_ref, bit for bit: last chunks of 16, 32
  // and 48 blocks, rows past kDeployIntChunk blocks (the int32 lanes moved to int64 on the way),
  // extreme weights and activations, exact chunks next to float ones, scale 0 (a T beyond the
  // config), 1..4 input rows. The per-block rule must give other bits on some case, so that this
  // test tells the rules apart.
  std::vector<kernels::BlockDotG4Fn> fns;
#if defined(LOWBIT_HAVE_AVX2)
  if (cpu_supports(SimdLevel::AVX2)) fns.push_back(kernels::block_dot_g4_avx2);
#endif
#if defined(LOWBIT_HAVE_AVX512)
  if (cpu_supports(SimdLevel::AVX512)) fns.push_back(kernels::block_dot_g4_avx512);
#endif
  const float s0 = 0.1f;
  const float other[] = {0.37f, 1.5f, 0.0f, 1e-3f};
  std::mt19937 rng(43);
  bool rules_differ = false;
  for (std::size_t blocks16 : {std::size_t{16}, std::size_t{32}, std::size_t{48}, std::size_t{64}, std::size_t{112},
                               2 * kernels::kDeployIntChunk + 48})
    for (int variant = 0; variant < 4; ++variant) {
      // random, chunks mixed; extreme, every group s0; extreme, chunks mixed; random, every chunk
      // but one exact
      const std::size_t rows = 1 + static_cast<std::size_t>(variant);
      const bool extreme = variant == 1 || variant == 2;
      std::vector<std::int8_t> w(blocks16 * 4);
      std::vector<std::uint8_t> xu(rows * blocks16 * 4);
      for (auto& v : w) v = static_cast<std::int8_t>(extreme ? 63 : static_cast<int>(rng() % 127) - 63);
      for (auto& v : xu) v = static_cast<std::uint8_t>(extreme ? 255 : 1 + rng() % 255);
      std::vector<float> s(blocks16, s0);      // a scale per block, the same for the 4 blocks of a group
      std::vector<float> sg(blocks16 / 4, s0);  // the same, one per group (BlockDotG4Fn)
      std::vector<std::int32_t> wb(blocks16);
      const std::size_t odd_one = rng() % (blocks16 / 4);
      for (std::size_t u = 0; u < blocks16 / 4; ++u) {
        float su = s0;
        if ((variant == 0 || variant == 2) && (u / 16) % 3 != 1 && rng() % 4 != 0) su = other[rng() % 4];
        if (variant == 3 && u == odd_one) su = other[0];
        sg[u] = su;
        for (std::size_t k = 4 * u; k < 4 * u + 4; ++k) {
          s[k] = su;
          std::int32_t sum = 0;
          for (int j = 0; j < 4; ++j) sum += w[4 * k + static_cast<std::size_t>(j)];
          wb[k] = -kernels::kActBias * sum;
        }
      }
      std::vector<std::uint8_t> exact((blocks16 + 63) / 64);
      kernels::deploy_exact_chunks(s.data(), blocks16, s0, exact.data());
      std::vector<float> want(rows), per_block(rows);
      kernels::block_dot_g4_ref(4, w.data(), sg.data(), exact.data(), wb.data(), xu.data(), blocks16, rows, s0,
                                want.data());
      kernels::block_dot_ref(4, w.data(), s.data(), exact.data(), wb.data(), xu.data(), blocks16, rows, s0,
                             per_block.data());
      rules_differ = rules_differ || std::memcmp(want.data(), per_block.data(), rows * sizeof(float)) != 0;
      for (std::size_t f = 0; f < fns.size(); ++f) {
        std::vector<float> got(rows, -1.0f);
        fns[f](4, w.data(), sg.data(), exact.data(), wb.data(), xu.data(), blocks16, rows, s0, got.data());
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), rows * sizeof(float)))
            << "kernel " << f << " blocks16=" << blocks16 << " variant=" << variant << ": " << want[0] << " vs "
            << got[0];
      }
    }
  EXPECT_TRUE(rules_differ);
}

TEST(CosetDeployGroupT, FusedGemvEqualsItsScalarTwinAndTheBlockDot) {
  // The fused GEMV with a T per group (AVX-512 VBMI, AVX2) against its scalar twin, and the twin
  // against the panel path's decode (the group T spread to the blocks) + block_dot_g4_ref, bit for
  // bit: block counts around the 32- and 64-block strides, rows past kDeployIntChunk blocks, T = 15
  // and extreme codes, extreme activations, T = 0 but one group in rows 1 and 2 (row 0 only exact
  // chunks), nibble and compact T (escapes), 1..4 input rows.
  std::vector<float> scales16(16);
  for (int t = 0; t < 16; ++t) scales16[static_cast<std::size_t>(t)] = 0.25f * static_cast<float>(t + 1);
  kernels::D4Q4Tables tables;
  ASSERT_NO_FATAL_FAILURE(d4q4_tables_from_decode(tables));
  std::mt19937 rng(37);
  for (std::size_t blocks : {std::size_t{4}, std::size_t{12}, std::size_t{16}, std::size_t{20}, std::size_t{28},
                             std::size_t{32}, std::size_t{36}, std::size_t{60}, std::size_t{64}, std::size_t{68},
                             std::size_t{124}, std::size_t{132}, std::size_t{1028}, 2 * kernels::kDeployIntChunk + 68})
    for (int variant = 0; variant < 4; ++variant) {
      // random; T = 15 and extreme codes; extreme activations; T = 0 but one group in rows 1 and 2
      const std::size_t groups = blocks / 4, stride = (blocks + 63) / 64 * 64, blocks16 = (blocks + 15) / 16 * 16;
      const std::size_t code_row = 2 * blocks, n_rows = 3;
      std::vector<std::uint8_t> codes(n_rows * code_row), traw(n_rows * groups);
      for (auto& v : codes) v = variant == 1 ? 0xFF : static_cast<std::uint8_t>(rng());
      for (auto& v : traw) v = static_cast<std::uint8_t>(variant == 1 ? 15 : variant == 3 ? 0 : rng() % 16);
      if (variant == 3)
        for (std::size_t n = 1; n < n_rows; ++n) traw[n * groups + rng() % groups] = 7;
      const std::size_t rows = 1 + rng() % 4;
      std::vector<std::int8_t> xq;
      std::vector<std::int32_t> xb;
      fused_activations(4, blocks, stride, rows, variant == 2, rng, xq, xb);
      // The panel path on the same rows and activations (xq + 128, blocks16 per row).
      std::vector<std::uint8_t> xu(rows * blocks16 * 4);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t i = 0; i < blocks16 * 4; ++i)
          xu[r * blocks16 * 4 + i] = static_cast<std::uint8_t>(xq[r * stride * 4 + i] + kernels::kActBias);
      std::vector<float> want(n_rows * rows);
      for (std::size_t n = 0; n < n_rows; ++n) {
        std::vector<std::uint8_t> tb((blocks + 1) / 2, 0);  // each group's T for its 4 blocks
        for (std::size_t k = 0; k < blocks; ++k)
          tb[k / 2] = static_cast<std::uint8_t>(tb[k / 2] | traw[n * groups + k / 4] << (4 * (k % 2)));
        std::vector<std::int8_t> w(blocks16 * 4, 0);
        std::vector<float> s(blocks16, scales16[0]);  // padding blocks: T = 0 (deploy_kernels.h)
        std::vector<std::int32_t> wb(blocks16, 0);
        kernels::decode_d4q4_ref(tables, scales16.data(), codes.data() + n * code_row, tb.data(), blocks, w.data(),
                                 s.data(), wb.data());
        std::vector<std::uint8_t> exact((blocks16 + 63) / 64);
        kernels::deploy_exact_chunks(s.data(), blocks16, scales16[0], exact.data());
        std::vector<float> sg(blocks16 / 4);  // one scale per group (BlockDotG4Fn)
        for (std::size_t u = 0; u < sg.size(); ++u) sg[u] = s[4 * u];
        kernels::block_dot_g4_ref(4, w.data(), sg.data(), exact.data(), wb.data(), xu.data(), blocks16, rows,
                                  scales16[0], want.data() + n * rows);
      }
      for (int bits : {4, 2, 1}) {
        const CompactT ct = deploy_t_compact(traw.data(), n_rows, groups, bits);
        ASSERT_EQ(ct.bits, bits);
        const kernels::TRows tr{ct.t.data(),           deploy_t_row_bytes(groups, bits), bits, ct.escapes.data(),
                                ct.escape_start.data(), kDeployTGroupBlocks};
        std::vector<float> got(n_rows * rows, -1.0f);
        kernels::fused_gemv_d4q4_ref(tables, scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(), xb.data(),
                                     stride, rows, got.data());
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
            << "twin blocks=" << blocks << " variant=" << variant << " bits=" << bits;
#if defined(LOWBIT_HAVE_AVX512)
        if (cpu_supports(SimdLevel::AVX512) && kernels::cpu_has_avx512_vbmi()) {
          std::fill(got.begin(), got.end(), -1.0f);
          kernels::fused_gemv_d4q4_avx512_vbmi(tables, scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(),
                                               xb.data(), stride, rows, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
              << "avx512 blocks=" << blocks << " variant=" << variant << " rows=" << rows << " bits=" << bits;
        }
#endif
#if defined(LOWBIT_HAVE_AVX2)
        if (cpu_supports(SimdLevel::AVX2)) {
          std::fill(got.begin(), got.end(), -1.0f);
          kernels::fused_gemv_d4q4_avx2(tables, scales16.data(), codes.data(), tr, blocks, n_rows, xq.data(),
                                        xb.data(), stride, rows, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
              << "avx2 blocks=" << blocks << " variant=" << variant << " rows=" << rows << " bits=" << bits;
        }
#endif
      }
    }
}

TEST(CosetDeployGroupT, EncodeQuantizesEachGroupAtOneTNoWorseThanTheSmallestWithoutOverload) {
  // Every block decodes to s Q(f x / s) with s = scale(T_u) of its group and f = 2^(-i/16), i in
  // 0..64 (i > 0: a clipped block); each group's squared error is at most the one at the smallest T
  // at which none of its blocks overloads (Algorithm 1 with a shared T), which the encoder starts from.
  for (const auto& c : group_formats()) {
    const std::size_t rows = 3, blocks = 40, groups = blocks / 4, n = rows * blocks;
    auto x = gaussian(n * 4, 1.0, 21);
    for (std::size_t i = 0; i < 16; ++i) x[16 * 7 + i] *= 6.0f;  // a loud group
    x[16 * 3] = 9.0f;                                            // one loud weight in a quiet group
    std::vector<std::uint8_t> codes(n * c.M * 4), t(rows * groups);
    const EncodeStats stats = deploy_encode(c, x.data(), rows, blocks, kDeployTGroupBlocks, codes.data(), t.data());
    EXPECT_EQ(stats.overloaded, 0u) << name_of(c);
    const auto tb = spread_t(t);
    std::vector<float> dec(n * 4);
    decode<float>(c, codes.data(), tb.data(), n, dec.data());
    const auto at = [&](int level) {
      QuantizationConfig a = c;
      a.beta = c.beta * std::exp2(c.alpha * level);
      return a;
    };
    std::size_t clipped = 0;
    for (std::size_t k = 0; k < n; ++k) {
      bool found = false;
      for (int i = 0; i <= 64 && !found; ++i) {
        float y[4], want[4];
        for (int j = 0; j < 4; ++j) y[j] = x[4 * k + j] * std::exp2(-i / 16.0f);
        quantize_reference<float>(at(tb[k]), y, 1, want);
        found = std::equal(want, want + 4, dec.begin() + static_cast<std::ptrdiff_t>(4 * k));
        clipped += found && i > 0;
      }
      ASSERT_TRUE(found) << name_of(c) << " block " << k;
    }
    EXPECT_EQ(clipped, stats.clipped) << name_of(c);
    for (std::size_t u = 0; u < rows * groups; ++u) {
      int level = 0;  // the smallest T at which none of the group's blocks overloads
      for (; level <= c.max_scaling_iterations; ++level) {
        QuantizationConfig fixed = at(level);
        fixed.max_scaling_iterations = 0;
        std::vector<std::uint8_t> cc(4 * c.M * 4), tt(4);
        if (encode<float>(fixed, x.data() + 16 * u, 4, cc.data(), tt.data()).overloaded == 0) break;
      }
      if (level > c.max_scaling_iterations) continue;  // overloads at every T: clipped (checked above)
      std::vector<float> q(16);
      quantize_reference<float>(at(level), x.data() + 16 * u, 4, q.data());
      double plain = 0, ours = 0;
      for (std::size_t i = 0; i < 16; ++i) {
        plain += (q[i] - x[16 * u + i]) * (q[i] - x[16 * u + i]);
        ours += (dec[16 * u + i] - x[16 * u + i]) * (dec[16 * u + i] - x[16 * u + i]);
      }
      EXPECT_LE(ours, plain * (1 + 1e-9) + 1e-12) << name_of(c) << " group " << u << " T=" << int(t[u])
                                                  << " smallest without overload " << level;
      EXPECT_LE(t[u], level) << name_of(c) << " group " << u;
    }
  }
}

TEST(CosetDeployGroupT, DecodeSpreadsTheGroupT) {
  for (const auto& c : group_formats()) {
    const std::size_t rows = 4, blocks = 20;
    const GroupLayer g = group_layer(c, rows, blocks, 8);
    std::vector<float> got(rows * blocks * 4), want(got.size());
    packed_decode(g.view(), got.data());
    Layer per_block = g.layer;  // the same codes with a T nibble per block
    const auto tb = spread_t(g.t);
    per_block.t.assign(rows * deploy_t_row_bytes(blocks), 0);
    std::vector<std::uint8_t> scratch(per_block.codes.size());
    deploy_pack(c, rows, blocks, g.codes.data(), tb.data(), scratch.data(), per_block.t.data());
    packed_decode(per_block.view(), want.data());
    EXPECT_EQ(got, want) << name_of(c);
  }
}

TEST(CosetDeployGroupT, RefusesWhatItCannotRun) {
  const auto d4 = make(LatticeType::D4, 4, 2, 0.14, 0.125, 15);
  EXPECT_NO_THROW(require_t_group(d4, 8, 4, "x"));
  EXPECT_NO_THROW(require_t_group(make(LatticeType::E8, 16, 1, 0.2, 0.25, 15), 3, 1, "x"));
  const auto msg = [](auto fn) {
    try {
      fn();
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { require_t_group(d4, 8, 3, "layer"); }).find("t_group must be 1 or 4"), std::string::npos);
  EXPECT_NE(msg([&] { require_t_group(d4, 6, 4, "layer"); }).find("multiple of 4"), std::string::npos);
  EXPECT_NE(msg([&] { require_t_group(make(LatticeType::E8, 16, 1, 0.2, 0.25, 15), 8, 4, "layer"); }).find("for D4"),
            std::string::npos);
  EXPECT_NE(msg([&] { require_t_group(make(LatticeType::D4, 4, 4, 0.01, 0.25, 15), 8, 4, "layer"); }).find("int8"),
            std::string::npos);
  std::vector<std::uint8_t> codes(2 * 6 * 8), t(2 * 2), out_c(2 * 12), out_t(2);
  EXPECT_THROW(deploy_pack(d4, 2, 6, codes.data(), t.data(), out_c.data(), out_t.data(), 4), InvalidArgument);
  const auto x = gaussian(6 * 4, 1.0, 1);
  EXPECT_THROW(deploy_encode(d4, x.data(), 1, 6, 4, codes.data(), t.data()), InvalidArgument);
  // A T beyond the config's in a group row is refused by deploy_require_t.
  GroupLayer g = group_layer(make(LatticeType::D4, 4, 2, 0.14, 0.125, 7), 2, 8, 3);
  g.layer.t[0] = 0xFF;
  EXPECT_THROW(deploy_require_t(g.view(), "layer"), InvalidArgument);
}

TEST(CosetDeployGroupT, BlocksOverloadedAtTheLargestTAreClippedNotWrapped) {
  // A block far beyond the largest scale's shaping region: Algorithm 1 leaves it wrapped around (an
  // error larger than the block itself); deploy_encode shrinks it until it fits, with either t_group.
  const auto c = make(LatticeType::D4, 4, 2, 0.14, 0.125, 15);
  for (int group : {1, 4}) {
    const std::size_t blocks = 8;
    auto x = gaussian(blocks * 4, 1.0, 5);
    for (int j = 0; j < 4; ++j) x[4 + j] = 40.0f * (j % 2 ? -1.0f : 1.0f);  // block 1
    std::vector<std::uint8_t> codes(blocks * c.M * 4), t(blocks / group);
    const EncodeStats s = deploy_encode(c, x.data(), 1, blocks, group, codes.data(), t.data());
    EXPECT_EQ(s.overloaded, 0u) << group;
    EXPECT_GE(s.clipped, 1u) << group;
    std::vector<std::uint8_t> tb(blocks);
    for (std::size_t k = 0; k < blocks; ++k) tb[k] = t[k / group];
    std::vector<float> dec(blocks * 4);
    decode<float>(c, codes.data(), tb.data(), blocks, dec.data());
    double err = 0, norm = 0, dot = 0;
    for (int j = 4; j < 8; ++j) {
      err += (dec[j] - x[j]) * (dec[j] - x[j]);
      norm += x[j] * x[j];
      dot += dec[j] * x[j];
    }
    EXPECT_GT(dot, 0.0) << group;     // the same direction, shrunk
    EXPECT_LT(err, norm) << group;    // better than zero, unlike a wrapped decode
  }
}

}  // namespace
}  // namespace lowbit::coset

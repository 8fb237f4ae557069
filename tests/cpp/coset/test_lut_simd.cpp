// The lookup-table kernels at every SIMD level against their scalar twins, bit for bit (both
// sum in the same order with separate multiplies and adds), on awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "coset_test_data.h"
#include "coset/lut_kernels.h"
#include "lowbit/core/simd.h"
#include "lowbit/coset/lut.h"

namespace lowbit::coset {
namespace {

using test_data::gaussian;

std::pair<kernels::BuildTablesFn, kernels::MatvecPanelsFn> kernels_at(SimdLevel level) {
#if defined(LOWBIT_HAVE_AVX512)
  if (level == SimdLevel::AVX512) return {kernels::build_tables_avx512, kernels::matvec_panels_avx512};
#endif
#if defined(LOWBIT_HAVE_AVX2)
  if (level == SimdLevel::AVX2) return {kernels::build_tables_avx2, kernels::matvec_panels_avx2};
#endif
  (void)level;
  return {kernels::build_tables_scalar, kernels::matvec_panels_scalar};
}

TEST(CosetLutSimd, BuildTablesMatchScalarBitExactly) {
  struct Case {
    int d;
    std::size_t entries;
  };
  // Z2 q=2 (fewer entries than a register), Z2 q=5, D4 q=3, D4 q=4, E8 q=2, D4 q=16.
  for (auto level : available_simd_levels()) {
    const auto build = kernels_at(level).first;
    for (const Case cs : {Case{2, 4}, Case{2, 25}, Case{4, 81}, Case{4, 256}, Case{8, 256}, Case{4, 65536}})
      for (std::size_t blocks : {1, 3, 7, 17}) {
        if (cs.entries > 256 && blocks > 3) continue;  // the large table once is enough
        const auto reps_t = gaussian(cs.d * cs.entries, 2.0, 3);
        const auto y = gaussian(blocks * cs.d, 1.0, static_cast<unsigned>(blocks));
        std::vector<float> ref(blocks * cs.entries), got(blocks * cs.entries, -1.0f);
        kernels::build_tables_scalar(cs.d, cs.entries, reps_t.data(), y.data(), blocks, ref.data());
        build(cs.d, cs.entries, reps_t.data(), y.data(), blocks, got.data());
        ASSERT_EQ(got, ref) << simd_level_name(level) << " d=" << cs.d << " entries=" << cs.entries
                            << " blocks=" << blocks;
      }
  }
}

TEST(CosetLutSimd, MatvecPanelsMatchScalarBitExactly) {
  std::mt19937 rng(11);
  for (auto level : available_simd_levels()) {
    const auto matvec = kernels_at(level).second;
    for (int max_t : {10, 15, 255})  // the in-register scale lookup (T < 16) and the gathered one
      for (int levels : {1, 2, 4})
        for (std::size_t entries : {4, 256, 65536})
          for (std::size_t blocks : {1, 3, 17, 33}) {
            const std::size_t panels = 3;
            const auto table = gaussian(blocks * entries, 1.0, 5);
            std::vector<std::uint16_t> index(panels * blocks * levels * kernels::kPanelRows);
            std::vector<std::uint8_t> t(panels * blocks * kernels::kPanelRows);
            for (auto& v : index) v = static_cast<std::uint16_t>(rng() % entries);
            for (auto& v : t) v = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() % (max_t + 1) : 0);
            std::vector<float> scales(256);
            for (std::size_t k = 0; k < 256; ++k) scales[k] = 0.3f * std::exp2(0.25f * static_cast<float>(k % 40));
            const kernels::PanelMatvec args{table.data(), entries, blocks, levels, 4.0f, index.data(), t.data(),
                                            scales.data(), max_t};
            // Panels [1, 3) over the blocks in two passes, starting from non-zero sums.
            const auto start = gaussian(2 * kernels::kPanelRows, 1.0, 9);
            std::vector<float> ref = start, got = start;
            const std::size_t split = blocks / 2;
            for (auto* acc : {&ref, &got}) {
              const auto fn = acc == &ref ? kernels::matvec_panels_scalar : matvec;
              fn(args, 1, 3, 0, split, acc->data());
              fn(args, 1, 3, split, blocks, acc->data());
            }
            ASSERT_EQ(got, ref) << simd_level_name(level) << " M=" << levels << " entries=" << entries
                                << " blocks=" << blocks << " max_t=" << max_t;
          }
  }
}

// QuantizedMatrix::matvec_lut at every level equals the scalar level bit for bit, over awkward
// row counts (partial panels) and inputs that need retries (T > 0).
TEST(CosetLutSimd, QuantizedMatrixMatvecAtEveryLevelMatchesScalar) {
  struct Case {
    LatticeType type;
    int q, m;
    std::size_t cols;
  };
  for (const Case cs : {Case{LatticeType::D4, 4, 2, 4 * 37}, Case{LatticeType::E8, 2, 3, 8 * 5},
                        Case{LatticeType::Z2, 2, 4, 2 * 9}, Case{LatticeType::Z2, 5, 1, 2 * 40}})
    for (std::size_t rows : {1, 3, 7, 15, 17, 33, 1031}) {
      QuantizationConfig c;
      c.lattice = cs.type;
      c.q = cs.q;
      c.M = cs.m;
      c.beta = 0.05;
      auto a = gaussian(rows * cs.cols, 0.3, 1);
      for (std::size_t k = 0; k < a.size(); k += 13) a[k] *= 200.0f;  // overloads: retries with T > 0
      const auto y = gaussian(cs.cols, 1.0, 2);
      const auto qm = QuantizedMatrix::encode(c, a.data(), rows, cs.cols);
      std::vector<float> ref(rows);
      set_simd_level(SimdLevel::Scalar);
      qm.matvec_lut(y.data(), ref.data());
      for (auto level : available_simd_levels()) {
        set_simd_level(level);
        std::vector<float> got(rows, -1.0f);
        qm.matvec_lut(y.data(), got.data());
        EXPECT_EQ(last_dispatched_level(), level);
        ASSERT_EQ(got, ref) << simd_level_name(level) << " " << lattice_name(cs.type) << " rows=" << rows;
      }
    }
  set_simd_level(best_simd_level());
}

}  // namespace
}  // namespace lowbit::coset

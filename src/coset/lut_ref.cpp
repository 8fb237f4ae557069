// Scalar twins of the lookup-table kernels (lut_kernels.h): the same sums in the same order.
#include "lut_kernels.h"

namespace lowbit::coset::kernels {

void build_tables_scalar(int d, std::size_t entries, const float* reps_t, const float* y,
                         std::size_t blocks, float* table) {
  for (std::size_t k = 0; k < blocks; ++k)
    for (std::size_t e = 0; e < entries; ++e) {
      float acc = 0.0f;
      for (int j = 0; j < d; ++j) acc = acc + reps_t[j * entries + e] * y[k * d + j];
      table[k * entries + e] = acc;
    }
}

void matvec_panels_scalar(const PanelMatvec& a, std::size_t p0, std::size_t p1, std::size_t k0,
                          std::size_t k1, float* acc) {
  const int levels = a.levels;
  for (std::size_t p = p0; p < p1; ++p)
    for (std::size_t lane = 0; lane < kPanelRows; ++lane) {
      float sum = acc[(p - p0) * kPanelRows + lane];
      for (std::size_t k = k0; k < k1; ++k) {
        const float* tab = a.table + k * a.entries;
        const std::uint16_t* ix = a.index + (p * a.blocks + k) * levels * kPanelRows + lane;
        float v = tab[ix[(levels - 1) * kPanelRows]];
        for (int m = levels - 2; m >= 0; --m) v = v * a.q + tab[ix[m * kPanelRows]];  // Horner
        sum = sum + a.scales[a.t[(p * a.blocks + k) * kPanelRows + lane]] * v;
      }
      acc[(p - p0) * kPanelRows + lane] = sum;
    }
}

}  // namespace lowbit::coset::kernels

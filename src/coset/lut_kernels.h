// Per-level kernels of the one-sided lookup tables (internal).
//
// build_tables: table[k * entries + e] = sum_j reps_t[j * entries + e] * y[k * d + j], summed
// j = 0..d-1 from 0.0f with a separate multiply and add (no FMA), so every level rounds alike.
// matvec_panels: the quantized matrix is stored in panels of kPanelRows rows, its level indices
// as panels x blocks x M x kPanelRows and its T values as panels x blocks x kPanelRows, so that
// a SIMD register holds one block of kPanelRows (or half as many) rows and every table lookup is
// a gather. Each row's accumulator runs over the blocks in ascending order exactly as the scalar
// twin does, so all levels agree bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::coset::kernels {

inline constexpr std::size_t kPanelRows = 16;

struct PanelMatvec {
  const float* table;          // blocks x entries (the one-sided tables of the query)
  std::size_t entries;         // q^d
  std::size_t blocks;          // cols / d
  int levels;                  // M
  float q;                     // the Horner weight between levels
  const std::uint16_t* index;  // panels x blocks x levels x kPanelRows
  const std::uint8_t* t;       // panels x blocks x kPanelRows
  const float* scales;         // 256 scales, indexed by T
  int max_t;                   // no T in t exceeds it
};

// acc[(p - p0) * kPanelRows + lane] += sum over blocks [k0, k1) for panels [p0, p1).
using MatvecPanelsFn = void (*)(const PanelMatvec&, std::size_t p0, std::size_t p1, std::size_t k0,
                                std::size_t k1, float* acc);
using BuildTablesFn = void (*)(int d, std::size_t entries, const float* reps_t, const float* y,
                               std::size_t blocks, float* table);

void matvec_panels_scalar(const PanelMatvec&, std::size_t, std::size_t, std::size_t, std::size_t, float*);
void matvec_panels_avx2(const PanelMatvec&, std::size_t, std::size_t, std::size_t, std::size_t, float*);
void matvec_panels_avx512(const PanelMatvec&, std::size_t, std::size_t, std::size_t, std::size_t, float*);
void build_tables_scalar(int, std::size_t, const float*, const float*, std::size_t, float*);
void build_tables_avx2(int, std::size_t, const float*, const float*, std::size_t, float*);
void build_tables_avx512(int, std::size_t, const float*, const float*, std::size_t, float*);

}  // namespace lowbit::coset::kernels

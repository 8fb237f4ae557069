// The three lattices of Coset (Z2, D4, E8): dimensions, generator matrices and closest points.
//
// Closest points follow Conway & Sloane (SPLAG ch. 20): Z^n rounds; D_n rounds and, if the
// coordinate sum is odd, re-rounds the coordinate farthest from an integer the other way;
// E8 = D8 u (D8 + 1/2) takes the closer of the two candidates.
//
// Tie rule ("tie dither", on by default): ties are broken as if the input were nudged by
// delta * w with w_i = 2^i (i = 0..d-1) and delta -> 0+. Concretely:
//   * a coordinate exactly halfway between two integers rounds up;
//   * D_n flips, among coordinates with the largest |residual|, the one with the largest
//     s_i * 2^i, where s_i = +1 if the residual y_i - r_i >= 0 and -1 otherwise, and moves it
//     by s_i;
//   * E8 keeps the candidate c with the smaller |y - c|^2 and, on equality, the one with the
//     smaller <w, y - c>.
// The rule is a symbolic perturbation, so Q(y + l) = Q(y) + l exactly for every lattice point
// l: the property that makes hierarchical decoding exact when G b / q lands on a Voronoi
// boundary (always possible for even q, and for D4/E8 also for odd q).
// With the tie dither off, the plain Conway & Sloane rules apply (round half to even, flip the
// lowest index, prefer D8): not shift invariant at ties (see docs/coset.md).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace lowbit::coset {

enum class LatticeType : int { Z2 = 0, D4 = 1, E8 = 2 };

inline constexpr int kMaxDim = 8;

// "Z2", "D4" or "E8" (case-insensitive); throws InvalidArgument otherwise.
LatticeType parse_lattice(std::string_view name);
const char* lattice_name(LatticeType type) noexcept;
int lattice_dim(LatticeType type) noexcept;
// Coordinates are stored times this factor so they are integers (E8 has half-integers): 1 or 2.
int coordinate_scale(LatticeType type) noexcept;
// Volume of the fundamental cell (|det G|): Z2 1, D4 2, E8 1.
double lattice_volume(LatticeType type) noexcept;
// Covering radius (max distance to the closest lattice point): Z2 sqrt(2)/2, D4 1, E8 1.
double covering_radius(LatticeType type) noexcept;

// Generator G (row-major d x d; lattice points are x = G b for integer b) and its inverse.
// Every entry of both is a multiple of 1/4, so G b and G^-1 x are exact in floating point.
std::array<double, kMaxDim * kMaxDim> generator_matrix(LatticeType type);
std::array<double, kMaxDim * kMaxDim> inverse_generator_matrix(LatticeType type);

// Closest lattice point to each of n vectors (row-major n x d) into out (may alias x).
// tie_dither selects the tie rule described above. Multi-threaded.
template <class T>
void closest_points(LatticeType type, const T* x, std::size_t n, T* out, bool tie_dither = true);

}  // namespace lowbit::coset

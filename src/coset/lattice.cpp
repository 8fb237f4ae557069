#include "lowbit/coset/lattice.h"

#include <cctype>
#include <cmath>
#include <string>

#include "lattice_step.h"
#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"

namespace lowbit::coset {

LatticeType parse_lattice(std::string_view name) {
  std::string upper(name);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper == "Z2") return LatticeType::Z2;
  if (upper == "D4") return LatticeType::D4;
  if (upper == "E8") return LatticeType::E8;
  throw InvalidArgument("lattice_type: expected 'Z2', 'D4' or 'E8', got '" + std::string(name) + "'");
}

const char* lattice_name(LatticeType type) noexcept {
  switch (type) {
    case LatticeType::Z2: return "Z2";
    case LatticeType::D4: return "D4";
    case LatticeType::E8: return "E8";
  }
  return "?";
}

int lattice_dim(LatticeType type) noexcept {
  return type == LatticeType::Z2 ? 2 : type == LatticeType::D4 ? 4 : 8;
}

int coordinate_scale(LatticeType type) noexcept { return type == LatticeType::E8 ? 2 : 1; }

double lattice_volume(LatticeType type) noexcept { return type == LatticeType::D4 ? 2.0 : 1.0; }

double covering_radius(LatticeType type) noexcept {
  return type == LatticeType::Z2 ? std::sqrt(0.5) : 1.0;
}

// Columns are the basis vectors (x = G b), Conway & Sloane's lower-triangular generators:
// D4: 2e1, e2-e1, e3-e2, e4-e3.  E8: 2e1, e2-e1, ..., e7-e6, (1/2, ..., 1/2).
std::array<double, kMaxDim * kMaxDim> generator_matrix(LatticeType type) {
  std::array<double, kMaxDim * kMaxDim> g{};
  const int d = lattice_dim(type);
  auto at = [&](int row, int col) -> double& { return g[static_cast<std::size_t>(row * d + col)]; };
  if (type == LatticeType::Z2) {
    at(0, 0) = at(1, 1) = 1.0;
    return g;
  }
  const int chain = type == LatticeType::D4 ? 4 : 7;  // columns 0..chain-1 form the D_n chain
  at(0, 0) = 2.0;
  for (int c = 1; c < chain; ++c) {
    at(c - 1, c) = -1.0;
    at(c, c) = 1.0;
  }
  if (type == LatticeType::E8)
    for (int r = 0; r < 8; ++r) at(r, 7) = 0.5;
  return g;
}

std::array<double, kMaxDim * kMaxDim> inverse_generator_matrix(LatticeType type) {
  // Gauss-Jordan on small dyadic matrices: every pivot is 2, 1 or 1/2, so this is exact.
  const int d = lattice_dim(type);
  auto g = generator_matrix(type);
  std::array<double, kMaxDim * kMaxDim> inv{};
  for (int i = 0; i < d; ++i) inv[static_cast<std::size_t>(i * d + i)] = 1.0;
  for (int col = 0; col < d; ++col) {
    int pivot = col;
    while (g[static_cast<std::size_t>(pivot * d + col)] == 0.0) ++pivot;
    for (int k = 0; k < d; ++k) {
      std::swap(g[static_cast<std::size_t>(col * d + k)], g[static_cast<std::size_t>(pivot * d + k)]);
      std::swap(inv[static_cast<std::size_t>(col * d + k)], inv[static_cast<std::size_t>(pivot * d + k)]);
    }
    const double p = g[static_cast<std::size_t>(col * d + col)];
    for (int k = 0; k < d; ++k) {
      g[static_cast<std::size_t>(col * d + k)] /= p;
      inv[static_cast<std::size_t>(col * d + k)] /= p;
    }
    for (int row = 0; row < d; ++row) {
      const double f = g[static_cast<std::size_t>(row * d + col)];
      if (row == col || f == 0.0) continue;
      for (int k = 0; k < d; ++k) {
        g[static_cast<std::size_t>(row * d + k)] -= f * g[static_cast<std::size_t>(col * d + k)];
        inv[static_cast<std::size_t>(row * d + k)] -= f * inv[static_cast<std::size_t>(col * d + k)];
      }
    }
  }
  return inv;
}

template <class T>
void closest_points(LatticeType type, const T* x, std::size_t n, T* out, bool tie_dither) {
  const int d = lattice_dim(type);
  const T inv_scale = T(1) / static_cast<T>(coordinate_scale(type));
  const auto step = detail::make_step<T>(1.0, tie_dither, /*snap=*/true);
  parallel_for(0, n, 4096, [&](std::size_t begin, std::size_t end) {
    T v[kMaxDim], point[kMaxDim], e[kMaxDim];
    for (std::size_t i = begin; i < end; ++i) {
      for (int j = 0; j < d; ++j) {
        v[j] = x[i * d + j];
        require(std::isfinite(v[j]), "closest_points: x contains NaN or Inf (vector " +
                                         std::to_string(i) + ")");
      }
      detail::lattice_step(type, v, step, point, e);
      for (int j = 0; j < d; ++j) out[i * d + j] = point[j] * inv_scale;
    }
  });
}

template void closest_points<float>(LatticeType, const float*, std::size_t, float*, bool);
template void closest_points<double>(LatticeType, const double*, std::size_t, double*, bool);

}  // namespace lowbit::coset

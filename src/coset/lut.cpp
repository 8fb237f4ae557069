#include "lowbit/coset/lut.h"

#include <algorithm>
#include <string>

#include "hnlq_kernels.h"
#include "lut_kernels.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/coset/packing.h"

namespace lowbit::coset {

namespace {

std::size_t entries_of(const QuantizationConfig& c) {
  std::size_t e = 1;
  for (int j = 0; j < c.dim(); ++j) e *= static_cast<std::size_t>(c.q);
  return e;
}

void require_lut_config(const QuantizationConfig& c, std::size_t limit, const char* what) {
  c.validate();
  require(!c.with_dither, std::string(what) + ": config.with_dither is not supported by lookup tables");
  require(entries_of(c) <= limit, std::string(what) + ": q^d = " + std::to_string(entries_of(c)) +
                                      " exceeds the table limit " + std::to_string(limit) + " for " +
                                      lattice_name(c.lattice) + " q=" + std::to_string(c.q));
}

std::vector<float> scale_table(const QuantizationConfig& c) {
  std::vector<float> s(kMaxScalingIterations + 1, 0.0f);
  const int max_t = c.disable_overload_protection ? 0 : c.max_scaling_iterations;
  for (int t = 0; t <= max_t; ++t) s[static_cast<std::size_t>(t)] = c.scale<float>(t);
  return s;
}

kernels::BuildTablesFn pick_build_tables() {
  static constexpr KernelSet<kernels::BuildTablesFn> kSet{
      kernels::build_tables_scalar, LOWBIT_AVX2_FN(kernels::build_tables_avx2),
      LOWBIT_AVX512_FN(kernels::build_tables_avx512)};
  return kSet.pick();
}

kernels::MatvecPanelsFn pick_matvec_panels() {
  static constexpr KernelSet<kernels::MatvecPanelsFn> kSet{
      kernels::matvec_panels_scalar, LOWBIT_AVX2_FN(kernels::matvec_panels_avx2),
      LOWBIT_AVX512_FN(kernels::matvec_panels_avx512)};
  return kSet.pick();
}

// Blocks of tables per pass over a panel range: about 32 KiB, so the tables being gathered
// from stay in L1 while every panel of the range goes through them.
std::size_t tile_blocks(std::size_t entries) {
  return std::max<std::size_t>(1, (32 * 1024) / (entries * sizeof(float)));
}

void require_t(const QuantizationConfig& c, std::uint8_t t, const char* what) {
  const int max_t = c.disable_overload_protection ? 0 : c.max_scaling_iterations;
  require(t <= max_t, std::string(what) + ": T=" + std::to_string(t) + " beyond max_scaling_iterations");
}

}  // namespace

std::vector<float> coset_representatives(const QuantizationConfig& config) {
  config.validate();
  const int d = config.dim();
  const std::size_t entries = entries_of(config);
  require(entries <= kMaxLutEntries, "coset_representatives: q^d too large for a table");
  std::vector<std::uint8_t> codes(entries * d);
  for (std::size_t idx = 0; idx < entries; ++idx) level_codes(idx, d, config.q, codes.data() + idx * d);
  std::vector<float> reps(entries * d);
  kernels::decode_ref<float>(config.lattice, config.q, 1, config.with_tie_dither, codes.data(), entries,
                             reps.data());
  return reps;
}

OneSidedLut::OneSidedLut(const QuantizationConfig& config, const float* y, std::size_t length)
    : config_(config), blocks_(0), entries_(0) {
  require_lut_config(config, kMaxLutEntries, "OneSidedLut");
  const int d = config.dim();
  require(length % d == 0, "OneSidedLut: query length " + std::to_string(length) +
                               " is not a multiple of the lattice dimension " + std::to_string(d));
  blocks_ = length / d;
  entries_ = entries_of(config);
  scales_ = scale_table(config);
  const std::vector<float> reps = coset_representatives(config);
  std::vector<float> reps_t(reps.size());  // d x entries: the SIMD build reads entries in a row
  for (std::size_t idx = 0; idx < entries_; ++idx)
    for (int j = 0; j < d; ++j) reps_t[j * entries_ + idx] = reps[idx * d + j];
  table_.resize(blocks_ * entries_);
  const kernels::BuildTablesFn build = pick_build_tables();
  parallel_for(0, blocks_, 16, [&](std::size_t b0, std::size_t b1) {
    build(d, entries_, reps_t.data(), y + b0 * d, b1 - b0, table_.data() + b0 * entries_);
  });
}

float OneSidedLut::dot(const std::uint8_t* codes, const std::uint8_t* t) const {
  const int d = config_.dim();
  const int levels = config_.M;
  float acc = 0.0f;
  for (std::size_t k = 0; k < blocks_; ++k) {
    require_t(config_, t[k], "OneSidedLut::dot");
    const float* table_k = table(k);
    float v = 0.0f, w = 1.0f;
    for (int m = 0; m < levels; ++m) {
      const std::uint8_t* b = codes + (k * levels + m) * d;
      for (int j = 0; j < d; ++j) require(b[j] < config_.q, "OneSidedLut::dot: codes outside [0, q)");
      v += w * table_k[level_index(b, d, config_.q)];
      w *= static_cast<float>(config_.q);
    }
    acc += scales_[t[k]] * v;
  }
  return acc;
}

QuantizedMatrix::QuantizedMatrix(const QuantizationConfig& config, std::size_t rows, std::size_t cols)
    : config_(config), rows_(rows), cols_(cols), blocks_(0), panels_((rows + kPanelRows - 1) / kPanelRows) {
  static_assert(kPanelRows == kernels::kPanelRows);
  require_lut_config(config, kMaxLutEntries, "QuantizedMatrix");
  require(cols % config.dim() == 0, "QuantizedMatrix: cols " + std::to_string(cols) +
                                        " is not a multiple of the lattice dimension");
  blocks_ = cols / config.dim();
  index_.assign(panels_ * blocks_ * config.M * kPanelRows, 0);
  t_.assign(panels_ * blocks_ * kPanelRows, 0);
}

std::size_t QuantizedMatrix::t_slot(std::size_t row, std::size_t block) const noexcept {
  return (row / kPanelRows * blocks_ + block) * kPanelRows + row % kPanelRows;
}

std::size_t QuantizedMatrix::index_slot(std::size_t row, std::size_t block) const noexcept {
  return (row / kPanelRows * blocks_ + block) * config_.M * kPanelRows + row % kPanelRows;
}

void QuantizedMatrix::store_codes(const std::uint8_t* codes, const std::uint8_t* t) {
  const int d = config_.dim();
  for (std::size_t i = 0; i < rows_ * blocks_; ++i) {
    const std::size_t r = i / blocks_, k = i % blocks_;
    t_[t_slot(r, k)] = t[i];
    for (int m = 0; m < config_.M; ++m)
      index_[index_slot(r, k) + m * kPanelRows] =
          static_cast<std::uint16_t>(level_index(codes + (i * config_.M + m) * d, d, config_.q));
  }
}

QuantizedMatrix::QuantizedMatrix(const QuantizationConfig& config, std::size_t rows, std::size_t cols,
                                 const std::uint8_t* codes, const std::uint8_t* t)
    : QuantizedMatrix(config, rows, cols) {
  const int d = config.dim();
  for (std::size_t i = 0; i < rows * blocks_; ++i) {
    require_t(config_, t[i], "QuantizedMatrix");
    for (std::size_t k = i * config.M * d; k < (i + 1) * config.M * d; ++k)
      require(codes[k] < config.q, "QuantizedMatrix: codes outside [0, q)");
  }
  store_codes(codes, t);
}

QuantizedMatrix QuantizedMatrix::encode(const QuantizationConfig& config, const float* a, std::size_t rows,
                                        std::size_t cols) {
  QuantizedMatrix qm(config, rows, cols);
  const std::size_t vectors = rows * qm.blocks_;
  std::vector<std::uint8_t> codes(vectors * config.M * config.dim()), t(vectors);
  coset::encode<float>(config, a, vectors, codes.data(), t.data());
  qm.store_codes(codes.data(), t.data());
  return qm;
}

void QuantizedMatrix::decode(float* out) const {
  const int d = config_.dim();
  const std::size_t vectors = rows_ * blocks_;
  std::vector<std::uint8_t> codes(vectors * config_.M * d), t(vectors);
  for (std::size_t i = 0; i < vectors; ++i) {
    const std::size_t r = i / blocks_, k = i % blocks_;
    t[i] = t_[t_slot(r, k)];
    for (int m = 0; m < config_.M; ++m)
      level_codes(index_[index_slot(r, k) + m * kPanelRows], d, config_.q, codes.data() + (i * config_.M + m) * d);
  }
  coset::decode<float>(config_, codes.data(), t.data(), vectors, out);
}

void QuantizedMatrix::matvec_lut(const float* y, float* out) const {
  const OneSidedLut lut(config_, y, cols_);
  const std::vector<float> scales = scale_table(config_);
  const int max_t = config_.disable_overload_protection ? 0 : config_.max_scaling_iterations;
  const kernels::PanelMatvec args{lut.table(0), lut.entries(), blocks_, config_.M, static_cast<float>(config_.q),
                                  index_.data(), t_.data(), scales.data(), max_t};
  const kernels::MatvecPanelsFn matvec = pick_matvec_panels();
  const std::size_t tile = tile_blocks(lut.entries());
  parallel_for(0, panels_, 4, [&](std::size_t p0, std::size_t p1) {
    std::vector<float> acc((p1 - p0) * kPanelRows, 0.0f);
    for (std::size_t k0 = 0; k0 < blocks_; k0 += tile)
      matvec(args, p0, p1, k0, std::min(blocks_, k0 + tile), acc.data());
    const std::size_t r1 = std::min(rows_, p1 * kPanelRows);
    std::copy(acc.begin(), acc.begin() + (r1 - p0 * kPanelRows), out + p0 * kPanelRows);
  });
}

TwoSidedLut::TwoSidedLut(const QuantizationConfig& config) : config_(config), entries_(0) {
  require_lut_config(config, kMaxTwoSidedEntries, "TwoSidedLut");
  const int d = config.dim();
  entries_ = entries_of(config);
  scales_ = scale_table(config);
  const std::vector<float> reps = coset_representatives(config);
  table_.resize(entries_ * entries_);
  for (std::size_t i = 0; i < entries_; ++i)
    for (std::size_t j = 0; j < entries_; ++j) {
      float acc = 0.0f;
      for (int k = 0; k < d; ++k) acc += reps[i * d + k] * reps[j * d + k];
      table_[i * entries_ + j] = acc;
    }
}

float TwoSidedLut::dot(const std::uint8_t* codes_x, const std::uint8_t* t_x, const std::uint8_t* codes_y,
                       const std::uint8_t* t_y, std::size_t blocks) const {
  const int d = config_.dim();
  const int levels = config_.M;
  const float q = static_cast<float>(config_.q);
  float acc = 0.0f;
  std::size_t ix[kMaxLevels], iy[kMaxLevels];
  for (std::size_t k = 0; k < blocks; ++k) {
    require_t(config_, t_x[k], "TwoSidedLut::dot");
    require_t(config_, t_y[k], "TwoSidedLut::dot");
    for (int m = 0; m < levels; ++m) {
      const std::uint8_t* bx = codes_x + (k * levels + m) * d;
      const std::uint8_t* by = codes_y + (k * levels + m) * d;
      for (int j = 0; j < d; ++j)
        require(bx[j] < config_.q && by[j] < config_.q, "TwoSidedLut::dot: codes outside [0, q)");
      ix[m] = level_index(bx, d, config_.q);
      iy[m] = level_index(by, d, config_.q);
    }
    float v = 0.0f, wx = 1.0f;
    for (int m = 0; m < levels; ++m, wx *= q) {
      float wy = 1.0f;
      for (int n = 0; n < levels; ++n, wy *= q) v += wx * wy * table_[ix[m] * entries_ + iy[n]];
    }
    acc += scales_[t_x[k]] * scales_[t_y[k]] * v;
  }
  return acc;
}

}  // namespace lowbit::coset

#include "lowbit/coset/lut.h"

#include <string>

#include "hnlq_kernels.h"
#include "lowbit/core/error.h"
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
  table_.resize(blocks_ * entries_);
  parallel_for(0, blocks_, 16, [&](std::size_t b0, std::size_t b1) {
    for (std::size_t k = b0; k < b1; ++k) {
      const float* yk = y + k * d;
      float* out = table_.data() + k * entries_;
      for (std::size_t idx = 0; idx < entries_; ++idx) {
        const float* r = reps.data() + idx * d;
        float acc = 0.0f;
        for (int j = 0; j < d; ++j) acc += r[j] * yk[j];
        out[idx] = acc;
      }
    }
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
    : config_(config), rows_(rows), cols_(cols), blocks_(0) {
  require_lut_config(config, kMaxLutEntries, "QuantizedMatrix");
  require(cols % config.dim() == 0, "QuantizedMatrix: cols " + std::to_string(cols) +
                                        " is not a multiple of the lattice dimension");
  blocks_ = cols / config.dim();
  index_.resize(rows * blocks_ * config.M);
  t_.resize(rows * blocks_);
}

QuantizedMatrix::QuantizedMatrix(const QuantizationConfig& config, std::size_t rows, std::size_t cols,
                                 const std::uint8_t* codes, const std::uint8_t* t)
    : QuantizedMatrix(config, rows, cols) {
  const int d = config.dim();
  const std::size_t vectors = rows * blocks_;
  for (std::size_t i = 0; i < vectors; ++i) {
    require_t(config_, t[i], "QuantizedMatrix");
    t_[i] = t[i];
    for (int m = 0; m < config.M; ++m) {
      const std::uint8_t* b = codes + (i * config.M + m) * d;
      for (int j = 0; j < d; ++j) require(b[j] < config.q, "QuantizedMatrix: codes outside [0, q)");
      index_[i * config.M + m] = static_cast<std::uint16_t>(level_index(b, d, config.q));
    }
  }
}

QuantizedMatrix QuantizedMatrix::encode(const QuantizationConfig& config, const float* a, std::size_t rows,
                                        std::size_t cols) {
  QuantizedMatrix qm(config, rows, cols);
  const int d = config.dim();
  const std::size_t vectors = rows * qm.blocks_;
  std::vector<std::uint8_t> codes(vectors * config.M * d);
  coset::encode<float>(config, a, vectors, codes.data(), qm.t_.data());
  for (std::size_t i = 0; i < vectors * config.M; ++i)
    qm.index_[i] = static_cast<std::uint16_t>(level_index(codes.data() + i * d, d, config.q));
  return qm;
}

void QuantizedMatrix::decode(float* out) const {
  const int d = config_.dim();
  const std::size_t vectors = rows_ * blocks_;
  std::vector<std::uint8_t> codes(vectors * config_.M * d);
  for (std::size_t i = 0; i < vectors * config_.M; ++i) level_codes(index_[i], d, config_.q, codes.data() + i * d);
  coset::decode<float>(config_, codes.data(), t_.data(), vectors, out);
}

void QuantizedMatrix::matvec_lut(const float* y, float* out) const {
  const OneSidedLut lut(config_, y, cols_);
  const int levels = config_.M;
  const float q = static_cast<float>(config_.q);
  parallel_for(0, rows_, 16, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const std::uint16_t* idx = index_.data() + r * blocks_ * levels;
      const std::uint8_t* t = t_.data() + r * blocks_;
      float acc = 0.0f;
      for (std::size_t k = 0; k < blocks_; ++k) {
        const float* table_k = lut.table(k);
        float v = table_k[idx[k * levels + levels - 1]];
        for (int m = levels - 2; m >= 0; --m) v = v * q + table_k[idx[k * levels + m]];  // Horner
        acc += lut.scale(t[k]) * v;
      }
      out[r] = acc;
    }
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

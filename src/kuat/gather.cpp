// GatherTable construction and the dispatch of gather_sample (kernels in gather_*.cpp).
#include "lowbit/kuat/gather.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gather_isa.h"
#include "lowbit/core/error.h"
#include "lowbit/core/simd.h"

namespace lowbit::kuat {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Expands mean/std to one value per channel (empty -> `fallback`, one value -> every channel).
std::vector<float> per_channel(const std::vector<float>& values, std::uint32_t channels, float fallback,
                               const char* name) {
  if (values.empty()) return std::vector<float>(channels, fallback);
  if (values.size() == 1) return std::vector<float>(channels, values[0]);
  require(values.size() == channels, std::string(name) + " must have 1 or " + std::to_string(channels) +
                                         " values (one per channel), got " + std::to_string(values.size()));
  return values;
}

std::size_t next_pow2(std::size_t v) {
  std::size_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

Layout parse_layout(std::string_view name) {
  const std::string v = lower(name);
  if (v == "nhwc") return Layout::NHWC;
  if (v == "nchw") return Layout::NCHW;
  throw InvalidArgument("layout must be 'NHWC' or 'NCHW', got '" + std::string(name) + "'");
}

PixelType parse_pixel_type(std::string_view name) {
  const std::string v = lower(name);
  if (v == "uint8") return PixelType::UInt8;
  if (v == "float32") return PixelType::Float32;
  throw InvalidArgument("dtype must be 'uint8' or 'float32', got '" + std::string(name) + "'");
}

const char* layout_name(Layout layout) noexcept { return layout == Layout::NHWC ? "NHWC" : "NCHW"; }
const char* pixel_type_name(PixelType type) noexcept { return type == PixelType::UInt8 ? "uint8" : "float32"; }

GatherTable::GatherTable(const ImageGeometry& geometry, const std::uint8_t* codebook, std::uint32_t codebook_size,
                         const OutputFormat& format)
    : geometry_(geometry), format_(format), codebook_size_(codebook_size) {
  validate(geometry_);
  bits_ = index_bits_for(codebook_size);
  require(codebook != nullptr, "codebook is null");
  const std::uint32_t C = geometry_.channels, P = geometry_.patch;
  const bool is_float = format_.dtype == PixelType::Float32;
  if (!is_float) {
    require(format_.mean.empty() && format_.std.empty(), "mean/std normalisation needs dtype float32");
  }
  format_.mean = per_channel(format_.mean, C, 0.0f, "mean");
  format_.std = per_channel(format_.std, C, 1.0f, "std");
  for (std::uint32_t c = 0; c < C; ++c) {
    require(std::isfinite(format_.mean[c]), "mean must be finite");
    require(std::isfinite(format_.std[c]) && format_.std[c] != 0.0f, "std must be finite and non-zero");
  }

  padded_size_ = 1u << bits_;
  planes_ = format_.layout == Layout::NHWC ? 1 : C;
  elements_per_pixel_ = format_.layout == Layout::NHWC ? C : 1;
  const std::size_t es = element_size();
  piece_bytes_ = std::size_t{P} * elements_per_pixel_ * es;
  slot_bytes_ = std::max<std::size_t>(8, next_pow2(piece_bytes_));

  // Value of channel c for byte v: the table stores outputs, so the kernels only copy.
  auto store = [&](std::uint8_t* dst, std::uint8_t v, std::uint32_t c) {
    if (!is_float) {
      *dst = v;
    } else {
      const float f = static_cast<float>((v / 255.0 - format_.mean[c]) / format_.std[c]);
      std::memcpy(dst, &f, sizeof f);
    }
  };

  const std::uint32_t variants = format_.mirrored ? 2 : 1;
  pieces_.resize(std::size_t{variants} * padded_size_ * codeword_stride());
  pieces_.zero();  // padding codewords (k >= codebook_size) decode as zeros
  const std::uint32_t cw = geometry_.codeword_bytes();
  for (std::uint32_t mirrored = 0; mirrored < variants; ++mirrored) {
    for (std::uint32_t k = 0; k < codebook_size; ++k) {
      const std::uint8_t* word = codebook + std::size_t{k} * cw;
      for (std::uint32_t plane = 0; plane < planes_; ++plane) {
        for (std::uint32_t py = 0; py < P; ++py) {
          std::uint8_t* dst = pieces_.data() +
                              (((std::size_t{mirrored} * padded_size_ + k) * planes_ + plane) * P + py) * slot_bytes_;
          for (std::uint32_t px = 0; px < P; ++px) {
            const std::uint32_t src_px = mirrored ? P - 1 - px : px;
            for (std::uint32_t e = 0; e < elements_per_pixel_; ++e) {
              const std::uint32_t c = planes_ == 1 ? e : plane;
              store(dst + (std::size_t{px} * elements_per_pixel_ + e) * es, word[(py * P + src_px) * C + c], c);
            }
          }
        }
      }
    }
  }

  if (format_.layout == Layout::NCHW && C == 3 && P == 2) {
    const std::size_t slot = planar_slot_bytes();
    planar_.resize(std::size_t{variants} * padded_size_ * P * slot);
    planar_.zero();
    for (std::uint32_t mirrored = 0; mirrored < variants; ++mirrored) {
      for (std::uint32_t k = 0; k < codebook_size; ++k) {
        const std::uint8_t* word = codebook + std::size_t{k} * cw;
        for (std::uint32_t py = 0; py < P; ++py) {
          std::uint8_t* dst = planar_.data() + ((std::size_t{mirrored} * padded_size_ + k) * P + py) * slot;
          for (std::uint32_t c = 0; c < C; ++c) {
            for (std::uint32_t px = 0; px < P; ++px) {
              store(dst + (c * P + px) * es, word[(py * P + (mirrored ? P - 1 - px : px)) * C + c], c);
            }
          }
        }
      }
    }
  }

  pad_values_.resize(std::size_t{planes_} * elements_per_pixel_ * es);
  for (std::uint32_t plane = 0; plane < planes_; ++plane) {
    for (std::uint32_t e = 0; e < elements_per_pixel_; ++e) {
      const std::uint32_t c = planes_ == 1 ? e : plane;
      store(pad_values_.data() + (std::size_t{plane} * elements_per_pixel_ + e) * es, 0, c);
    }
  }
}

void gather_sample(const GatherTable& table, const std::uint8_t* packed, const SampleTransform& transform, void* out) {
  using kernels::GatherFn;
  static constexpr KernelSet<GatherFn> kSet{kernels::gather_sample_ref, LOWBIT_AVX2_FN(kernels::gather_sample_avx2),
                                            LOWBIT_AVX512_FN(kernels::gather_sample_avx512)};
  require(!transform.flip || table.format().mirrored, "gather_sample: a flip needs a table built with mirrored = true");
  const ImageGeometry& g = table.geometry();
  thread_local AlignedBuffer<std::uint16_t> indices;
  thread_local AlignedBuffer<std::uint8_t> row;
  const std::size_t index_count = g.num_patches() + kernels::kIndexSlack;
  // One source row of pieces per plane (the planar kernels lay all planes of a row at once).
  const std::size_t row_bytes = std::size_t{g.grid_w()} * table.piece_bytes() * table.planes() + kernels::kRowSlack;
  if (indices.size() < index_count) indices.resize(index_count);
  if (row.size() < row_bytes) row.resize(row_bytes);

  const std::uint32_t max_index = kSet.pick()(table, packed, transform, static_cast<std::uint8_t*>(out),
                                              kernels::GatherScratch{indices.data(), row.data()});
  if (max_index >= table.codebook_size()) {
    // Rare path: find the first offending patch for the message.
    std::vector<std::uint32_t> idx(g.num_patches());
    unpack_indices_ref(packed, idx.size(), table.bits(), idx.data());
    const auto bad = std::find_if(idx.begin(), idx.end(), [&](std::uint32_t k) { return k >= table.codebook_size(); });
    const std::size_t j = static_cast<std::size_t>(bad - idx.begin());
    throw InvalidArgument("patch (" + std::to_string(j / g.grid_w()) + ", " + std::to_string(j % g.grid_w()) +
                          ") has index " + std::to_string(*bad) + " >= codebook size " +
                          std::to_string(table.codebook_size()));
  }
}

}  // namespace lowbit::kuat

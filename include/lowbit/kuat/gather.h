// Kuat gather: one fused pass from packed indices to a training-ready image.
//
// Decoding a Kuat sample is a table lookup: unpack the bit-packed patch indices, copy each
// patch's codeword into the output. The gather kernels do that straight into the final layout
// (NHWC or NCHW), the final type (uint8, or float32 with mean/std normalisation already applied
// to the table), and the final geometry (random crop with zero padding and horizontal flip), so
// no intermediate image is ever written.
//
// A GatherTable is the codebook prepared for one output format: padded to 2^bits entries (every
// packed value reads inside the table, so the kernels never branch on the index; out-of-range
// indices are still detected and reported), each patch row stored in its own aligned slot, and a
// mirrored copy of every codeword when flips are wanted. Build it once per loader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lowbit/core/aligned_buffer.h"
#include "lowbit/kuat/codes.h"

namespace lowbit::kuat {

enum class Layout { NHWC, NCHW };
enum class PixelType { UInt8, Float32 };

// "NHWC"/"NCHW" and "uint8"/"float32" (case-insensitive); InvalidArgument naming the argument otherwise.
Layout parse_layout(std::string_view name);
PixelType parse_pixel_type(std::string_view name);
const char* layout_name(Layout layout) noexcept;
const char* pixel_type_name(PixelType type) noexcept;

struct OutputFormat {
  Layout layout = Layout::NHWC;
  PixelType dtype = PixelType::UInt8;
  // float32 only: out = (pixel / 255 - mean[c]) / std[c], the convention of torchvision's
  // ToTensor + Normalize. Empty means mean 0 / std 1; one value applies to every channel.
  std::vector<float> mean;
  std::vector<float> std;
  bool mirrored = false;  // also build the mirrored codewords that horizontal flips read
};

// Where output pixel (y, x) comes from: source (y + shift_y, x' + shift_x) with
// x' = flip ? W - 1 - x : x. Sources outside the image give zero pixels (normalised like any
// other pixel in float32). A random crop of an image padded by p is a shift in [-p, p].
struct SampleTransform {
  std::int32_t shift_y = 0;
  std::int32_t shift_x = 0;
  bool flip = false;
};

class GatherTable {
 public:
  // `codebook` holds codebook_size codewords of geometry.codeword_bytes() bytes (codes.h order).
  GatherTable(const ImageGeometry& geometry, const std::uint8_t* codebook, std::uint32_t codebook_size,
              const OutputFormat& format);

  const ImageGeometry& geometry() const noexcept { return geometry_; }
  const OutputFormat& format() const noexcept { return format_; }
  std::uint32_t codebook_size() const noexcept { return codebook_size_; }
  std::uint32_t bits() const noexcept { return bits_; }
  std::size_t element_size() const noexcept { return format_.dtype == PixelType::UInt8 ? 1 : 4; }
  // Elements and bytes of one decoded sample.
  std::size_t sample_elements() const noexcept { return geometry_.pixel_bytes(); }
  std::size_t sample_bytes() const noexcept { return sample_elements() * element_size(); }

  // Layout of the prepared pieces, for the kernels. A piece is one row of one patch in one
  // plane: NHWC has one plane of P*C interleaved elements per piece, NCHW has C planes of P.
  std::uint32_t planes() const noexcept { return planes_; }
  std::uint32_t elements_per_pixel() const noexcept { return elements_per_pixel_; }
  std::size_t piece_bytes() const noexcept { return piece_bytes_; }
  std::size_t slot_bytes() const noexcept { return slot_bytes_; }
  std::uint32_t padded_size() const noexcept { return padded_size_; }
  // Piece (codeword k, plane, patch row py) of the plain (mirrored = false) or mirrored table.
  const std::uint8_t* piece(bool mirrored, std::uint32_t k, std::uint32_t plane, std::uint32_t py) const noexcept {
    return pieces_.data() +
           (((std::size_t{mirrored} * padded_size_ + k) * planes_ + plane) * geometry_.patch + py) * slot_bytes_;
  }
  // Bytes of one codeword's pieces (all planes and rows), the stride from codeword k to k + 1.
  std::size_t codeword_stride() const noexcept { return std::size_t{planes_} * geometry_.patch * slot_bytes_; }
  // The value of a padding pixel in `plane` (elements_per_pixel() elements).
  const std::uint8_t* pad_pixel(std::uint32_t plane) const noexcept {
    return pad_values_.data() + std::size_t{plane} * elements_per_pixel_ * element_size();
  }

  // Planar pieces, built for NCHW with 2x2 patches and 3 channels (the common NCHW case), uint8 or
  // float32: one slot per (codeword, patch row) holding that row's pixels plane by plane,
  // [c0 px0, c0 px1, c1 px0, c1 px1, c2 px0, c2 px1, 0, 0] (8 bytes for uint8, 32 for float32), so
  // a SIMD kernel lays the rows of all three planes from one load per patch (the per-plane pieces
  // above need three).
  bool has_planar() const noexcept { return !planar_.empty(); }
  std::size_t planar_slot_bytes() const noexcept { return 8 * element_size(); }
  const std::uint8_t* planar_piece(bool mirrored, std::uint32_t k, std::uint32_t py) const noexcept {
    return planar_.data() + ((std::size_t{mirrored} * padded_size_ + k) * geometry_.patch + py) * planar_slot_bytes();
  }
  std::size_t planar_stride() const noexcept { return std::size_t{geometry_.patch} * planar_slot_bytes(); }

 private:
  ImageGeometry geometry_;
  OutputFormat format_;
  std::uint32_t codebook_size_ = 0;
  std::uint32_t bits_ = 0;
  std::uint32_t padded_size_ = 0;
  std::uint32_t planes_ = 1;
  std::uint32_t elements_per_pixel_ = 1;
  std::size_t piece_bytes_ = 0;
  std::size_t slot_bytes_ = 0;
  AlignedBuffer<std::uint8_t> pieces_;
  AlignedBuffer<std::uint8_t> pad_values_;
  AlignedBuffer<std::uint8_t> planar_;
};

// Decodes one sample: `packed` is its block of geometry().num_patches() indices of bits() bits,
// `out` receives sample_bytes() bytes in the table's layout and type. Throws InvalidArgument
// naming the patch if an index is >= codebook_size() (out is then unspecified). Uses the
// active SIMD level; thread-safe (scratch space is per thread).
void gather_sample(const GatherTable& table, const std::uint8_t* packed, const SampleTransform& transform,
                   void* out);

}  // namespace lowbit::kuat

// Codebook training and patch encoding.
//
// Training: patches are quantized to `bits` bits per channel and de-duplicated into a weighted
// coreset (each unique quantized patch stands for the exact mean of the patches that fell on
// it, weighted by their count; bits = 8 keeps exact patches), then weighted k-means runs on
// it. Centroids are trained in full precision and rounded to uint8 once, at the end.
// Encoding assigns every patch its exact nearest codeword of the stored (uint8) codebook.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/nearest.h"
#include "lowbit/kuat/nearest_u8.h"

namespace lowbit::kuat {

// Cuts an HWC image into P x P patches on the grid of codes.h (edges replicated), appending
// grid_h*grid_w codewords of P*P*C bytes to `out`.
void extract_patches(const std::uint8_t* pixels, std::uint32_t height, std::uint32_t width, std::uint32_t channels,
                     std::uint32_t patch, std::vector<std::uint8_t>& out);

struct Coreset {
  std::vector<float> points;   // unique x dim, the mean of the patches in each quantization cell
  std::vector<float> weights;  // patch counts
  std::size_t size() const { return weights.size(); }
};

// Quantizes n patches of `dim` bytes to `bits` (1..8) bits per value and merges equal ones.
Coreset build_coreset(const std::uint8_t* patches, std::size_t n, std::uint32_t dim, std::uint32_t bits);

struct CodebookOptions {
  std::uint32_t codebook_size = 512;
  std::uint32_t bits = 4;                 // coreset precision
  std::uint32_t iterations = 20;
  std::uint64_t seed = 1234;
  bool kmeanspp = true;
  const std::atomic<bool>* interrupt = nullptr;  // checked every iteration: Interrupted when set
};

struct CodebookTraining {
  std::vector<std::uint8_t> codebook;  // codebook_size x dim, rounded
  std::size_t training_patches = 0;
  std::size_t coreset_points = 0;
  std::uint32_t iterations_run = 0;
  double seconds = 0;
};

CodebookTraining train_codebook(const std::uint8_t* patches, std::size_t n, std::uint32_t dim,
                                const CodebookOptions& options);

// Rounds full-precision centroids to the stored uint8 codebook (round half up, clamp 0..255).
std::vector<std::uint8_t> round_codebook(const std::vector<float>& centroids);

// Encodes images against a fixed uint8 codebook.
class PatchEncoder {
 public:
  PatchEncoder(const std::uint8_t* codebook, std::uint32_t codebook_size, std::uint32_t patch, std::uint32_t channels);

  std::uint32_t index_bits() const { return bits_; }

  struct Result {
    std::vector<std::uint8_t> packed;  // the sample's index block
    double squared_error = 0;          // over the native H x W x C pixels (padding excluded)
  };
  // Thread-safe (const); single-threaded per call.
  Result encode(const std::uint8_t* pixels, std::uint32_t height, std::uint32_t width) const;

  // Nearest codeword of each of n uint8 patches.
  void nearest(const std::uint8_t* patches, std::size_t n, std::uint32_t* indices) const;

 private:
  std::vector<std::uint8_t> codebook_;
  std::uint32_t codebook_size_, patch_, channels_, dim_, bits_;
  NearestCodewordU8 search_;
};

// PSNR in dB of a mean squared error on 8-bit values; lossless (mse == 0) counts as kLosslessPsnr.
inline constexpr double kLosslessPsnr = 100.0;
double psnr_from_mse(double mse);

}  // namespace lowbit::kuat

#include "lowbit/kuat/codebook.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/kmeans.h"

namespace lowbit::kuat {

void extract_patches(const std::uint8_t* pixels, std::uint32_t height, std::uint32_t width, std::uint32_t channels,
                     std::uint32_t patch, std::vector<std::uint8_t>& out) {
  const ImageGeometry g{height, width, channels, patch};
  validate(g);
  const std::uint32_t P = patch, C = channels;
  const std::size_t first = out.size();
  out.resize(first + g.num_patches() * g.codeword_bytes());
  std::uint8_t* dst = out.data() + first;
  for (std::uint32_t gy = 0; gy < g.grid_h(); ++gy) {
    for (std::uint32_t gx = 0; gx < g.grid_w(); ++gx) {
      for (std::uint32_t py = 0; py < P; ++py) {
        const std::uint32_t y = std::min(gy * P + py, height - 1);
        for (std::uint32_t px = 0; px < P; ++px) {
          const std::uint32_t x = std::min(gx * P + px, width - 1);
          std::memcpy(dst, pixels + (std::size_t{y} * width + x) * C, C);
          dst += C;
        }
      }
    }
  }
}

Coreset build_coreset(const std::uint8_t* patches, std::size_t n, std::uint32_t dim, std::uint32_t bits) {
  require(bits >= 1 && bits <= 8, "bits must be between 1 and 8, got " + std::to_string(bits));
  require(dim >= 1 && dim <= kMaxCodewordDim, "bad patch dimension");
  const unsigned shift = 8 - bits;
  std::vector<std::uint8_t> q(n * dim);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<std::uint8_t>(patches[i] >> shift);
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const int c = std::memcmp(&q[std::size_t{a} * dim], &q[std::size_t{b} * dim], dim);
    return c < 0 || (c == 0 && a < b);
  });
  Coreset cs;
  double sum[kMaxCodewordDim];
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    std::fill(sum, sum + dim, 0.0);
    while (j < n && std::memcmp(&q[std::size_t{order[i]} * dim], &q[std::size_t{order[j]} * dim], dim) == 0) {
      for (std::uint32_t d = 0; d < dim; ++d) sum[d] += patches[std::size_t{order[j]} * dim + d];
      ++j;
    }
    const double count = static_cast<double>(j - i);
    for (std::uint32_t d = 0; d < dim; ++d) cs.points.push_back(static_cast<float>(sum[d] / count));
    cs.weights.push_back(static_cast<float>(count));
    i = j;
  }
  return cs;
}

std::vector<std::uint8_t> round_codebook(const std::vector<float>& centroids) {
  std::vector<std::uint8_t> out(centroids.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::uint8_t>(std::clamp(std::floor(centroids[i] + 0.5f), 0.0f, 255.0f));
  }
  return out;
}

CodebookTraining train_codebook(const std::uint8_t* patches, std::size_t n, std::uint32_t dim,
                                const CodebookOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  index_bits_for(options.codebook_size);  // validates K
  require(n >= 1, "codebook training needs at least one patch");
  CodebookTraining out;
  out.training_patches = n;
  const Coreset cs = build_coreset(patches, n, dim, options.bits);
  out.coreset_points = cs.size();
  KMeansOptions km;
  km.k = options.codebook_size;
  km.iterations = options.iterations;
  km.seed = options.seed;
  km.kmeanspp = options.kmeanspp;
  km.interrupt = options.interrupt;
  const KMeansResult r = kmeans(cs.points.data(), cs.weights.data(), cs.size(), dim, km);
  out.iterations_run = r.iterations_run;
  out.codebook = round_codebook(r.centroids);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

PatchEncoder::PatchEncoder(const std::uint8_t* codebook, std::uint32_t codebook_size, std::uint32_t patch,
                           std::uint32_t channels)
    : codebook_(codebook, codebook + std::size_t{codebook_size} * patch * patch * channels),
      codebook_size_(codebook_size),
      patch_(patch),
      channels_(channels),
      dim_(patch * patch * channels),
      bits_(index_bits_for(codebook_size)),
      search_(codebook, codebook_size, patch * patch * channels) {
  validate(ImageGeometry{1, 1, channels, patch});
}

void PatchEncoder::nearest(const std::uint8_t* patches, std::size_t n, std::uint32_t* indices) const {
  search_.search(patches, n, indices);
}

PatchEncoder::Result PatchEncoder::encode(const std::uint8_t* pixels, std::uint32_t height, std::uint32_t width) const {
  const ImageGeometry g{height, width, channels_, patch_};
  std::vector<std::uint8_t> patches;
  extract_patches(pixels, height, width, channels_, patch_, patches);
  std::vector<std::uint32_t> idx(g.num_patches());
  nearest(patches.data(), idx.size(), idx.data());
  Result r;
  r.packed.resize(packed_bytes(idx.size(), bits_));
  pack_indices(idx.data(), idx.size(), bits_, r.packed.data());
  // Error over native pixels only: compare each in-image pixel with its codeword byte.
  std::uint64_t sse = 0;
  const std::uint32_t P = patch_, C = channels_, gw = g.grid_w();
  for (std::uint32_t y = 0; y < height; ++y) {
    const std::uint32_t gy = y / P, py = y % P;
    for (std::uint32_t x = 0; x < width; ++x) {
      const std::uint8_t* word = &codebook_[std::size_t{idx[std::size_t{gy} * gw + x / P]} * dim_ + (py * P + x % P) * C];
      const std::uint8_t* px = pixels + (std::size_t{y} * width + x) * C;
      for (std::uint32_t c = 0; c < C; ++c) {
        const int d = int{px[c]} - int{word[c]};
        sse += static_cast<std::uint64_t>(d * d);
      }
    }
  }
  r.squared_error = static_cast<double>(sse);
  return r;
}

double psnr_from_mse(double mse) {
  if (mse <= 0) return kLosslessPsnr;
  return std::min(kLosslessPsnr, 10.0 * std::log10(255.0 * 255.0 / mse));
}

}  // namespace lowbit::kuat

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/kuat/codebook.h"
#include "lowbit/kuat/kmeans.h"

namespace lowbit::kuat {
namespace {

TEST(KuatPatches, ExtractReplicatesEdges) {
  // 3x3 grayscale, patch 2: grid 2x2; right/bottom patches replicate the last column/row.
  const std::uint8_t img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<std::uint8_t> p;
  extract_patches(img, 3, 3, 1, 2, p);
  EXPECT_EQ(p, (std::vector<std::uint8_t>{1, 2, 4, 5, 3, 3, 6, 6, 7, 8, 7, 8, 9, 9, 9, 9}));
}

TEST(KuatCoreset, MergesCellsIntoWeightedMeans) {
  const std::uint8_t patches[] = {16, 17, 31, 200, 16, 17};  // dim 1, n 6
  const Coreset exact = build_coreset(patches, 6, 1, 8);
  EXPECT_EQ(exact.size(), 4u);  // 16, 17, 31, 200
  EXPECT_EQ(std::accumulate(exact.weights.begin(), exact.weights.end(), 0.0f), 6.0f);
  const Coreset coarse = build_coreset(patches, 6, 1, 4);  // cells of 16: {16,17,31,16,17} and {200}
  ASSERT_EQ(coarse.size(), 2u);
  EXPECT_FLOAT_EQ(coarse.points[0], (16 + 17 + 31 + 16 + 17) / 5.0f);
  EXPECT_EQ(coarse.weights[0], 5.0f);
  EXPECT_FLOAT_EQ(coarse.points[1], 200.0f);
  EXPECT_THROW(build_coreset(patches, 6, 1, 9), InvalidArgument);
  EXPECT_THROW(build_coreset(patches, 6, 1, 0), InvalidArgument);
}

TEST(KuatKMeans, RecoversSeparatedClusters) {
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  const float centers[4][2] = {{20, 20}, {200, 20}, {20, 200}, {200, 200}};
  std::vector<float> pts;
  for (int i = 0; i < 4000; ++i) {
    pts.push_back(centers[i % 4][0] + noise(rng));
    pts.push_back(centers[i % 4][1] + noise(rng));
  }
  KMeansOptions o;
  o.k = 4;
  const KMeansResult r = kmeans(pts.data(), nullptr, 4000, 2, o);
  for (const auto& c : centers) {
    float best = 1e9f;
    for (int k = 0; k < 4; ++k) {
      const float dx = r.centroids[k * 2] - c[0], dy = r.centroids[k * 2 + 1] - c[1];
      best = std::min(best, dx * dx + dy * dy);
    }
    EXPECT_LT(best, 1.0f);
  }
  // Same seed, same result.
  EXPECT_EQ(kmeans(pts.data(), nullptr, 4000, 2, o).centroids, r.centroids);
}

TEST(KuatKMeans, WeightsActLikeRepeatedPoints) {
  const float pts[] = {0, 10, 100};
  const float w[] = {3, 1, 1};
  KMeansOptions o;
  o.k = 2;
  const KMeansResult r = kmeans(pts, w, 3, 1, o);
  std::vector<float> c = r.centroids;
  std::sort(c.begin(), c.end());
  EXPECT_FLOAT_EQ(c[0], 2.5f);  // (0*3 + 10) / 4
  EXPECT_FLOAT_EQ(c[1], 100.0f);
}

TEST(KuatKMeans, FewerPointsThanCentroidsKeepsEveryPoint) {
  const float pts[] = {1, 2, 3};
  KMeansOptions o;
  o.k = 8;
  const KMeansResult r = kmeans(pts, nullptr, 3, 1, o);
  ASSERT_EQ(r.centroids.size(), 8u);
  EXPECT_EQ(kmeans_objective(pts, nullptr, 3, 1, r.centroids.data(), 8), 0.0);
}

TEST(KuatEncoder, EncodeThenDecodeIsTheNearestCodewordAndErrorIsExact) {
  std::mt19937 rng(9);
  for (std::uint32_t C : {1u, 3u}) {
    for (std::uint32_t P : {2u, 4u}) {
      const std::uint32_t H = 7, W = 9, K = 37, dim = P * P * C;
      std::vector<std::uint8_t> img(H * W * C), cb(K * dim);
      for (auto& v : img) v = static_cast<std::uint8_t>(rng());
      for (auto& v : cb) v = static_cast<std::uint8_t>(rng());
      PatchEncoder enc(cb.data(), K, P, C);
      const auto r = enc.encode(img.data(), H, W);
      const ImageGeometry g{H, W, C, P};
      std::vector<std::uint8_t> dec(g.pixel_bytes());
      decode_image_hwc_ref(g, cb.data(), K, r.packed.data(), dec.data());
      double sse = 0;
      for (std::size_t i = 0; i < dec.size(); ++i) sse += (double(img[i]) - dec[i]) * (double(img[i]) - dec[i]);
      EXPECT_EQ(r.squared_error, sse);
      // Each interior patch's codeword is the brute-force nearest one.
      std::vector<std::uint8_t> patches;
      extract_patches(img.data(), H, W, C, P, patches);
      std::vector<std::uint32_t> idx(g.num_patches());
      unpack_indices_ref(r.packed.data(), idx.size(), index_bits_for(K), idx.data());
      for (std::size_t p = 0; p < idx.size(); ++p) {
        long best = -1;
        for (std::uint32_t k = 0; k < K; ++k) {
          long d = 0;
          for (std::uint32_t j = 0; j < dim; ++j) {
            const long t = long{patches[p * dim + j]} - cb[k * dim + j];
            d += t * t;
          }
          if (best < 0 || d < best) best = d;
        }
        long got = 0;
        for (std::uint32_t j = 0; j < dim; ++j) {
          const long t = long{patches[p * dim + j]} - cb[idx[p] * dim + j];
          got += t * t;
        }
        ASSERT_EQ(got, best);
      }
    }
  }
}

TEST(KuatCodebook, TrainingOnFewDistinctPatchesIsLossless) {
  // 4 distinct patches, K = 8: every patch becomes a codeword exactly.
  std::vector<std::uint8_t> patches;
  for (int i = 0; i < 100; ++i)
    for (int j = 0; j < 4; ++j) patches.push_back(static_cast<std::uint8_t>((i % 4) * 60 + j));
  CodebookOptions o;
  o.codebook_size = 8;
  o.bits = 8;
  const auto t = train_codebook(patches.data(), 100, 4, o);
  EXPECT_EQ(t.coreset_points, 4u);
  PatchEncoder enc(t.codebook.data(), 8, 2, 1);
  const std::uint8_t img[4] = {60, 61, 62, 63};
  EXPECT_EQ(enc.encode(img, 2, 2).squared_error, 0.0);
  EXPECT_EQ(psnr_from_mse(0.0), kLosslessPsnr);
  EXPECT_NEAR(psnr_from_mse(65025.0), 0.0, 1e-12);
}

}  // namespace
}  // namespace lowbit::kuat

// Weighted k-means (k-means++ seeding, Lloyd iterations), multi-threaded, deterministic for a
// given seed regardless of the thread count.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::kuat {

struct KMeansOptions {
  std::uint32_t k = 512;
  std::uint32_t iterations = 20;   // Lloyd iterations (stops early when no assignment changes)
  std::uint64_t seed = 1234;
  bool kmeanspp = true;            // false: k distinct points drawn at random, weighted (faiss style)
  // k-means++ costs n*k*dim operations. Above this budget it seeds from a weighted random
  // subsample that fits (when that still holds >= 2k points), else from k random points.
  double kmeanspp_budget = 4e9;
  const std::atomic<bool>* interrupt = nullptr;  // checked every iteration: Interrupted when set
};

struct KMeansResult {
  std::vector<float> centroids;     // k x dim
  double objective = 0;             // weighted sum of squared distances after the last iteration
  std::uint32_t iterations_run = 0;
};

// `weights` may be null (all 1). n >= 1. When n <= k every point becomes a centroid and the
// remaining centroids repeat the first point (never chosen: ties go to the lowest index).
KMeansResult kmeans(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                    const KMeansOptions& options);

// Weighted sum of squared distances of the points to their nearest centroid.
double kmeans_objective(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                        const float* centroids, std::uint32_t k);

}  // namespace lowbit::kuat

#include "lowbit/kuat/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "lowbit/core/error.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/kuat/nearest.h"

namespace lowbit::kuat {
namespace {

constexpr std::size_t kGrain = 2048;

float sqdist(const float* a, const float* b, std::uint32_t dim) {
  float s = 0;
  for (std::uint32_t d = 0; d < dim; ++d) {
    const float t = a[d] - b[d];
    s += t * t;
  }
  return s;
}

// Index drawn with probability proportional to w[i] (w >= 0, total > 0).
std::size_t draw(const std::vector<double>& cumulative, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, cumulative.back());
  const double r = u(rng);
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), r);
  return std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()), cumulative.size() - 1);
}

std::vector<float> seed_kmeanspp(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                                 std::uint32_t k, std::mt19937_64& rng) {
  std::vector<float> centroids(std::size_t{k} * dim);
  std::vector<float> mind(n, INFINITY);
  std::vector<double> cumulative(n);
  auto w = [&](std::size_t i) { return weights ? static_cast<double>(weights[i]) : 1.0; };
  double acc = 0;
  for (std::size_t i = 0; i < n; ++i) cumulative[i] = (acc += w(i));
  std::size_t pick = draw(cumulative, rng);
  for (std::uint32_t c = 0; c < k; ++c) {
    std::memcpy(&centroids[std::size_t{c} * dim], points + pick * dim, dim * sizeof(float));
    if (c + 1 == k) break;
    const float* cc = &centroids[std::size_t{c} * dim];
    parallel_for(0, n, kGrain, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) mind[i] = std::min(mind[i], sqdist(points + i * dim, cc, dim));
    });
    acc = 0;
    for (std::size_t i = 0; i < n; ++i) cumulative[i] = (acc += w(i) * mind[i]);
    if (acc <= 0) {  // fewer distinct points than k: repeat the last pick (harmless duplicates)
      for (std::uint32_t r = c + 1; r < k; ++r) std::memcpy(&centroids[std::size_t{r} * dim], cc, dim * sizeof(float));
      break;
    }
    pick = draw(cumulative, rng);
  }
  return centroids;
}

std::vector<float> seed_random(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                               std::uint32_t k, std::mt19937_64& rng) {
  // Weighted sampling without replacement (Efraimidis-Spirakis keys).
  std::vector<std::pair<double, std::size_t>> keys(n);
  std::uniform_real_distribution<double> u(1e-300, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double wi = weights ? std::max(static_cast<double>(weights[i]), 1e-300) : 1.0;
    keys[i] = {std::log(u(rng)) / wi, i};
  }
  std::partial_sort(keys.begin(), keys.begin() + k, keys.end(), std::greater<>());
  std::vector<float> centroids(std::size_t{k} * dim);
  for (std::uint32_t c = 0; c < k; ++c) std::memcpy(&centroids[std::size_t{c} * dim], points + keys[c].second * dim, dim * sizeof(float));
  return centroids;
}

void assign(const float* points, std::size_t n, const NearestCodeword& search, std::uint32_t* labels, float* scores) {
  parallel_for(0, n, kGrain, [&](std::size_t b, std::size_t e) { search.search(points + b * search.dim(), e - b, labels + b, scores + b); });
}

}  // namespace

double kmeans_objective(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                        const float* centroids, std::uint32_t k) {
  NearestCodeword search(centroids, k, dim);
  std::vector<std::uint32_t> labels(n);
  std::vector<float> scores(n);
  assign(points, n, search, labels.data(), scores.data());
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = std::max(0.0, static_cast<double>(sqdist(points + i * dim, centroids + std::size_t{labels[i]} * dim, dim)));
    total += (weights ? weights[i] : 1.0f) * d;
  }
  return total;
}

KMeansResult kmeans(const float* points, const float* weights, std::size_t n, std::uint32_t dim,
                    const KMeansOptions& options) {
  const std::uint32_t k = options.k;
  require(k >= 1, "k-means: k must be at least 1");
  require(n >= 1, "k-means: no training points");
  require(dim >= 1 && dim <= kMaxCodewordDim, "k-means: bad dimension");
  std::mt19937_64 rng(options.seed);
  KMeansResult result;

  if (n <= k) {
    result.centroids.resize(std::size_t{k} * dim);
    for (std::uint32_t c = 0; c < k; ++c) {
      const std::size_t src = c < n ? c : 0;
      std::memcpy(&result.centroids[std::size_t{c} * dim], points + src * dim, dim * sizeof(float));
    }
    result.objective = 0;
    return result;
  }

  const double per_pass = static_cast<double>(n) * dim * k;
  const std::size_t affordable = static_cast<std::size_t>(options.kmeanspp_budget / (double(dim) * k));
  if (options.kmeanspp && per_pass <= options.kmeanspp_budget) {
    result.centroids = seed_kmeanspp(points, weights, n, dim, k, rng);
  } else if (options.kmeanspp && affordable >= std::size_t{2} * k) {
    // Seed from a weighted subsample that fits the budget.
    std::vector<float> sub = seed_random(points, weights, n, dim, static_cast<std::uint32_t>(affordable), rng);
    result.centroids = seed_kmeanspp(sub.data(), nullptr, affordable, dim, k, rng);
  } else {
    // Very large k: k-means++ would cost more than the budget even on 2k points; seed with k
    // distinct points drawn by weight, as faiss does.
    result.centroids = seed_random(points, weights, n, dim, k, rng);
  }

  std::vector<std::uint32_t> labels(n), previous(n, UINT32_MAX);
  std::vector<float> scores(n);
  std::vector<std::size_t> order(n), start(std::size_t{k} + 1);
  for (std::uint32_t it = 0; it < options.iterations; ++it) {
    check_interrupt(options.interrupt, "k-means");
    NearestCodeword search(result.centroids.data(), k, dim);
    assign(points, n, search, labels.data(), scores.data());
    result.iterations_run = it + 1;
    if (labels == previous) break;
    previous = labels;

    // Counting sort by cluster, then each cluster's mean summed in point order: deterministic
    // for any thread count.
    std::fill(start.begin(), start.end(), 0);
    for (std::size_t i = 0; i < n; ++i) ++start[labels[i] + 1];
    std::partial_sum(start.begin(), start.end(), start.begin());
    {
      std::vector<std::size_t> fill(start.begin(), start.end() - 1);
      for (std::size_t i = 0; i < n; ++i) order[fill[labels[i]]++] = i;
    }
    std::vector<double> mass(k, 0.0);
    parallel_for(0, k, 64, [&](std::size_t b, std::size_t e) {
      double sum[kMaxCodewordDim];
      for (std::size_t c = b; c < e; ++c) {
        if (start[c] == start[c + 1]) continue;
        std::fill(sum, sum + dim, 0.0);
        double m = 0;
        for (std::size_t j = start[c]; j < start[c + 1]; ++j) {
          const std::size_t i = order[j];
          const double wi = weights ? weights[i] : 1.0;
          for (std::uint32_t d = 0; d < dim; ++d) sum[d] += wi * points[i * dim + d];
          m += wi;
        }
        mass[c] = m;
        if (m > 0)
          for (std::uint32_t d = 0; d < dim; ++d) result.centroids[c * dim + d] = static_cast<float>(sum[d] / m);
      }
    });
    // Empty clusters: split the heaviest cluster in two (faiss), a tiny symmetric nudge apart.
    for (std::uint32_t c = 0; c < k; ++c) {
      if (mass[c] > 0) continue;
      const std::size_t big = static_cast<std::size_t>(std::max_element(mass.begin(), mass.end()) - mass.begin());
      if (mass[big] <= 0) break;
      for (std::uint32_t d = 0; d < dim; ++d) {
        const float v = result.centroids[big * dim + d];
        const float eps = (d % 2 == 0 ? 1.0f : -1.0f) * (1.0f / 1024.0f) * (1.0f + std::fabs(v) / 256.0f);
        result.centroids[std::size_t{c} * dim + d] = v + eps;
        result.centroids[big * dim + d] = v - eps;
      }
      mass[c] = mass[big] / 2;
      mass[big] /= 2;
    }
  }
  result.objective = kmeans_objective(points, weights, n, dim, result.centroids.data(), k);
  return result;
}

}  // namespace lowbit::kuat

// The batch loader over in-memory archives: order, ranks, resume, threads, memory, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/kuat/codes.h"
#include "lowbit/kuat/gather.h"
#include "lowbit/kuat/loader.h"

namespace lowbit::kuat {
namespace {

struct MemoryArchive {
  ImageGeometry g;
  std::uint32_t K;
  std::vector<std::uint8_t> codebook;
  std::vector<std::uint8_t> packed;
  std::vector<std::int32_t> labels;
  std::size_t stride;
  std::uint64_t hash;

  MemoryArchive(std::uint64_t n, ImageGeometry geometry, std::uint32_t k, std::uint32_t seed, std::uint32_t codebook_seed = 1)
      : g(geometry), K(k), codebook(std::size_t{k} * geometry.codeword_bytes()), labels(n) {
    std::mt19937 cb_rng(codebook_seed);
    for (auto& b : codebook) b = static_cast<std::uint8_t>(cb_rng());
    hash = codebook_seed;
    const std::uint32_t bits = index_bits_for(K);
    stride = packed_bytes(g.num_patches(), bits);
    packed.resize(n * stride);
    std::mt19937 rng(seed);
    std::vector<std::uint32_t> idx(g.num_patches());
    for (std::uint64_t i = 0; i < n; ++i) {
      for (auto& v : idx) v = rng() % K;
      pack_indices(idx.data(), idx.size(), bits, packed.data() + i * stride);
      labels[i] = static_cast<std::int32_t>(seed * 1000 + i);
    }
  }

  ArchiveView view() const {
    ArchiveView v;
    v.geometry = g;
    v.codebook = codebook.data();
    v.codebook_size = K;
    v.codebook_hash = hash;
    v.indices = packed.data();
    v.index_stride = stride;
    v.labels = labels.data();
    v.num_samples = labels.size();
    return v;
  }
};

const ImageGeometry kGeom{9, 7, 3, 2};

LoaderOptions options(std::size_t batch, std::size_t threads = 2) {
  LoaderOptions o;
  o.batch_size = batch;
  o.num_threads = threads;
  return o;
}

struct EpochRecord {
  std::vector<std::uint64_t> samples;
  std::vector<std::int32_t> labels;
  std::vector<std::uint8_t> images;
  std::vector<std::size_t> batch_sizes;
};

EpochRecord read_all(const Loader& loader, std::uint64_t epoch, std::uint64_t first = 0, std::uint64_t step = 1) {
  EpochRecord r;
  auto reader = loader.read_epoch(epoch, first, step);
  std::size_t sample_bytes = loader.geometry().pixel_bytes() * (loader.options().dtype == PixelType::UInt8 ? 1 : 4);
  while (auto batch = reader->next()) {
    r.batch_sizes.push_back(batch->size());
    r.samples.insert(r.samples.end(), batch->samples(), batch->samples() + batch->size());
    r.labels.insert(r.labels.end(), batch->labels(), batch->labels() + batch->size());
    const auto* p = static_cast<const std::uint8_t*>(batch->images());
    r.images.insert(r.images.end(), p, p + batch->size() * sample_bytes);
  }
  return r;
}

TEST(KuatLoader, EveryEpochHoldsEverySampleOnceWithItsImageAndLabel) {
  const MemoryArchive a(37, kGeom, 300, 3);
  for (bool drop_last : {false, true}) {
    LoaderOptions o = options(8);
    o.drop_last = drop_last;
    Loader loader({a.view()}, o);
    EXPECT_EQ(loader.batches_per_epoch(), drop_last ? 4u : 5u);
    const EpochRecord r = read_all(loader, 0);
    ASSERT_EQ(r.samples.size(), drop_last ? 32u : 37u);
    std::set<std::uint64_t> unique(r.samples.begin(), r.samples.end());
    EXPECT_EQ(unique.size(), r.samples.size());
    if (!drop_last) EXPECT_EQ(r.batch_sizes.back(), 5u);
    // Shuffled: not the identity order.
    std::vector<std::uint64_t> identity(r.samples.size());
    for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = i;
    EXPECT_NE(r.samples, identity);
    std::vector<std::uint8_t> want(kGeom.pixel_bytes());
    for (std::size_t i = 0; i < r.samples.size(); ++i) {
      const std::uint64_t s = r.samples[i];
      EXPECT_EQ(r.labels[i], a.labels[s]);
      decode_image_hwc_ref(kGeom, a.codebook.data(), a.K, a.packed.data() + s * a.stride, want.data());
      ASSERT_EQ(0, std::memcmp(want.data(), r.images.data() + i * want.size(), want.size())) << "sample " << s;
    }
  }
}

TEST(KuatLoader, OrderIsAFunctionOfSeedAndEpochOnly) {
  const MemoryArchive a(101, kGeom, 64, 4);
  LoaderOptions o1 = options(7, 1), o3 = options(7, 3);
  o3.prefetch = 5;
  Loader one({a.view()}, o1), three({a.view()}, o3);
  const EpochRecord e0 = read_all(one, 0), e0b = read_all(three, 0), e1 = read_all(one, 1);
  EXPECT_EQ(e0.samples, e0b.samples);
  EXPECT_EQ(e0.images, e0b.images);
  EXPECT_NE(e0.samples, e1.samples);
  LoaderOptions other_seed = options(7);
  other_seed.seed = 43;
  EXPECT_NE(read_all(Loader({a.view()}, other_seed), 0).samples, e0.samples);
  LoaderOptions ordered = options(7);
  ordered.shuffle = false;
  const EpochRecord plain = read_all(Loader({a.view()}, ordered), 3);
  for (std::size_t i = 0; i < plain.samples.size(); ++i) ASSERT_EQ(plain.samples[i], i);
}

TEST(KuatLoader, ShuffleLooksUniform) {
  // Where sample 0 lands over many epochs: roughly uniform over positions (chi-square-ish bound).
  const std::uint64_t n = 16;
  const MemoryArchive a(n, ImageGeometry{2, 2, 1, 2}, 2, 5);
  Loader loader({a.view()}, options(4));
  std::vector<int> hits(n, 0);
  const int epochs = 3200;
  for (int e = 0; e < epochs; ++e) {
    for (std::uint64_t p = 0; p < n; ++p) {
      if (loader.sample_at(e, p) == 0) ++hits[p];
    }
  }
  for (int h : hits) {
    EXPECT_GT(h, epochs / int(n) / 2);
    EXPECT_LT(h, epochs / int(n) * 2);
  }
}

TEST(KuatLoader, RanksSplitOneGlobalPermutation) {
  const MemoryArchive a(50, kGeom, 16, 6);
  Loader global({a.view()}, options(4));
  for (std::uint32_t world : {2u, 3u, 4u, 7u}) {
    for (bool drop_last : {false, true}) {
      std::vector<std::uint64_t> all;
      std::set<std::uint64_t> batch_counts;
      for (std::uint32_t r = 0; r < world; ++r) {
        LoaderOptions o = options(4);
        o.rank = r;
        o.world_size = world;
        o.drop_last = drop_last;
        Loader loader({a.view()}, o);
        const EpochRecord rec = read_all(loader, 2);
        batch_counts.insert(rec.batch_sizes.size());
        for (std::size_t q = 0; q < rec.samples.size(); ++q) {
          // Position q of rank r is position q * world + r of the one global order (mod N).
          ASSERT_EQ(rec.samples[q], global.sample_at(2, (q * world + r) % 50));
        }
        all.insert(all.end(), rec.samples.begin(), rec.samples.end());
      }
      EXPECT_EQ(batch_counts.size(), 1u) << "ranks disagree on the batch count, world " << world;
      std::set<std::uint64_t> unique(all.begin(), all.end());
      if (drop_last) {
        EXPECT_EQ(unique.size(), all.size());
        EXPECT_EQ(all.size(), (50 / world / 4) * 4 * world);
      } else {
        EXPECT_EQ(unique.size(), 50u);
        EXPECT_EQ(all.size(), ((50 + world - 1) / world) * world);
      }
    }
  }
}

TEST(KuatLoader, ResumeAndStridedReadersMatchTheFullEpoch) {
  const MemoryArchive a(45, kGeom, 512, 7);
  Loader loader({a.view()}, options(6));
  const EpochRecord full = read_all(loader, 4);
  const EpochRecord tail = read_all(loader, 4, 3);
  EXPECT_EQ(tail.samples, std::vector<std::uint64_t>(full.samples.begin() + 18, full.samples.end()));
  EXPECT_EQ(tail.images, std::vector<std::uint8_t>(full.images.begin() + 18 * kGeom.pixel_bytes(), full.images.end()));
  const EpochRecord odd = read_all(loader, 4, 1, 2);
  ASSERT_EQ(odd.batch_sizes.size(), 4u);  // batches 1, 3, 5, 7 of 8
  EXPECT_EQ(std::vector<std::uint64_t>(odd.samples.begin(), odd.samples.begin() + 6),
            std::vector<std::uint64_t>(full.samples.begin() + 6, full.samples.begin() + 12));
  EXPECT_TRUE(read_all(loader, 4, 100).samples.empty());
}

TEST(KuatLoader, SeveralArchivesReadAsOne) {
  const MemoryArchive a(10, kGeom, 64, 8), b(13, kGeom, 64, 9);
  Loader loader({a.view(), b.view()}, options(5));
  EXPECT_EQ(loader.num_samples(), 23u);
  const EpochRecord r = read_all(loader, 0);
  ASSERT_EQ(r.samples.size(), 23u);
  for (std::size_t i = 0; i < r.samples.size(); ++i) {
    const std::uint64_t s = r.samples[i];
    EXPECT_EQ(r.labels[i], s < 10 ? a.labels[s] : b.labels[s - 10]);
  }
}

TEST(KuatLoader, AugmentationIsPerSampleAndReproducible) {
  const MemoryArchive a(20, ImageGeometry{12, 10, 3, 2}, 128, 10);
  LoaderOptions o = options(4);
  o.crop_padding = 3;
  o.random_flip = true;
  o.layout = Layout::NCHW;
  o.dtype = PixelType::Float32;
  o.mean = {0.5f, 0.4f, 0.3f};
  o.std = {0.2f, 0.25f, 0.3f};
  Loader loader({a.view()}, o);
  const EpochRecord r = read_all(loader, 1);
  OutputFormat f;
  f.layout = o.layout;
  f.dtype = o.dtype;
  f.mean = o.mean;
  f.std = o.std;
  f.mirrored = true;
  const GatherTable table(a.g, a.codebook.data(), a.K, f);
  std::vector<std::uint8_t> want(table.sample_bytes());
  std::set<std::tuple<int, int, bool>> seen;
  for (std::size_t i = 0; i < r.samples.size(); ++i) {
    const SampleTransform t = loader.transform_for(1, r.samples[i]);
    EXPECT_LE(std::abs(t.shift_x), 3);
    EXPECT_LE(std::abs(t.shift_y), 3);
    seen.insert({t.shift_y, t.shift_x, t.flip});
    gather_sample(table, a.packed.data() + r.samples[i] * a.stride, t, want.data());
    ASSERT_EQ(0, std::memcmp(want.data(), r.images.data() + i * want.size(), want.size()));
  }
  EXPECT_GT(seen.size(), 10u);  // 20 samples, 98 possible transforms: they differ
  const SampleTransform t0 = loader.transform_for(1, 5), t1 = loader.transform_for(2, 5);
  EXPECT_FALSE(t0.shift_x == t1.shift_x && t0.shift_y == t1.shift_y && t0.flip == t1.flip &&
               loader.transform_for(3, 5).shift_x == t0.shift_x && loader.transform_for(4, 5).shift_y == t0.shift_y);
}

TEST(KuatLoader, MemoryIsBoundedAcrossEpochsAndHeldBatchesStayIntact) {
  const MemoryArchive a(64, kGeom, 32, 11);
  LoaderOptions o = options(4, 2);
  o.prefetch = 3;
  Loader loader({a.view()}, o);
  // How many buffers the first epochs need depends on thread scheduling, but never more than the
  // pool's bound: over many epochs, total allocations stay within prefetch + 2.
  for (int e = 0; e < 20; ++e) read_all(loader, e);
  EXPECT_LE(loader.buffer_allocations(), o.prefetch + 2) << "buffers are re-allocated epoch after epoch";
  EXPECT_LE(loader.buffers_alive(), o.prefetch + 2);
  // Holding every batch of an epoch must not stall the workers, and held batches keep their data.
  std::vector<std::shared_ptr<Batch>> held;
  std::vector<std::vector<std::uint8_t>> copies;
  auto reader = loader.read_epoch(0);
  while (auto b = reader->next()) {
    const auto* p = static_cast<const std::uint8_t*>(b->images());
    copies.emplace_back(p, p + b->size() * kGeom.pixel_bytes());
    held.push_back(std::move(b));
  }
  for (int e = 1; e < 3; ++e) read_all(loader, e);  // churn the pool while batches are held
  for (std::size_t i = 0; i < held.size(); ++i) {
    const auto* p = static_cast<const std::uint8_t*>(held[i]->images());
    ASSERT_EQ(0, std::memcmp(p, copies[i].data(), copies[i].size())) << "held batch " << i << " was overwritten";
  }
  EXPECT_GE(loader.buffers_alive(), held.size());
  held.clear();
  reader.reset();
  EXPECT_LE(loader.buffers_alive(), o.prefetch + 2);
}

TEST(KuatLoader, AbandonedReaderStopsPromptly) {
  const MemoryArchive a(400, ImageGeometry{32, 32, 3, 2}, 512, 12);
  Loader loader({a.view()}, options(8, 3));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    auto reader = loader.read_epoch(i);
    reader->next();
  }  // each reader is destroyed with workers mid-epoch
  { auto never_read = loader.read_epoch(99); }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(KuatLoader, CorruptSampleIsReportedByIndexAndEndsTheEpoch) {
  MemoryArchive a(30, ImageGeometry{4, 4, 1, 2}, 5, 13);  // 3 bits per index: 5..7 are invalid
  std::vector<std::uint32_t> idx = {0, 1, 7, 2};
  pack_indices(idx.data(), 4, 3, a.packed.data() + 17 * a.stride);
  LoaderOptions o = options(4);
  o.shuffle = false;
  Loader loader({a.view()}, o);
  auto reader = loader.read_epoch(0);
  for (int b = 0; b < 4; ++b) ASSERT_NE(reader->next(), nullptr);  // samples 0..15 are fine
  try {
    reader->next();
    FAIL() << "corrupt sample 17 went unnoticed";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("sample 17 is corrupt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index 7 >= codebook size 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reader->next(), IoError);  // the epoch stays failed
}

TEST(KuatLoader, BadOptionsAndMixedArchivesAreRejected) {
  const MemoryArchive a(10, kGeom, 64, 14), other_codebook(10, kGeom, 64, 15, 2),
      other_shape(10, ImageGeometry{8, 8, 3, 2}, 64, 16);
  auto message = [&](std::vector<ArchiveView> views, LoaderOptions o) {
    try {
      Loader loader(std::move(views), o);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({a.view()}, options(0)).find("batch_size"), std::string::npos);
  LoaderOptions bad_rank = options(4);
  bad_rank.rank = 2;
  bad_rank.world_size = 2;
  EXPECT_NE(message({a.view()}, bad_rank).find("rank must be < world_size"), std::string::npos);
  EXPECT_NE(message({a.view(), other_codebook.view()}, options(4)).find("different codebook"), std::string::npos);
  EXPECT_NE(message({a.view(), other_shape.view()}, options(4)).find("archive 1 holds 8x8x3"), std::string::npos);
  EXPECT_NE(message({}, options(4)).find("at least one archive"), std::string::npos);
  LoaderOptions mean_u8 = options(4);
  mean_u8.mean = {0.5f};
  EXPECT_NE(message({a.view()}, mean_u8).find("float32"), std::string::npos);
  Loader loader({a.view()}, options(4));
  EXPECT_THROW(loader.sample_at(0, 10), InvalidArgument);
}

}  // namespace
}  // namespace lowbit::kuat

// CUDA Kuat decode against the CPU reference (bit-exact for uint8). Skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lowbit/cuda/device.h"
#include "lowbit/cuda/kuat_decode.h"
#include "lowbit/kuat/codes.h"

namespace lowbit {
namespace {

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(std::size_t n) { EXPECT_EQ(cudaMalloc(&ptr, std::max<std::size_t>(n, 1) * sizeof(T)), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(ptr); }
};

struct Case {
  std::uint32_t h, w, c, patch, k, batch;
};

class KuatDecodeCuda : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (cuda::visible_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_P(KuatDecodeCuda, MatchesCpuReferenceBitExactly) {
  const Case tc = GetParam();
  kuat::ImageGeometry g{tc.h, tc.w, tc.c, tc.patch};
  const std::uint32_t bits = kuat::index_bits_for(tc.k);
  const std::size_t stride = kuat::packed_bytes(g.num_patches(), bits);
  std::mt19937 rng(tc.h * 131 + tc.k);
  std::vector<std::uint8_t> codebook(std::size_t{tc.k} * g.codeword_bytes());
  for (auto& v : codebook) v = static_cast<std::uint8_t>(rng());
  std::vector<std::uint8_t> packed(stride * tc.batch);
  std::vector<std::uint32_t> idx(g.num_patches());
  for (std::uint32_t b = 0; b < tc.batch; ++b) {
    for (auto& v : idx) v = rng() % tc.k;
    kuat::pack_indices(idx.data(), idx.size(), bits, packed.data() + b * stride);
  }
  std::vector<std::uint8_t> expected(g.pixel_bytes() * tc.batch);
  for (std::uint32_t b = 0; b < tc.batch; ++b)
    kuat::decode_image_hwc_ref(g, codebook.data(), tc.k, packed.data() + b * stride, expected.data() + b * g.pixel_bytes());

  DeviceBuffer<std::uint8_t> d_codebook(codebook.size()), d_packed(packed.size()), d_out(expected.size());
  ASSERT_EQ(cudaMemcpy(d_codebook.ptr, codebook.data(), codebook.size(), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_packed.ptr, packed.data(), packed.size(), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::KuatDecodeParams p;
  p.height = tc.h; p.width = tc.w; p.channels = tc.c; p.patch = tc.patch;
  p.codebook_size = tc.k; p.index_bits = bits; p.index_stride = stride;
  p.out_height = tc.h; p.out_width = tc.w;
  cuda::kuat_decode_batch(p, d_codebook.ptr, d_packed.ptr, tc.batch, nullptr, nullptr, nullptr, d_out.ptr, nullptr);
  std::vector<std::uint8_t> got(expected.size());
  ASSERT_EQ(cudaMemcpy(got.data(), d_out.ptr, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got, expected);

  // NCHW float with normalisation: v/255 mapped through mean/std, within float rounding.
  p.nchw = true;
  p.float_output = true;
  for (int c = 0; c < 3; ++c) { p.mean[c] = 0.4f + 0.05f * c; p.std[c] = 0.2f + 0.01f * c; }
  DeviceBuffer<float> d_float(expected.size());
  cuda::kuat_decode_batch(p, d_codebook.ptr, d_packed.ptr, tc.batch, nullptr, nullptr, nullptr, d_float.ptr, nullptr);
  std::vector<float> got_f(expected.size());
  ASSERT_EQ(cudaMemcpy(got_f.data(), d_float.ptr, got_f.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  constexpr float kFloatTolerance = 1e-5f;  // one fma vs. divide-then-subtract
  const std::size_t plane = std::size_t{tc.h} * tc.w;
  for (std::uint32_t b = 0; b < tc.batch; ++b)
    for (std::uint32_t c = 0; c < tc.c; ++c)
      for (std::size_t i = 0; i < plane; ++i) {
        const float v = expected[b * g.pixel_bytes() + i * tc.c + c];
        const float want = (v / 255.0f - p.mean[c]) / p.std[c];
        ASSERT_NEAR(got_f[b * g.pixel_bytes() + c * plane + i], want, kFloatTolerance * (1 + std::fabs(want)));
      }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KuatDecodeCuda,
                         ::testing::Values(Case{28, 28, 1, 2, 512, 5}, Case{32, 32, 3, 2, 4096, 3},
                                           Case{17, 33, 3, 4, 65536, 2}, Case{224, 224, 3, 2, 512, 4},
                                           Case{7, 3, 1, 2, 2, 1}));

}  // namespace
}  // namespace lowbit

// CUDA W2A8 layer against the CPU kernels: int32 accumulators and float outputs bit-identical.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "lowbit/bitlab/gemm.h"
#include "lowbit/bitlab/packing.h"
#include "lowbit/bitlab/ternary.h"
#include "lowbit/cuda/bitlab_gemm.h"
#include "lowbit/cuda/device.h"

namespace lowbit {
namespace {

template <class T>
T* to_device(const T* host, std::size_t n) {
  T* ptr = nullptr;
  EXPECT_EQ(cudaMalloc(&ptr, std::max<std::size_t>(n, 1) * sizeof(T)), cudaSuccess);
  if (n) EXPECT_EQ(cudaMemcpy(ptr, host, n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return ptr;
}

struct Shape {
  std::size_t m, k, n;
  bool per_row;
};

class BitlabCuda : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    if (cuda::visible_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_P(BitlabCuda, MatchesCpuBitExactly) {
  const Shape sh = GetParam();
  std::mt19937 rng(static_cast<unsigned>(sh.m * 7919 + sh.k * 31 + sh.n));
  std::normal_distribution<float> dist;
  std::vector<float> w(sh.n * sh.k), x(sh.m * sh.k), bias(sh.n);
  for (auto& v : w) v = dist(rng);
  for (auto& v : x) v = dist(rng);
  for (auto& v : bias) v = dist(rng);
  const auto g = sh.per_row ? bitlab::Granularity::PerRow : bitlab::Granularity::PerTensor;
  bitlab::TernaryWeights tw = bitlab::quantize_weights(w.data(), sh.n, sh.k, bitlab::Granularity::PerRow);
  bitlab::PackedTernary packed = bitlab::pack_ternary_2bit(tw.trits.data(), sh.n, sh.k);

  std::vector<float> y_cpu(sh.m * sh.n);
  bitlab::bitlinear_int8(x.data(), sh.m, packed.view(), tw.scales.data(), bias.data(), g, y_cpu.data());
  bitlab::QuantizedActivations xq = bitlab::quantize_activations(x.data(), sh.m, sh.k, g);
  std::vector<std::int32_t> acc_cpu(sh.m * sh.n);
  bitlab::ternary_gemm_int8(xq, packed.view(), acc_cpu.data());

  auto* d_w = to_device(packed.data.data(), packed.rows * packed.row_bytes);
  auto* d_scales = to_device(tw.scales.data(), sh.n);
  auto* d_bias = to_device(bias.data(), sh.n);
  auto* d_x = to_device(x.data(), x.size());
  auto* d_xq = to_device(xq.values.data(), sh.m * xq.stride);
  auto* d_sums = to_device(xq.row_sums.data(), sh.m);
  float* d_y = nullptr;
  std::int32_t* d_acc = nullptr;
  ASSERT_EQ(cudaMalloc(&d_y, y_cpu.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_acc, acc_cpu.size() * sizeof(std::int32_t)), cudaSuccess);
  cuda::TernaryWeightsDevice dw{d_w, sh.n, sh.k, packed.row_bytes, d_scales, d_bias};

  cuda::ternary_gemm_int8(d_xq, d_sums, sh.m, xq.stride, dw, d_acc, nullptr);
  cuda::bitlinear_int8(d_x, sh.m, dw, sh.per_row, d_y, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<std::int32_t> acc_gpu(acc_cpu.size());
  std::vector<float> y_gpu(y_cpu.size());
  ASSERT_EQ(cudaMemcpy(acc_gpu.data(), d_acc, acc_gpu.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(y_gpu.data(), d_y, y_gpu.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(acc_gpu, acc_cpu);
  EXPECT_EQ(0, std::memcmp(y_gpu.data(), y_cpu.data(), y_cpu.size() * sizeof(float)));

  // The same layer with a caller-provided workspace (what the Python binding passes).
  void* d_ws = nullptr;
  ASSERT_EQ(cudaMalloc(&d_ws, cuda::bitlinear_int8_workspace_bytes(sh.m, dw)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_y, 0xA5, y_cpu.size() * sizeof(float)), cudaSuccess);
  cuda::bitlinear_int8(d_x, sh.m, dw, sh.per_row, d_y, nullptr, d_ws);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(y_gpu.data(), d_y, y_gpu.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(0, std::memcmp(y_gpu.data(), y_cpu.data(), y_cpu.size() * sizeof(float)));

  // Packed rows that are not 16-byte aligned (a view at an odd offset): small batches then take
  // the word-load GEMM instead of the vector-load GEMV; the same bits either way.
  std::uint8_t* d_w_odd = nullptr;
  const std::size_t w_bytes = packed.rows * packed.row_bytes;
  ASSERT_EQ(cudaMalloc(&d_w_odd, w_bytes + 4), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_w_odd + 4, packed.data.data(), w_bytes, cudaMemcpyHostToDevice), cudaSuccess);
  cuda::TernaryWeightsDevice dw_odd = dw;
  dw_odd.packed = d_w_odd + 4;
  ASSERT_EQ(cudaMemset(d_y, 0xA5, y_cpu.size() * sizeof(float)), cudaSuccess);
  cuda::bitlinear_int8(d_x, sh.m, dw_odd, sh.per_row, d_y, nullptr, d_ws);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(y_gpu.data(), d_y, y_gpu.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(0, std::memcmp(y_gpu.data(), y_cpu.data(), y_cpu.size() * sizeof(float)));
  cudaFree(d_w_odd);
  cudaFree(d_ws);
  for (void* p : {static_cast<void*>(d_w), static_cast<void*>(d_scales), static_cast<void*>(d_bias),
                  static_cast<void*>(d_x), static_cast<void*>(d_xq), static_cast<void*>(d_sums),
                  static_cast<void*>(d_y), static_cast<void*>(d_acc)})
    cudaFree(p);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BitlabCuda,
                         ::testing::Values(Shape{1, 1, 1, false}, Shape{1, 17, 33, true}, Shape{3, 257, 15, false},
                                           Shape{7, 1000, 100, true}, Shape{64, 4096, 512, false},
                                           Shape{1, 8192, 8192, true}, Shape{9, 300, 7, true},
                                           Shape{8, 512, 40, false}, Shape{2, 70, 9, true}));

}  // namespace
}  // namespace lowbit

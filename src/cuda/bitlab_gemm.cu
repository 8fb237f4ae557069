// W2A8 ternary GEMV/GEMM with __dp4a over BitLab's I2_S256 layout.
//
// One warp per output row n and a tile of up to kRowsPerWarp activation rows: every lane loads
// 32-bit words of the packed row (a word at byte 64b + j holds, after (w >> 2s) & 0x03030303,
// the codes of weights 256b + 64s + j .. + 3), and dp4a's them with the matching 4 int8
// activations. Codes are t + 1, so the row sum of x is subtracted at the end (see gemm.h).
#include <cuda_runtime.h>

#include <cfloat>

#include <cstdint>
#include <string>

#include "check.h"
#include "lowbit/core/error.h"
#include "lowbit/cuda/bitlab_gemm.h"

namespace lowbit::cuda {
namespace {

constexpr int kRowsPerWarp = 8;
constexpr int kWarpsPerBlock = 4;

__global__ void gemm_kernel(const std::int8_t* __restrict__ xq, const std::int32_t* __restrict__ row_sums,
                            int rows, std::size_t stride, const std::uint8_t* __restrict__ w, int n_rows,
                            std::size_t row_bytes, std::int32_t* __restrict__ acc) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  const int m0 = blockIdx.y * kRowsPerWarp;
  if (n >= n_rows) return;
  const int mt = min(kRowsPerWarp, rows - m0);
  const std::uint32_t* wrow = reinterpret_cast<const std::uint32_t*>(w + n * row_bytes);
  const std::size_t words = row_bytes / 4;
  int sum[kRowsPerWarp] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (std::size_t i = lane; i < words; i += 32) {
    const std::uint32_t word = __ldg(wrow + i);
    const std::size_t block = i / 16;       // 16 words per 64-byte block
    const std::size_t j = (i % 16) * 4;     // byte offset inside the block
    for (int s = 0; s < 4; ++s) {
      const int codes = static_cast<int>((word >> (2 * s)) & 0x03030303u);
      const std::size_t k = block * 256 + s * 64 + j;
#pragma unroll
      for (int m = 0; m < kRowsPerWarp; ++m) {
        if (m < mt) {
          const int xw = *reinterpret_cast<const int*>(xq + (m0 + m) * stride + k);
          sum[m] = __dp4a(codes, xw, sum[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kRowsPerWarp; ++m) {
    int v = sum[m];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0 && m < mt) acc[(m0 + m) * static_cast<std::size_t>(n_rows) + n] = v - row_sums[m0 + m];
  }
}

// The small-batch GEMV (rows <= kRowsPerWarp; batch-1 decoding): one warp per output row, each
// lane loading 16 bytes of the packed row at a time (four of the words above: word w of the vector
// at byte 16u of the row is byte (u % 4) * 16 + 4w of block u / 4, so its activations are the 16
// bytes at block * 256 + s * 64 + (u % 4) * 16), and the epilogue fused: the integer sums are the
// same (integer addition in any order) and the float steps are epilogue_kernel's. Needs the packed
// rows and the activations 16-byte aligned (checked by the caller).
__global__ void gemv_fused_kernel(const std::int8_t* __restrict__ xq, const std::int32_t* __restrict__ row_sums,
                                  const float* __restrict__ act_scale, int rows, std::size_t stride,
                                  const std::uint8_t* __restrict__ w, int n_rows, std::size_t row_bytes,
                                  const float* __restrict__ w_scale, const float* __restrict__ bias,
                                  float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (n >= n_rows) return;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + n * row_bytes);
  const std::size_t vectors = row_bytes / 16;
  int sum[kRowsPerWarp] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (std::size_t u = lane; u < vectors; u += 32) {
    const uint4 v = __ldg(wrow + u);
    const std::size_t base = (u / 4) * 256 + (u % 4) * 16;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int c0 = static_cast<int>((v.x >> (2 * s)) & 0x03030303u);
      const int c1 = static_cast<int>((v.y >> (2 * s)) & 0x03030303u);
      const int c2 = static_cast<int>((v.z >> (2 * s)) & 0x03030303u);
      const int c3 = static_cast<int>((v.w >> (2 * s)) & 0x03030303u);
#pragma unroll
      for (int m = 0; m < kRowsPerWarp; ++m) {
        if (m < rows) {
          const int4 a = *reinterpret_cast<const int4*>(xq + m * stride + base + s * 64);
          sum[m] = __dp4a(c3, a.w, __dp4a(c2, a.z, __dp4a(c1, a.y, __dp4a(c0, a.x, sum[m]))));
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kRowsPerWarp; ++m) {
    int acc = sum[m];
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0 && m < rows) {
      float out = __fmul_rn(__fmul_rn(static_cast<float>(acc - row_sums[m]), act_scale[m]), w_scale[n]);
      if (bias) out = __fadd_rn(out, bias[n]);
      y[m * static_cast<std::size_t>(n_rows) + n] = out;
    }
  }
}

// max|row[k]| over k < cols, computed by one block and returned to every thread of it.
__device__ float block_absmax(const float* __restrict__ row, std::size_t cols) {
  float v = 0.0f;
  for (std::size_t k = threadIdx.x; k < cols; k += blockDim.x) v = fmaxf(v, fabsf(row[k]));
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
  __shared__ float warp_max[32];
  __shared__ float result;
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = 0.0f;
    for (int i = 0; i < (blockDim.x + 31) / 32; ++i) m = fmaxf(m, warp_max[i]);
    result = m;
  }
  __syncthreads();
  return result;
}

// One block quantizes one row with absmax a: x_q = clamp(rint(x * inv), -128, 127), inv = 127 / a
// (0 where not finite), zero padding up to stride; its sum into *row_sum and a / 127 into *scale.
__device__ void block_quantize_row(const float* __restrict__ row, std::size_t cols, std::size_t stride, float a,
                                   std::int8_t* __restrict__ xq_row, std::int32_t* row_sum, float* scale) {
  // inv = 0 where 127 / a is not finite (a == 0 or a < 127 / FLT_MAX: zeros), as activation_inv.
  float inv = __fdiv_rn(127.0f, a);
  if (!(inv <= FLT_MAX)) inv = 0.0f;
  int local = 0;
  for (std::size_t k = threadIdx.x; k < stride; k += blockDim.x) {
    int q = 0;
    if (k < cols) q = static_cast<int>(fminf(fmaxf(rintf(__fmul_rn(row[k], inv)), -128.0f), 127.0f));
    xq_row[k] = static_cast<std::int8_t>(q);
    local += q;
  }
  for (int offset = 16; offset > 0; offset >>= 1) local += __shfl_down_sync(0xffffffffu, local, offset);
  __shared__ int warp_sum[32];
  if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = local;
  __syncthreads();
  if (threadIdx.x == 0) {
    int total = 0;
    for (int i = 0; i < (blockDim.x + 31) / 32; ++i) total += warp_sum[i];
    *row_sum = total;
    *scale = __fdiv_rn(a, 127.0f);
  }
}

// Per-row max|x| (one block per row).
__global__ void row_absmax_kernel(const float* __restrict__ x, std::size_t cols, float* __restrict__ absmax) {
  const float m = block_absmax(x + blockIdx.x * cols, cols);
  if (threadIdx.x == 0) absmax[blockIdx.x] = m;
}

// Per-tensor: every row takes the maximum over rows (rows is small for inference batches).
__global__ void tensor_absmax_kernel(float* absmax, int rows) {
  float m = 0.0f;
  for (int i = 0; i < rows; ++i) m = fmaxf(m, absmax[i]);
  for (int i = 0; i < rows; ++i) absmax[i] = m;
}

// Quantizes row blockIdx.x with the absmax already in absmax[row] (per tensor: the tensor's).
__global__ void quantize_kernel(const float* __restrict__ x, std::size_t cols, std::size_t stride,
                                const float* __restrict__ absmax, std::int8_t* __restrict__ xq,
                                std::int32_t* __restrict__ row_sums, float* __restrict__ act_scale) {
  const int m = blockIdx.x;
  block_quantize_row(x + m * cols, cols, stride, absmax[m], xq + m * stride, &row_sums[m], &act_scale[m]);
}

// Per-row activations in one kernel (one block per row): row_absmax_kernel then quantize_kernel.
__global__ void quantize_rows_kernel(const float* __restrict__ x, std::size_t cols, std::size_t stride,
                                     std::int8_t* __restrict__ xq, std::int32_t* __restrict__ row_sums,
                                     float* __restrict__ act_scale) {
  const int m = blockIdx.x;
  const float* row = x + m * cols;
  block_quantize_row(row, cols, stride, block_absmax(row, cols), xq + m * stride, &row_sums[m], &act_scale[m]);
}

// y = (float(acc) * act_scale[m]) * w_scale[n] + bias[n], each step rounded separately.
__global__ void epilogue_kernel(const std::int32_t* __restrict__ acc, const float* __restrict__ act_scale,
                                const float* __restrict__ w_scale, const float* __restrict__ bias, int rows,
                                int n_rows, float* __restrict__ y) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<std::size_t>(rows) * n_rows) return;
  const int m = static_cast<int>(i / n_rows), n = static_cast<int>(i % n_rows);
  float v = __fmul_rn(__fmul_rn(static_cast<float>(acc[i]), act_scale[m]), w_scale[n]);
  if (bias) v = __fadd_rn(v, bias[n]);
  y[i] = v;
}

void check_weights(const TernaryWeightsDevice& w) {
  require(w.packed != nullptr && w.scales != nullptr, "bitlinear (CUDA): packed weights and scales are required");
  require(w.rows > 0 && w.cols > 0, "bitlinear (CUDA): weights must have a positive shape");
  require(w.row_bytes == (w.cols + 255) / 256 * 64,
          "bitlinear (CUDA): row_bytes " + std::to_string(w.row_bytes) + " does not match I2_S256 for " +
              std::to_string(w.cols) + " columns");
  require(w.rows <= 0x7fffffff, "bitlinear (CUDA): too many output rows");
}

}  // namespace

void ternary_gemm_int8(const std::int8_t* xq, const std::int32_t* row_sums, std::size_t rows, std::size_t stride,
                       const TernaryWeightsDevice& w, std::int32_t* acc, void* stream) {
  check_weights(w);
  require(stride == w.row_bytes * 4, "ternary_gemm_int8 (CUDA): activation stride must equal row_bytes * 4");
  if (rows == 0) return;
  require(rows <= 65535u * kRowsPerWarp, "ternary_gemm_int8 (CUDA): too many activation rows");
  const dim3 block(32 * kWarpsPerBlock);
  const dim3 grid(static_cast<unsigned>((w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>((rows + kRowsPerWarp - 1) / kRowsPerWarp));
  gemm_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(
      xq, row_sums, static_cast<int>(rows), stride, w.packed, static_cast<int>(w.rows), w.row_bytes, acc);
  LOWBIT_CUDA_CHECK(cudaGetLastError());
}

std::size_t bitlinear_int8_workspace_bytes(std::size_t rows, const TernaryWeightsDevice& w) {
  // xq | absmax | act_scale | row_sums | acc: xq first (rows * a multiple of 256 bytes) keeps its rows
  // 16-byte aligned for the GEMV's vector loads; the other sections are multiples of 4 bytes.
  return rows * w.row_bytes * 4 + rows * (2 * sizeof(float) + sizeof(std::int32_t)) +
         rows * w.rows * sizeof(std::int32_t);
}

void bitlinear_int8(const float* x, std::size_t rows, const TernaryWeightsDevice& w, bool per_row_activations,
                    float* y, void* stream, void* workspace) {
  check_weights(w);
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const std::size_t stride = w.row_bytes * 4;
  require(reinterpret_cast<std::uintptr_t>(workspace) % 16 == 0, "bitlinear (CUDA): workspace must be 16-byte aligned");
  char* ws = static_cast<char*>(workspace);
  const bool owned = ws == nullptr;
  if (owned)
    LOWBIT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ws), bitlinear_int8_workspace_bytes(rows, w), s));
  auto* xq = reinterpret_cast<std::int8_t*>(ws);
  float* absmax = reinterpret_cast<float*>(ws + rows * stride);
  float* act_scale = absmax + rows;
  auto* row_sums = reinterpret_cast<std::int32_t*>(act_scale + rows);
  std::int32_t* acc = row_sums + rows;

  // One row's activations per tensor are its own (per-tensor = per-row): one kernel.
  if (per_row_activations || rows == 1) {
    quantize_rows_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(x, w.cols, stride, xq, row_sums, act_scale);
  } else {
    row_absmax_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(x, w.cols, absmax);
    tensor_absmax_kernel<<<1, 1, 0, s>>>(absmax, static_cast<int>(rows));
    quantize_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(x, w.cols, stride, absmax, xq, row_sums, act_scale);
  }
  LOWBIT_CUDA_CHECK(cudaGetLastError());
  const bool aligned = reinterpret_cast<std::uintptr_t>(w.packed) % 16 == 0;
  if (rows <= static_cast<std::size_t>(kRowsPerWarp) && aligned) {  // GEMV with the epilogue fused
    const dim3 block(32 * kWarpsPerBlock);
    const dim3 grid(static_cast<unsigned>((w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
    gemv_fused_kernel<<<grid, block, 0, s>>>(xq, row_sums, act_scale, static_cast<int>(rows), stride, w.packed,
                                             static_cast<int>(w.rows), w.row_bytes, w.scales, w.bias, y);
  } else {
    ternary_gemm_int8(xq, row_sums, rows, stride, w, acc, stream);
    const std::size_t total = rows * w.rows;
    epilogue_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, s>>>(
        acc, act_scale, w.scales, w.bias, static_cast<int>(rows), static_cast<int>(w.rows), y);
  }
  LOWBIT_CUDA_CHECK(cudaGetLastError());
  if (owned) LOWBIT_CUDA_CHECK(cudaFreeAsync(ws, s));
}

}  // namespace lowbit::cuda

// CUDA W2A8 ternary layer (compiled when LOWBIT_CUDA=ON).
//
// Reads weights in BitLab's compute layout I2_S256 (include/lowbit/bitlab/packing.h) and follows
// the quantization and epilogue conventions of include/lowbit/bitlab/ternary.h and gemm.h, so
// integer accumulators equal the CPU's exactly and float outputs are bit-identical
// (round-to-nearest intrinsics, no fused multiply-add). All pointers are device pointers;
// `stream` is a cudaStream_t passed as void*.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::cuda {

struct TernaryWeightsDevice {
  const std::uint8_t* packed = nullptr;  // rows * row_bytes, I2_S256
  std::size_t rows = 0;                  // N (out_features)
  std::size_t cols = 0;                  // K (in_features)
  std::size_t row_bytes = 0;             // ceil(K / 256) * 64
  const float* scales = nullptr;         // N weight scales
  const float* bias = nullptr;           // N or nullptr
};

// acc[m][n] = sum_k xq[m][k] * t[n][k] for int8 activations already padded to `stride`
// (= row_bytes * 4) with zeros; row_sums[m] = sum_k xq[m][k].
void ternary_gemm_int8(const std::int8_t* xq, const std::int32_t* row_sums, std::size_t rows,
                       std::size_t stride, const TernaryWeightsDevice& w, std::int32_t* acc, void* stream);

// Device bytes of the scratch bitlinear_int8 needs for `rows` activation rows.
std::size_t bitlinear_int8_workspace_bytes(std::size_t rows, const TernaryWeightsDevice& w);

// The full layer: quantizes x (rows x cols float32) per tensor or per row, runs the integer
// product and the epilogue y = (float(acc) * act_scale[m]) * w_scale[n] + bias[n]. Up to 8 rows
// (decoding) with 16-byte aligned packed weights run one GEMV kernel with the epilogue fused
// (16-byte weight loads); otherwise ternary_gemm_int8 then the epilogue. Same bits either way.
// workspace: bitlinear_int8_workspace_bytes(rows, w) device bytes, 16-byte aligned (a caching
// allocator's block, say); nullptr allocates it stream-ordered (cudaMallocAsync) for this call.
// Asynchronous on `stream` either way. Throws lowbit::InvalidArgument on shape mismatches,
// lowbit::RuntimeError on CUDA errors.
void bitlinear_int8(const float* x, std::size_t rows, const TernaryWeightsDevice& w, bool per_row_activations,
                    float* y, void* stream, void* workspace = nullptr);

}  // namespace lowbit::cuda

// Fused Kuat batch decode: bit-unpack + codebook gather + crop/flip + layout + normalisation.
//
// One thread per output pixel: it extracts its patch's index from the packed block (at most
// 3 bytes for <= 16-bit indices), reads the C bytes of its pixel from the codeword, and writes
// them in the requested layout. Neighbouring threads write neighbouring pixels, so stores
// coalesce; the codebook (<= 768 KiB) stays hot in L2.
#include <cuda_runtime.h>

#include <string>

#include "check.h"
#include "lowbit/core/error.h"
#include "lowbit/cuda/kuat_decode.h"

namespace lowbit::cuda {
namespace {

struct DeviceParams {
  std::uint32_t height, width, channels, patch, grid_w, codebook_size, index_bits;
  std::uint64_t index_stride;
  std::uint32_t out_height, out_width;
  float scale[4], bias[4];  // float output: v * scale + bias == (v/255 - mean) / std
};

__device__ __forceinline__ std::uint32_t extract_index(const std::uint8_t* block, std::uint32_t j,
                                                       std::uint32_t bits) {
  const std::uint64_t pos = std::uint64_t{j} * bits;
  const std::uint8_t* p = block + (pos >> 3);
  const std::uint32_t shift = static_cast<std::uint32_t>(pos & 7);
  // bits + shift <= 23: at most three bytes; read only the bytes that hold index bits.
  std::uint32_t word = p[0];
  if (shift + bits > 8) word |= std::uint32_t{p[1]} << 8;
  if (shift + bits > 16) word |= std::uint32_t{p[2]} << 16;
  return (word >> shift) & ((1u << bits) - 1u);
}

template <bool kFloat, bool kNchw>
__global__ void decode_kernel(DeviceParams p, const std::uint8_t* __restrict__ codebook,
                              const std::uint8_t* __restrict__ packed, const std::int32_t* crop_y,
                              const std::int32_t* crop_x, const std::uint8_t* flip, void* out,
                              int* error_flag) {
  const std::uint32_t x = blockIdx.x * blockDim.x + threadIdx.x;
  const std::uint32_t y = blockIdx.y;
  const std::uint32_t b = blockIdx.z;
  if (x >= p.out_width) return;
  const std::uint32_t xs = (flip && flip[b]) ? p.out_width - 1 - x : x;
  const std::int64_t sy = std::int64_t{y} + (crop_y ? crop_y[b] : 0);
  const std::int64_t sx = std::int64_t{xs} + (crop_x ? crop_x[b] : 0);
  const bool inside = sy >= 0 && sx >= 0 && sy < p.height && sx < p.width;
  const std::uint32_t C = p.channels;
  std::uint8_t pixel[4] = {0, 0, 0, 0};
  if (inside) {
    const std::uint32_t gy = static_cast<std::uint32_t>(sy) / p.patch;
    const std::uint32_t gx = static_cast<std::uint32_t>(sx) / p.patch;
    const std::uint32_t k = extract_index(packed + b * p.index_stride, gy * p.grid_w + gx, p.index_bits);
    if (k >= p.codebook_size) {
      atomicExch(error_flag, 1);
      return;
    }
    const std::uint32_t py = static_cast<std::uint32_t>(sy) % p.patch;
    const std::uint32_t px = static_cast<std::uint32_t>(sx) % p.patch;
    const std::uint8_t* src = codebook + (std::size_t{k} * p.patch * p.patch + py * p.patch + px) * C;
    for (std::uint32_t c = 0; c < C; ++c) pixel[c] = __ldg(src + c);
  }
  const std::size_t plane = std::size_t{p.out_height} * p.out_width;
  const std::size_t image = plane * C;
  for (std::uint32_t c = 0; c < C; ++c) {
    const std::size_t offset = kNchw ? b * image + c * plane + std::size_t{y} * p.out_width + x
                                     : b * image + (std::size_t{y} * p.out_width + x) * C + c;
    if constexpr (kFloat) {
      static_cast<float*>(out)[offset] = fmaf(static_cast<float>(pixel[c]), p.scale[c], p.bias[c]);
    } else {
      static_cast<std::uint8_t*>(out)[offset] = pixel[c];
    }
  }
}

}  // namespace

void kuat_decode_batch(const KuatDecodeParams& params, const std::uint8_t* codebook,
                       const std::uint8_t* packed, std::uint32_t batch, const std::int32_t* crop_y,
                       const std::int32_t* crop_x, const std::uint8_t* flip, void* out, void* stream,
                       int* error_flag) {
  require(params.patch == 2 || params.patch == 4, "kuat_decode_batch: patch must be 2 or 4");
  require(params.channels == 1 || params.channels == 3, "kuat_decode_batch: channels must be 1 or 3");
  require(params.index_bits >= 1 && params.index_bits <= 16, "kuat_decode_batch: index_bits must be 1..16");
  require(params.codebook_size >= 2 && params.codebook_size <= (1u << params.index_bits),
          "kuat_decode_batch: codebook_size does not fit index_bits");
  require(params.out_height > 0 && params.out_width > 0 && params.out_height <= 65535,
          "kuat_decode_batch: output size must be 1..65535 rows and positive width");
  require(batch <= 65535, "kuat_decode_batch: batch must be at most 65535");
  if (batch == 0) return;

  DeviceParams p{};
  p.height = params.height;
  p.width = params.width;
  p.channels = params.channels;
  p.patch = params.patch;
  p.grid_w = (params.width + params.patch - 1) / params.patch;
  p.codebook_size = params.codebook_size;
  p.index_bits = params.index_bits;
  p.index_stride = params.index_stride;
  p.out_height = params.out_height;
  p.out_width = params.out_width;
  for (int c = 0; c < 4; ++c) {
    require(params.std[c] != 0.0f, "kuat_decode_batch: std must be non-zero");
    p.scale[c] = 1.0f / (255.0f * params.std[c]);
    p.bias[c] = -params.mean[c] / params.std[c];
  }

  auto s = static_cast<cudaStream_t>(stream);
  const bool synchronous = error_flag == nullptr;
  if (synchronous) {
    LOWBIT_CUDA_CHECK(cudaMallocAsync(&error_flag, sizeof(int), s));
    LOWBIT_CUDA_CHECK(cudaMemsetAsync(error_flag, 0, sizeof(int), s));
  }
  const dim3 block(128);
  const dim3 grid((params.out_width + block.x - 1) / block.x, params.out_height, batch);
  if (params.float_output) {
    if (params.nchw) decode_kernel<true, true><<<grid, block, 0, s>>>(p, codebook, packed, crop_y, crop_x, flip, out, error_flag);
    else decode_kernel<true, false><<<grid, block, 0, s>>>(p, codebook, packed, crop_y, crop_x, flip, out, error_flag);
  } else {
    if (params.nchw) decode_kernel<false, true><<<grid, block, 0, s>>>(p, codebook, packed, crop_y, crop_x, flip, out, error_flag);
    else decode_kernel<false, false><<<grid, block, 0, s>>>(p, codebook, packed, crop_y, crop_x, flip, out, error_flag);
  }
  LOWBIT_CUDA_CHECK(cudaGetLastError());
  if (!synchronous) return;
  int host_flag = 0;
  LOWBIT_CUDA_CHECK(cudaMemcpyAsync(&host_flag, error_flag, sizeof(int), cudaMemcpyDeviceToHost, s));
  LOWBIT_CUDA_CHECK(cudaFreeAsync(error_flag, s));
  LOWBIT_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host_flag) {
    throw InvalidArgument("kuat_decode_batch: an index is >= codebook size " +
                          std::to_string(params.codebook_size) + " (corrupted archive?)");
  }
}

}  // namespace lowbit::cuda

// CUDA batch decode for Kuat archives (compiled when LOWBIT_CUDA=ON).
//
// Turns packed indices (include/lowbit/kuat/codes.h conventions) into a batch in NHWC or NCHW
// layout, as uint8 or as float32 normalised by mean/std, with an optional per-sample crop
// offset and horizontal flip fused in. All pointers are device pointers; `stream` is a
// cudaStream_t passed as void* so this header stays free of CUDA types.
#pragma once

#include <cstdint>

namespace lowbit::cuda {

struct KuatDecodeParams {
  // Source geometry (every sample in the batch has it).
  std::uint32_t height = 0, width = 0, channels = 0, patch = 2;
  std::uint32_t codebook_size = 0;
  std::uint32_t index_bits = 0;
  std::uint64_t index_stride = 0;     // bytes between consecutive samples' packed blocks
  // Output window: out_height x out_width pixels; pixel (y, x) reads source pixel
  // (y + crop_y[b], xs + crop_x[b]) with xs = flip[b] ? out_width - 1 - x : x; pixels outside
  // the source are 0 (before normalisation). crop_y/crop_x/flip may be null (all zero).
  std::uint32_t out_height = 0, out_width = 0;
  bool nchw = false;
  bool float_output = false;          // false: uint8; true: float32 (v/255 - mean[c]) / std[c]
  float mean[4] = {0, 0, 0, 0};
  float std[4] = {1, 1, 1, 1};
};

// packed: batch blocks, sample b at packed + b * index_stride (already gathered in batch order).
// error_flag: a device int the kernel sets to 1 when an index is out of range (a corrupted
// archive); the call is then fully asynchronous and the caller checks the flag when it syncs.
// With error_flag == nullptr the call synchronises `stream` and throws InvalidArgument itself.
// Throws lowbit::InvalidArgument for bad parameters and lowbit::RuntimeError on a CUDA error.
void kuat_decode_batch(const KuatDecodeParams& params, const std::uint8_t* codebook,
                       const std::uint8_t* packed, std::uint32_t batch, const std::int32_t* crop_y,
                       const std::int32_t* crop_x, const std::uint8_t* flip, void* out, void* stream,
                       int* error_flag = nullptr);

}  // namespace lowbit::cuda

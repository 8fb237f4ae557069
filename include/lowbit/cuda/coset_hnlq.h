// CUDA HNLQ encode/decode for Coset (compiled when LOWBIT_CUDA=ON).
//
// Same function as lowbit::coset::encode / decode (include/lowbit/coset/hnlq.h): every config
// (Z2/D4/E8, q 2..16, M 1..4, both tie rules, subtractive dither, overload retries), float32 and
// float64, with codes, T and decoded values bit-identical to the CPU (docs/coset.md, "The tie
// rule"; the kernels use round-to-nearest intrinsics only, no fused multiply-add). One thread
// per vector. All data pointers are device pointers; `stream` is a cudaStream_t passed as void*.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/coset/hnlq.h"

namespace lowbit::cuda {

// What a kernel found, in device memory (32 bytes). Reset on the stream by each call.
struct CosetStatus {
  std::uint64_t retried = 0;       // encode: vectors that needed T > 0
  std::uint64_t overloaded = 0;    // encode: vectors still overloaded after the last allowed T
  std::uint64_t first_bad = ~0ull; // lowest index of a rejected vector (error != 0)
  std::int32_t error = 0;          // a CosetError
  std::int32_t reserved = 0;
};
static_assert(sizeof(CosetStatus) == 32, "CosetStatus is read back as four 64-bit words");

enum CosetError : std::int32_t {
  kCosetOk = 0,
  kCosetNonFinite = 1,   // encode: x has NaN or Inf (the vector's codes and T are not written)
  kCosetBadCode = 2,     // decode: a code >= q (the vector's output is not written)
  kCosetBadScale = 3,    // decode: T > the config's scaling iterations
};

// status != nullptr: asynchronous; *status is valid once the stream has passed this call.
// status == nullptr: the call allocates a status, waits for the stream and throws
// InvalidArgument with the CPU's message on a rejected input; the stats are then returned.
// Throws InvalidArgument for a bad config, RuntimeError on a CUDA error.
// overloaded: optional, n bytes, 1 where a vector still overloads after its last allowed T.
template <class T>
coset::EncodeStats coset_encode(const coset::QuantizationConfig& config, const T* x, std::size_t n,
                                std::uint8_t* codes, std::uint8_t* t, void* stream, CosetStatus* status = nullptr,
                                std::uint8_t* overloaded = nullptr);

template <class T>
void coset_decode(const coset::QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
                  std::size_t n, T* out, void* stream, CosetStatus* status = nullptr);

// Throws InvalidArgument with the CPU's message when a status read back to the host has an error.
void coset_check_status(const coset::QuantizationConfig& config, const CosetStatus& status);

}  // namespace lowbit::cuda

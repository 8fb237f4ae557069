// CUDA HNLQ encode/decode (include/lowbit/cuda/coset_hnlq.h): one thread per vector.
//
// The per-vector arithmetic is coset_hnlq_device.h, shared with a CPU test that checks it against
// the reference bit for bit; this file adds the launches: wide loads and stores of whole vectors
// and code records (16, 8 or 4 bytes per access, as the pointers' alignment allows), the input
// checks of hnlq.cpp as a status word instead of an exception, and warp-aggregated statistics.
// Memory-bound: D4 q=4 M=2 float32 moves 16 + 8 + 1 bytes per vector.
#include <cuda_runtime.h>

#include <cstring>
#include <optional>
#include <string>

#include "check.h"
#include "coset_hnlq_config.h"
#include "lowbit/core/error.h"
#include "lowbit/cuda/coset_hnlq.h"

namespace lowbit::cuda {
namespace {

namespace dev = coset_device;

constexpr int kThreads = 256;

// Largest power-of-two access width (<= 16) that divides the address.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  if (a % 16 == 0) return 16;
  if (a % 8 == 0) return 8;
  if (a % 4 == 0) return 4;
  return 1;
}

// Copies Bytes bytes from src to dst (a register array) with accesses of `width` bytes.
template <int Bytes>
__device__ __forceinline__ void load_bytes(const void* __restrict__ src, void* dst, int width) {
  if constexpr (Bytes % 16 == 0) {
    if (width >= 16) {
      uint4 w[Bytes / 16];
#pragma unroll
      for (int k = 0; k < Bytes / 16; ++k) w[k] = __ldg(static_cast<const uint4*>(src) + k);
      memcpy(dst, w, Bytes);
      return;
    }
  }
  if constexpr (Bytes % 8 == 0) {
    if (width >= 8) {
      uint2 w[Bytes / 8];
#pragma unroll
      for (int k = 0; k < Bytes / 8; ++k) w[k] = __ldg(static_cast<const uint2*>(src) + k);
      memcpy(dst, w, Bytes);
      return;
    }
  }
  if constexpr (Bytes % 4 == 0) {
    if (width >= 4) {
      unsigned w[Bytes / 4];
#pragma unroll
      for (int k = 0; k < Bytes / 4; ++k) w[k] = __ldg(static_cast<const unsigned*>(src) + k);
      memcpy(dst, w, Bytes);
      return;
    }
  }
  unsigned char b[Bytes];
#pragma unroll
  for (int k = 0; k < Bytes; ++k) b[k] = __ldg(static_cast<const unsigned char*>(src) + k);
  memcpy(dst, b, Bytes);
}

template <int Bytes>
__device__ __forceinline__ void store_bytes(void* __restrict__ dst, const void* src, int width) {
  if constexpr (Bytes % 16 == 0) {
    if (width >= 16) {
      uint4 w[Bytes / 16];
      memcpy(w, src, Bytes);
#pragma unroll
      for (int k = 0; k < Bytes / 16; ++k) static_cast<uint4*>(dst)[k] = w[k];
      return;
    }
  }
  if constexpr (Bytes % 8 == 0) {
    if (width >= 8) {
      uint2 w[Bytes / 8];
      memcpy(w, src, Bytes);
#pragma unroll
      for (int k = 0; k < Bytes / 8; ++k) static_cast<uint2*>(dst)[k] = w[k];
      return;
    }
  }
  if constexpr (Bytes % 4 == 0) {
    if (width >= 4) {
      unsigned w[Bytes / 4];
      memcpy(w, src, Bytes);
#pragma unroll
      for (int k = 0; k < Bytes / 4; ++k) static_cast<unsigned*>(dst)[k] = w[k];
      return;
    }
  }
  unsigned char b[Bytes];
  memcpy(b, src, Bytes);
#pragma unroll
  for (int k = 0; k < Bytes; ++k) static_cast<unsigned char*>(dst)[k] = b[k];
}

__device__ __forceinline__ void reject(CosetStatus* status, std::uint64_t index, std::int32_t error) {
  atomicExch(&status->error, error);
  atomicMin(reinterpret_cast<unsigned long long*>(&status->first_bad), static_cast<unsigned long long>(index));
}

// One warp-level atomic for a per-thread flag.
__device__ __forceinline__ void count(std::uint64_t* counter, bool flag) {
  const unsigned votes = __ballot_sync(0xffffffffu, flag);
  if (votes != 0 && (threadIdx.x & 31) == 0)
    atomicAdd(reinterpret_cast<unsigned long long*>(counter), static_cast<unsigned long long>(__popc(votes)));
}

template <class T, int L, int M>
__global__ void __launch_bounds__(kThreads) encode_kernel(const dev::EncodeConfig<T> cfg, const T* __restrict__ x,
                                                          std::size_t n, std::uint8_t* __restrict__ codes,
                                                          std::uint8_t* __restrict__ t, int x_width, int code_width,
                                                          CosetStatus* status, std::uint8_t* __restrict__ over_out) {
  constexpr int d = dev::Lattice<L>::d;
  constexpr int kRecord = M * d;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * kThreads + threadIdx.x;
  bool retried = false, overloaded = false;
  if (i < n) {
    T v[d];
    load_bytes<d * sizeof(T)>(x + i * d, v, x_width);
    bool finite = true;
#pragma unroll
    for (int j = 0; j < d; ++j) finite = finite && dev::finite(v[j]);
    if (!finite) {
      reject(status, i, kCosetNonFinite);
    } else {
      std::uint8_t c[kRecord];
      const int k = dev::encode_full<T, L, M>(cfg, v, i, c, &overloaded);
      store_bytes<kRecord>(codes + i * kRecord, c, code_width);
      t[i] = static_cast<std::uint8_t>(k);
      if (over_out) over_out[i] = overloaded ? 1 : 0;
      retried = k > 0;
    }
  }
  count(&status->retried, retried);
  count(&status->overloaded, overloaded);
}

template <class T, int L, int M>
__global__ void __launch_bounds__(kThreads) decode_kernel(const dev::EncodeConfig<T> cfg,
                                                          const std::uint8_t* __restrict__ codes,
                                                          const std::uint8_t* __restrict__ t, std::size_t n,
                                                          T* __restrict__ out, int code_width, int out_width,
                                                          CosetStatus* status) {
  constexpr int d = dev::Lattice<L>::d;
  constexpr int kRecord = M * d;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  std::uint8_t c[kRecord];
  load_bytes<kRecord>(codes + i * kRecord, c, code_width);
  const int ti = __ldg(t + i);
  bool valid = true;
#pragma unroll
  for (int k = 0; k < kRecord; ++k) valid = valid && c[k] < cfg.lv.q;
  if (!valid) {
    reject(status, i, kCosetBadCode);
    return;
  }
  if (ti > cfg.max_t) {
    reject(status, i, kCosetBadScale);
    return;
  }
  T o[d];
  dev::decode_full<T, L, M>(cfg, c, ti, i, o);
  store_bytes<d * sizeof(T)>(out + i * d, o, out_width);
}

std::size_t blocks_for(std::size_t n) { return (n + kThreads - 1) / kThreads; }

template <class T>
struct Encode {
  template <int L, int M>
  struct Launch {
    static void run(const coset::QuantizationConfig& config, const T* x, std::size_t n, std::uint8_t* codes,
                    std::uint8_t* t, cudaStream_t s, CosetStatus* status, std::uint8_t* overloaded) {
      const auto cfg = dev::make_encode_config<T, L>(config);
      encode_kernel<T, L, M><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, s>>>(
          cfg, x, n, codes, t, alignment_of(x), alignment_of(codes), status, overloaded);
    }
  };
};

template <class T>
struct Decode {
  template <int L, int M>
  struct Launch {
    static void run(const coset::QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
                    std::size_t n, T* out, cudaStream_t s, CosetStatus* status) {
      const auto cfg = dev::make_encode_config<T, L>(config);
      decode_kernel<T, L, M><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, s>>>(
          cfg, codes, t, n, out, alignment_of(codes), alignment_of(out), status);
    }
  };
};

template <template <int, int> class Launch, int L, class... Args>
void dispatch_levels(int m, Args&... args) {
  switch (m) {
    case 1: return Launch<L, 1>::run(args...);
    case 2: return Launch<L, 2>::run(args...);
    case 3: return Launch<L, 3>::run(args...);
    case 4: return Launch<L, 4>::run(args...);
    default: throw InvalidArgument("M: must be in [1, 4], got " + std::to_string(m));
  }
}

// Launch<L, M>::run(args...) for the config's lattice and M (the kernels are instantiated per
// lattice and level count so that every per-vector array stays in registers).
template <template <int, int> class Launch, class... Args>
void dispatch(const coset::QuantizationConfig& config, Args&&... args) {
  switch (config.lattice) {
    case coset::LatticeType::Z2: return dispatch_levels<Launch, dev::kZ2>(config.M, args...);
    case coset::LatticeType::D4: return dispatch_levels<Launch, dev::kD4>(config.M, args...);
    case coset::LatticeType::E8: return dispatch_levels<Launch, dev::kE8>(config.M, args...);
  }
}

void reset_status(CosetStatus* status, cudaStream_t s) {
  LOWBIT_CUDA_CHECK(cudaMemsetAsync(status, 0, sizeof(CosetStatus), s));
  LOWBIT_CUDA_CHECK(cudaMemsetAsync(&status->first_bad, 0xff, sizeof(std::uint64_t), s));
}

// Synchronous mode: a temporary status, read back after the stream has run the kernel.
class OwnedStatus {
 public:
  explicit OwnedStatus(cudaStream_t s) : stream_(s) { LOWBIT_CUDA_CHECK(cudaMallocAsync(&ptr_, sizeof(CosetStatus), s)); }
  ~OwnedStatus() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);  // destructor: nothing to report to
  }
  CosetStatus* get() const { return ptr_; }
  CosetStatus read() {
    CosetStatus host;
    LOWBIT_CUDA_CHECK(cudaMemcpyAsync(&host, ptr_, sizeof host, cudaMemcpyDeviceToHost, stream_));
    LOWBIT_CUDA_CHECK(cudaFreeAsync(ptr_, stream_));
    ptr_ = nullptr;
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return host;
  }

 private:
  cudaStream_t stream_;
  CosetStatus* ptr_ = nullptr;
};

}  // namespace

void coset_check_status(const coset::QuantizationConfig& config, const CosetStatus& status) {
  const std::string where = " (vector " + std::to_string(status.first_bad) + ")";
  switch (status.error) {
    case kCosetOk: return;
    case kCosetNonFinite: throw InvalidArgument("encode: x contains NaN or Inf" + where);
    case kCosetBadCode:
      throw InvalidArgument("decode: b has a code outside [0, q=" + std::to_string(config.q) + ")" + where);
    case kCosetBadScale:
      throw InvalidArgument("decode: T exceeds the config's " +
                            std::to_string(config.disable_overload_protection ? 0 : config.max_scaling_iterations) +
                            " scaling iterations" + where);
    default: throw RuntimeError("coset (CUDA): unknown status " + std::to_string(status.error));
  }
}

template <class T>
coset::EncodeStats coset_encode(const coset::QuantizationConfig& config, const T* x, std::size_t n,
                                std::uint8_t* codes, std::uint8_t* t, void* stream, CosetStatus* status,
                                std::uint8_t* overloaded) {
  config.validate();
  auto s = static_cast<cudaStream_t>(stream);
  require(blocks_for(n) <= 0x7fffffffu, "encode (CUDA): too many vectors");
  std::optional<OwnedStatus> owned;
  if (status == nullptr) {
    owned.emplace(s);
    status = owned->get();
  }
  reset_status(status, s);
  if (n > 0) {
    dispatch<Encode<T>::template Launch>(config, config, x, n, codes, t, s, status, overloaded);
    LOWBIT_CUDA_CHECK(cudaGetLastError());
  }
  if (!owned) return {};
  const CosetStatus host = owned->read();
  coset_check_status(config, host);
  return {static_cast<std::size_t>(host.retried), static_cast<std::size_t>(host.overloaded)};
}

template <class T>
void coset_decode(const coset::QuantizationConfig& config, const std::uint8_t* codes, const std::uint8_t* t,
                  std::size_t n, T* out, void* stream, CosetStatus* status) {
  config.validate();
  auto s = static_cast<cudaStream_t>(stream);
  require(blocks_for(n) <= 0x7fffffffu, "decode (CUDA): too many vectors");
  std::optional<OwnedStatus> owned;
  if (status == nullptr) {
    owned.emplace(s);
    status = owned->get();
  }
  reset_status(status, s);
  if (n > 0) {
    dispatch<Decode<T>::template Launch>(config, config, codes, t, n, out, s, status);
    LOWBIT_CUDA_CHECK(cudaGetLastError());
  }
  if (owned) coset_check_status(config, owned->read());
}

template coset::EncodeStats coset_encode<float>(const coset::QuantizationConfig&, const float*, std::size_t,
                                                std::uint8_t*, std::uint8_t*, void*, CosetStatus*, std::uint8_t*);
template coset::EncodeStats coset_encode<double>(const coset::QuantizationConfig&, const double*, std::size_t,
                                                 std::uint8_t*, std::uint8_t*, void*, CosetStatus*, std::uint8_t*);
template void coset_decode<float>(const coset::QuantizationConfig&, const std::uint8_t*, const std::uint8_t*,
                                  std::size_t, float*, void*, CosetStatus*);
template void coset_decode<double>(const coset::QuantizationConfig&, const std::uint8_t*, const std::uint8_t*,
                                   std::size_t, double*, void*, CosetStatus*);

}  // namespace lowbit::cuda

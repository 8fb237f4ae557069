// Runtime SIMD dispatch.
//
// Every fast kernel exists once per level: a portable scalar reference (`*_ref.cpp`) and
// AVX2 / AVX-512 versions in per-ISA files (`*_avx2.cpp`, `*_avx512.cpp`) that CMake compiles
// with per-file flags. The active level is chosen once, at first use, from CPUID; the
// environment variable LOWBIT_SIMD=scalar|avx2|avx512 overrides it (clamped to what the CPU
// and the build support, with a warning). Tests and benchmarks may switch levels with
// set_simd_level() to compare every level against the reference in one process.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

const char* simd_level_name(SimdLevel level) noexcept;
// Parses "scalar", "avx2" or "avx512" (case-insensitive); throws InvalidArgument otherwise.
SimdLevel parse_simd_level(std::string_view name);

// Levels this build contains kernels for (always includes Scalar).
std::vector<SimdLevel> compiled_simd_levels();
bool simd_level_compiled(SimdLevel level) noexcept;
// Whether this CPU (and OS) can run the level.
bool cpu_supports(SimdLevel level) noexcept;
// The best level both compiled and supported by the CPU.
SimdLevel best_simd_level() noexcept;
// Levels both compiled and supported by this CPU, lowest first: the ones tests must cover.
std::vector<SimdLevel> available_simd_levels();

// The active level used by every dispatched kernel.
SimdLevel simd_level() noexcept;
// Forces the active level. Throws InvalidArgument if the level is not available here.
void set_simd_level(SimdLevel level);

// Restores the active level when it goes out of scope; optionally forces one meanwhile.
// For tests and benchmarks that sweep every level.
class ScopedSimdLevel {
 public:
  ScopedSimdLevel() noexcept : saved_(simd_level()) {}
  explicit ScopedSimdLevel(SimdLevel level) : saved_(simd_level()) { set_simd_level(level); }
  ~ScopedSimdLevel() {
    try {
      set_simd_level(saved_);
    } catch (...) {  // saved_ was active, so it is available: unreachable
    }
  }
  ScopedSimdLevel(const ScopedSimdLevel&) = delete;
  ScopedSimdLevel& operator=(const ScopedSimdLevel&) = delete;

 private:
  SimdLevel saved_;
};

// The level the most recent dispatched kernel on this thread actually ran at, so a test can
// prove that a forced level is the one that ran. Scalar until a kernel has run.
SimdLevel last_dispatched_level() noexcept;

namespace detail {
void note_dispatch(SimdLevel level) noexcept;
}

// One function pointer per level; unset levels (not compiled) are nullptr.
// pick() returns the best implementation not above the active level and records it.
template <class Fn>
struct KernelSet {
  Fn scalar = nullptr;
  Fn avx2 = nullptr;
  Fn avx512 = nullptr;

  Fn pick() const noexcept { return pick(simd_level()); }
  Fn pick(SimdLevel level) const noexcept {
    if (level >= SimdLevel::AVX512 && avx512) {
      detail::note_dispatch(SimdLevel::AVX512);
      return avx512;
    }
    if (level >= SimdLevel::AVX2 && avx2) {
      detail::note_dispatch(SimdLevel::AVX2);
      return avx2;
    }
    detail::note_dispatch(SimdLevel::Scalar);
    return scalar;
  }
};

}  // namespace lowbit

// Use in KernelSet initialisers: the name when that ISA is compiled in, nullptr otherwise.
#if defined(LOWBIT_HAVE_AVX2)
#define LOWBIT_AVX2_FN(fn) (fn)
#else
#define LOWBIT_AVX2_FN(fn) nullptr
#endif
#if defined(LOWBIT_HAVE_AVX512)
#define LOWBIT_AVX512_FN(fn) (fn)
#else
#define LOWBIT_AVX512_FN(fn) nullptr
#endif

#include "lowbit/core/simd.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "lowbit/core/error.h"

namespace lowbit {
namespace {

bool detect(SimdLevel level) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (level) {
    case SimdLevel::Scalar:
      return true;
    case SimdLevel::AVX2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2");
    case SimdLevel::AVX512:
      // The AVX-512 level targets Skylake-X and later: F, BW, VL, DQ; VNNI is optional and
      // checked separately by kernels that want it.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return level == SimdLevel::Scalar;
#endif
}

SimdLevel initial_level() noexcept {
  SimdLevel best = best_simd_level();
  const char* env = std::getenv("LOWBIT_SIMD");
  if (env == nullptr || *env == '\0') return best;
  std::string value(env);
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (value == "auto" || value == "best") return best;
  SimdLevel requested;
  try {
    requested = parse_simd_level(value);
  } catch (const Error& e) {
    std::fprintf(stderr, "lowbit: ignoring LOWBIT_SIMD: %s; using %s\n", e.what(),
                 simd_level_name(best));
    return best;
  }
  if (requested > best) {
    std::fprintf(stderr, "lowbit: LOWBIT_SIMD=%s is not available on this machine/build; using %s\n",
                 env, simd_level_name(best));
    return best;
  }
  return requested;
}

std::atomic<int>& active_level() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

thread_local SimdLevel tls_last_dispatched = SimdLevel::Scalar;

}  // namespace

const char* simd_level_name(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::Scalar:
      return "scalar";
    case SimdLevel::AVX2:
      return "avx2";
    case SimdLevel::AVX512:
      return "avx512";
  }
  return "unknown";
}

SimdLevel parse_simd_level(std::string_view name) {
  std::string value(name);
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (value == "scalar") return SimdLevel::Scalar;
  if (value == "avx2") return SimdLevel::AVX2;
  if (value == "avx512") return SimdLevel::AVX512;
  throw InvalidArgument("unknown SIMD level '" + std::string(name) +
                        "' (expected scalar, avx2 or avx512)");
}

bool simd_level_compiled(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::Scalar:
      return true;
    case SimdLevel::AVX2:
#if defined(LOWBIT_HAVE_AVX2)
      return true;
#else
      return false;
#endif
    case SimdLevel::AVX512:
#if defined(LOWBIT_HAVE_AVX512)
      return true;
#else
      return false;
#endif
  }
  return false;
}

std::vector<SimdLevel> compiled_simd_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::AVX2, SimdLevel::AVX512}) {
    if (simd_level_compiled(l)) levels.push_back(l);
  }
  return levels;
}

bool cpu_supports(SimdLevel level) noexcept {
  static const bool avx2 = detect(SimdLevel::AVX2);
  static const bool avx512 = detect(SimdLevel::AVX512);
  switch (level) {
    case SimdLevel::Scalar:
      return true;
    case SimdLevel::AVX2:
      return avx2;
    case SimdLevel::AVX512:
      return avx512 && avx2;
  }
  return false;
}

SimdLevel best_simd_level() noexcept {
  for (SimdLevel l : {SimdLevel::AVX512, SimdLevel::AVX2}) {
    if (simd_level_compiled(l) && cpu_supports(l)) return l;
  }
  return SimdLevel::Scalar;
}

std::vector<SimdLevel> available_simd_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : compiled_simd_levels()) {
    if (cpu_supports(l)) levels.push_back(l);
  }
  return levels;
}

SimdLevel simd_level() noexcept {
  return static_cast<SimdLevel>(active_level().load(std::memory_order_relaxed));
}

void set_simd_level(SimdLevel level) {
  if (!simd_level_compiled(level)) {
    throw InvalidArgument(std::string("SIMD level '") + simd_level_name(level) +
                          "' is not compiled into this build");
  }
  if (!cpu_supports(level)) {
    throw InvalidArgument(std::string("SIMD level '") + simd_level_name(level) +
                          "' is not supported by this CPU");
  }
  active_level().store(static_cast<int>(level), std::memory_order_relaxed);
}

SimdLevel last_dispatched_level() noexcept { return tls_last_dispatched; }

namespace detail {
void note_dispatch(SimdLevel level) noexcept { tls_last_dispatched = level; }
}  // namespace detail

}  // namespace lowbit

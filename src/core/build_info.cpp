#include "lowbit/core/build_info.h"

#include "lowbit/core/simd.h"
#include "lowbit/core/thread_pool.h"
#include "lowbit/core/version.h"

#if defined(LOWBIT_WITH_CUDA)
#include "lowbit/cuda/device.h"
#endif

namespace lowbit {

const char* version() noexcept { return LOWBIT_VERSION; }

BuildInfo build_info() {
  BuildInfo info;
  info.version = LOWBIT_VERSION;
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#else
  info.compiler = "unknown";
#endif
  for (SimdLevel l : compiled_simd_levels()) info.simd_compiled.emplace_back(simd_level_name(l));
  info.simd_selected = simd_level_name(simd_level());
#if defined(LOWBIT_WITH_CUDA)
  info.cuda_compiled = true;
  info.cuda_devices = cuda::visible_device_count();
#endif
#if defined(LOWBIT_IMAGE_CODECS) && LOWBIT_IMAGE_CODECS
  info.image_codecs = true;
#endif
#if defined(LOWBIT_HAVE_ZLIB) && LOWBIT_HAVE_ZLIB
  info.gzip = true;
#endif
  info.num_threads = default_thread_pool().size();
  return info;
}

}  // namespace lowbit

// What this build of lowbit contains and what it selected at run time.
#pragma once

#include <string>
#include <vector>

namespace lowbit {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::vector<std::string> simd_compiled;  // e.g. {"scalar", "avx2", "avx512"}
  std::string simd_selected;               // the active level
  bool cuda_compiled = false;
  int cuda_devices = 0;                    // visible CUDA devices (0 when CUDA is not compiled)
  bool image_codecs = false;               // Kuat reads JPEG/PNG/WebP files (LOWBIT_IMAGE_CODECS)
  bool gzip = false;                       // Kuat reads gzip-compressed IDX files (zlib found)
  std::size_t num_threads = 0;             // size of the default thread pool
};

BuildInfo build_info();

const char* version() noexcept;

}  // namespace lowbit

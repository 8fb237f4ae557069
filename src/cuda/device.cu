// CUDA device discovery for build_info().
#include <cuda_runtime.h>

#include "lowbit/cuda/device.h"

namespace lowbit::cuda {

int visible_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error: no driver or no device is not a failure
    return 0;
  }
  return count;
}

}  // namespace lowbit::cuda

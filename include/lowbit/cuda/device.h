// CUDA device discovery (compiled when LOWBIT_CUDA=ON).
#pragma once

namespace lowbit::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no device.
int visible_device_count() noexcept;

}  // namespace lowbit::cuda

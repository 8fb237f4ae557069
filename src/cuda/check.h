// Every CUDA call is checked: a failure becomes lowbit::RuntimeError naming the call.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "lowbit/core/error.h"

#define LOWBIT_CUDA_CHECK(call)                                                                 \
  do {                                                                                          \
    cudaError_t lowbit_err_ = (call);                                                           \
    if (lowbit_err_ != cudaSuccess) {                                                           \
      throw ::lowbit::RuntimeError(std::string("CUDA error in ") + #call + ": " +               \
                                   cudaGetErrorString(lowbit_err_));                           \
    }                                                                                           \
  } while (0)

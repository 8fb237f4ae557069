"""Kernel dispatch for BitLab layers.

``KernelRegistry.get_kernel_for_config(config, device=None)`` returns the best kernel for a config on
a device: the native C++ ones (``has_cpp_backend``) for CPU tensors when the extension is built,
CUDA kernels (``has_cuda_backend``) for CUDA tensors when compiled and bound, else the pure-PyTorch
:class:`TorchReferenceKernel` (alias :data:`ReferenceKernel`, the namesake's name), which runs
everywhere.
"""

from .base import BitKernelBase
from .registry import KernelRegistry, NoSuitableKernelError
from .bitlinear_cpp import CppFloat32Kernel, CppInt8Kernel  # noqa: E402  (register themselves)
from .bitlinear_torch import CudaFloat32Kernel, CudaInt8Kernel, ReferenceKernel, TorchReferenceKernel  # noqa: E402

__all__ = [
    "BitKernelBase",
    "KernelRegistry",
    "NoSuitableKernelError",
    "TorchReferenceKernel",
    "ReferenceKernel",
    "CppInt8Kernel",
    "CppFloat32Kernel",
    "CudaInt8Kernel",
    "CudaFloat32Kernel",
]

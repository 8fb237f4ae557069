"""Kernel dispatch for BitLab layers.

``KernelRegistry.get_kernel_for_config(config)`` returns the best available kernel: the native
C++ ones (``has_cpp_backend``) when the extension is built, else the PyTorch reference.
"""

from .base import BitKernelBase
from .registry import KernelRegistry
from .bitlinear_torch import TorchReferenceKernel  # noqa: E402  (registers itself)
from .bitlinear_cpp import CppFloat32Kernel, CppInt8Kernel  # noqa: E402  (register themselves)

__all__ = ["BitKernelBase", "KernelRegistry", "TorchReferenceKernel", "CppInt8Kernel", "CppFloat32Kernel"]

"""Pure-PyTorch kernel (every config, every device) and the CUDA kernels' registry entries."""

from __future__ import annotations

from lowbit import _cuda_ops

from ..ops.torch_ops import fixed_order_sums, gemm_int8  # noqa: F401  (re-exported: the reference definitions)
from .bitlinear_cpp import _PackedKernel
from .registry import KernelRegistry


@KernelRegistry.register(priority=0)
class TorchReferenceKernel(_PackedKernel):
    """Every config on every device, in plain PyTorch (:mod:`bitcore.ops.torch_ops`); bit-identical
    to the C++ kernels on CPU tensors. The namesake calls this kernel ``ReferenceKernel``."""

    backend = "torch"


#: The namesake's name for the fallback kernel.
ReferenceKernel = TorchReferenceKernel


class _CudaKernelBase(_PackedKernel):
    """Compiled CUDA kernels, bound under ``op`` in :mod:`lowbit._cuda_ops` (another op that has no
    CUDA kernel, such as packing, runs in PyTorch on the GPU)."""

    has_cuda_backend = True
    backend = "cuda"
    device_types = ("cuda",)
    op = ""

    @classmethod
    def is_available(cls, device=None) -> bool:
        return _cuda_ops.get(cls.op) is not None


@KernelRegistry.register(activation_dtype="int8", priority=100)
class CudaInt8Kernel(_CudaKernelBase):
    """W2A8 CUDA kernel (``__dp4a`` on packed codes, src/cuda/bitlab_gemm.cu) when compiled and bound."""

    op = "bitlab.linear_int8"


@KernelRegistry.register(activation_dtype="float32", priority=100)
class CudaFloat32Kernel(_CudaKernelBase):
    """Float-activation CUDA kernel when compiled and bound."""

    op = "bitlab.linear_f32"

"""Native kernels: packed I2_S256 weights, AVX2 / AVX-512 VNNI, multi-threaded; CPU tensors only."""

from __future__ import annotations

from ..ops import dispatch
from .base import BitKernelBase
from .registry import KernelRegistry


class _PackedKernel(BitKernelBase):
    """``linear`` through the op of the kernel's backend (int8 or float activations by config)."""

    def linear(self, x2d, packed, in_features, scales, bias):
        self._check_device(x2d, "the input")
        if self.config.activation_dtype == "int8":
            return self._call("linear_int8", x2d, packed, in_features, scales, bias,
                              self.config.activation_granularity)
        return self._call("linear_f32", x2d, packed, in_features, scales, bias)


class _CppKernelBase(_PackedKernel):
    has_cpp_backend = True
    backend = "cpp"
    device_types = ("cpu",)

    @classmethod
    def is_available(cls, device=None) -> bool:
        return dispatch.cpp_available()


@KernelRegistry.register(activation_dtype="int8", priority=100)
class CppInt8Kernel(_CppKernelBase):
    """int8 activations: vpdpbusd / maddubs on packed 2-bit codes, exact int32 sums (CPU)."""


@KernelRegistry.register(activation_dtype="float32", priority=100)
class CppFloat32Kernel(_CppKernelBase):
    """float32 activations: masked additions and subtractions in a fixed order (CPU)."""

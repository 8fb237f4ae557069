"""Native kernels: packed I2_S256 weights, AVX2 / AVX-512 VNNI, multi-threaded."""

from __future__ import annotations

import torch

from .base import BitKernelBase
from .registry import KernelRegistry

try:
    from .bindings import bitlinear_cpp as _cpp
except ImportError:  # the extension is not built: the registry falls back to the reference
    _cpp = None


class _CppKernelBase(BitKernelBase):
    has_cpp_backend = True

    @classmethod
    def is_available(cls) -> bool:
        return _cpp is not None

    def quantize_weights(self, weight):
        return _cpp.quantize_weights(weight.detach().float().contiguous(), self.config.weight_granularity)

    def pack(self, trits):
        return _cpp.pack_2bit(trits)

    def unpack(self, packed, in_features):
        return _cpp.unpack_2bit(packed, in_features)

    def to_storage(self, packed, in_features):
        return _cpp.pack_base3(self.unpack(packed, in_features))

    def from_storage(self, data, rows, cols):
        if data.dim() != 1 or data.dtype != torch.uint8:
            raise ValueError(f"packed_weight: expected a 1-D uint8 tensor, got {data.dtype} {tuple(data.shape)}")
        return _cpp.pack_2bit(_cpp.unpack_base3(data, rows, cols))


@KernelRegistry.register(activation_dtype="int8", priority=100)
class CppInt8Kernel(_CppKernelBase):
    """int8 activations: vpdpbusd / maddubs on packed 2-bit codes, exact int32 sums."""

    def linear(self, x2d, packed, in_features, scales, bias):
        return _cpp.bitlinear_int8(x2d, packed, in_features, scales, bias, self.config.activation_granularity)


@KernelRegistry.register(activation_dtype="float32", priority=100)
class CppFloat32Kernel(_CppKernelBase):
    """float32 activations: masked additions and subtractions in a fixed order."""

    def linear(self, x2d, packed, in_features, scales, bias):
        return _cpp.bitlinear_f32(x2d, packed, in_features, scales, bias)

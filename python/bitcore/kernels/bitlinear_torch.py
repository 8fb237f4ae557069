"""Pure-PyTorch reference kernel: the exact definition the C++ kernels must reproduce."""

from __future__ import annotations

from typing import Optional

import torch

from ..ops import packing, quant
from .base import BitKernelBase
from .registry import KernelRegistry


def _require_finite(x2d: torch.Tensor) -> None:
    if not bool(torch.isfinite(x2d).all()):
        raise ValueError("bitlinear: input contains NaN or Inf")


def _epilogue(values: torch.Tensor, scales: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    y = values * scales.reshape(1, -1)
    return y if bias is None else y + bias.reshape(1, -1)


def int8_accumulate(xq: torch.Tensor, trits: torch.Tensor) -> torch.Tensor:
    """Exact int32 ``x_q @ t^T`` (float64 products and sums of small integers are exact)."""
    return (xq.double() @ trits.double().t()).to(torch.int32)


def fixed_order_sums(x2d: torch.Tensor, trits: torch.Tensor) -> torch.Tensor:
    """Float path of gemm.h: 64 partial sums over k % 64 in increasing k, then a halving tree."""
    m, k = x2d.shape
    kp = packing.padded_cols(k)
    x = torch.zeros((m, kp), dtype=torch.float32)
    x[:, :k] = x2d
    t = torch.zeros((trits.shape[0], kp), dtype=torch.float32)
    t[:, :k] = trits.float()
    x = x.reshape(m, 1, kp // 64, 64)
    t = t.reshape(1, -1, kp // 64, 64)
    p = torch.zeros((m, t.shape[1], 64), dtype=torch.float32)
    for c in range(kp // 64):  # x * t is exactly +x, -x or a zero, so p + x * t is p +- x or p
        p = p + x[:, :, c, :] * t[:, :, c, :]
    h = 32
    while h >= 1:
        p = p[..., :h] + p[..., h : 2 * h]
        h //= 2
    return p[..., 0]


@KernelRegistry.register(priority=0)
class TorchReferenceKernel(BitKernelBase):
    """Every config, in plain PyTorch; bit-identical to the C++ kernels."""

    has_cpp_backend = False

    def linear(self, x2d, packed, in_features, scales, bias):
        _require_finite(x2d)
        trits = packing.unpack_2bit(packed, in_features)
        if self.config.activation_dtype == "int8":
            xq, act_scale = quant.quantize_activations(x2d, self.config.activation_granularity)
            y = int8_accumulate(xq, trits).float() * act_scale.reshape(-1, 1)
        else:
            y = fixed_order_sums(x2d.float(), trits)
        return _epilogue(y, scales.float(), None if bias is None else bias.float())

"""Functional ternary linear layers."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..config import BitQuantConfig
from . import quant


def bitlinear(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, config: Optional[BitQuantConfig] = None
) -> torch.Tensor:
    """Inference: quantize and pack ``weight`` and run the best kernel for ``config`` on ``x`` (..., K)."""
    from ..kernels import KernelRegistry  # the kernels import ops: resolve at call time

    return KernelRegistry.get_kernel_for_config(config or BitQuantConfig())(x, weight, bias)


def bitlinear_qat(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, config: Optional[BitQuantConfig] = None
) -> torch.Tensor:
    """Training: quantized weights (and int8 activations) forward, straight-through gradients."""
    config = config or BitQuantConfig()
    w = quant.fake_quantize_weights(weight, config.weight_granularity)
    if config.activation_dtype == "int8":
        x = quant.fake_quantize_activations(x, config.activation_granularity)
    return F.linear(x, w, bias)

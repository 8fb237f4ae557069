"""QLinear: a linear layer trained with HNLQ-quantized weights (straight-through estimator)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import QuantizationConfig
from .lattices import lattice_for
from .quant import optimal_beta, quantize_tensor


def quantize_weight_rows(weight: torch.Tensor, config: QuantizationConfig) -> torch.Tensor:
    """Weight (out, in) quantized in blocks of d along the input dimension, one scale per row.

    Row r is divided by ``std_r * optimal_beta(...)``, the scale that minimises the MSE of a
    Gaussian row (overloads are then rare and handled by T), quantized with ``config`` (whose
    ``beta`` multiplies that scale), and multiplied back. No gradient flows through this.
    """
    with torch.no_grad():
        w = weight.detach().to(torch.float32).cpu()
        std = w.pow(2).mean(dim=1).sqrt()  # rms: weights are centred
        std = torch.where(std > 0, std, torch.ones_like(std))
        row_scale = std * optimal_beta(config.lattice_type, config.q, config.M)
        out = quantize_tensor(w, lattice_for(config.lattice_type), config, scale=row_scale)
    return out.to(device=weight.device, dtype=weight.dtype)


class QLinear(nn.Linear):
    """``nn.Linear`` whose forward pass uses HNLQ-quantized weights.

    Quantization-aware training: the forward uses ``W^ = Q(W)`` and the backward passes the
    gradient straight through to the float weights (``W + (W^ - W).detach()``). With
    ``quantize_weights=False`` the layer is a plain linear layer. ``quantized_weight()`` returns
    ``W^`` (what a deployed model would decode).
    """

    def __init__(self, in_features: int, out_features: int, config: QuantizationConfig,
                 quantize_weights: bool = True, bias: bool = True, device=None, dtype=None) -> None:
        if not isinstance(config, QuantizationConfig):
            raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
        if config.with_dither:
            raise ValueError("config: with_dither is not supported for weights (the dither would change every step)")
        factory = {}
        if device is not None:
            factory["device"] = device
        if dtype is not None:
            factory["dtype"] = dtype
        super().__init__(in_features, out_features, bias=bias, **factory)
        self.config = config
        self.quantize_weights = bool(quantize_weights)

    def quantized_weight(self) -> torch.Tensor:
        return quantize_weight_rows(self.weight, self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_weights:
            return F.linear(x, self.weight, self.bias)
        w = self.weight
        w_q = w + (self.quantized_weight() - w).detach()  # straight-through estimator
        return F.linear(x, w_q, self.bias)

    def extra_repr(self) -> str:
        c = self.config
        return (f"{super().extra_repr()}, lattice={c.lattice_type}, q={c.q}, M={c.M}, "
                f"quantize_weights={self.quantize_weights}")

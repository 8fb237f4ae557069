"""BitLinear: a drop-in ternary replacement for torch.nn.Linear."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitcore.ops import bitlinear_qat

from .base import BitLayerBase


class BitLinear(BitLayerBase):
    """``y = x W^T + b`` with ternary ``W`` (BitNet b1.58).

    * ``train()``: quantization-aware training. The forward pass uses the quantized weights (and
      int8 activations), the backward pass updates the float latent ``weight`` (straight-through).
    * ``eval()``: the packed kernel (C++ when built) on cached packed weights.
    * :meth:`deploy`: drop the latent weights; ``state_dict()`` then stores 1.6 bits per weight.

    Inputs have any leading shape ``(..., in_features)`` and a floating dtype.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, quant_config: Optional[BitQuantConfig] = None
    ) -> None:
        super().__init__(in_features, out_features, quant_config)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation."""
        if self.weight is None:
            raise ValueError("BitLinear.reset_parameters: the layer is deployed (no latent weights)")
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linear(cls, linear: nn.Linear, quant_config: Optional[BitQuantConfig] = None) -> "BitLinear":
        """A BitLinear with a copy of ``linear``'s weights (and bias) as latent weights."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"BitLinear.from_linear: expected nn.Linear, got {type(linear).__name__}")
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, quant_config)
        with torch.no_grad():
            layer.weight.copy_(linear.weight.detach().float())
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach().float())
        return layer.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if self.training and not self.deployed:
            return bitlinear_qat(x.to(self.weight.dtype), self.weight, self.bias, self.quant_config)
        packed, scales = self.packed_weights()
        x2d = x.detach().reshape(-1, self.in_features).to(torch.float32).contiguous()
        if x2d.shape[0] == 0:
            y2d = torch.zeros((0, self.out_features), dtype=torch.float32)
        else:
            bias = None if self.bias is None else self.bias.detach().float().contiguous()
            y2d = self.kernel.linear(x2d, packed, self.in_features, scales, bias)
        return y2d.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"quant_config={self.quant_config!r}, deployed={self.deployed}"
        )

"""BitMLP: a stack of BitLinear layers with ReLU and dropout between them."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import resolve_config
from bitlayers.bitlinear import BitLinear


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"BitMLPConfig: {name} must be a positive int, got {value!r}")
    return value


class BitMLPConfig:
    """Shape of a :class:`BitMLP`.

    Args:
        n_layers: number of BitLinear layers (1 = a single in_channels -> out_channels layer).
        in_channels, hidden_dim, out_channels: layer widths.
        dropout: dropout probability after each hidden activation, in [0, 1).
        quant_config: the BitQuantConfig of every layer (default: int8, per tensor).
        bias: whether the layers have biases.
    """

    model_type = "bit_mlp"

    def __init__(
        self,
        n_layers: int,
        in_channels: int,
        hidden_dim: int,
        out_channels: int,
        dropout: float = 0.0,
        quant_config: Optional[BitQuantConfig] = None,
        bias: bool = True,
    ) -> None:
        self.n_layers = _positive_int("n_layers", n_layers)
        self.in_channels = _positive_int("in_channels", in_channels)
        self.hidden_dim = _positive_int("hidden_dim", hidden_dim)
        self.out_channels = _positive_int("out_channels", out_channels)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"BitMLPConfig: dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.quant_config = resolve_config(quant_config)
        if not isinstance(bias, bool):
            raise ValueError(f"BitMLPConfig: bias must be a bool, got {bias!r}")
        self.bias = bias

    def layer_sizes(self):
        """[(in, out)] of each BitLinear layer."""
        widths = [self.in_channels] + [self.hidden_dim] * (self.n_layers - 1) + [self.out_channels]
        return list(zip(widths[:-1], widths[1:]))

    def __repr__(self) -> str:
        return (
            f"BitMLPConfig(n_layers={self.n_layers}, in_channels={self.in_channels}, hidden_dim={self.hidden_dim}, "
            f"out_channels={self.out_channels}, dropout={self.dropout}, quant_config={self.quant_config!r}, "
            f"bias={self.bias})"
        )


class BitMLP(nn.Module):
    """``BitLinear -> ReLU -> Dropout -> ... -> BitLinear`` over inputs ``(..., in_channels)``."""

    def __init__(self, config: BitMLPConfig) -> None:
        super().__init__()
        if not isinstance(config, BitMLPConfig):
            raise ValueError(f"BitMLP: expected a BitMLPConfig, got {type(config).__name__}")
        self.config = config
        modules = []
        sizes = config.layer_sizes()
        for i, (fan_in, fan_out) in enumerate(sizes):
            modules.append(BitLinear(fan_in, fan_out, bias=config.bias, quant_config=config.quant_config))
            if i + 1 < len(sizes):
                modules.append(nn.ReLU())
                modules.append(nn.Dropout(config.dropout))
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def bit_layers(self):
        return [m for m in self.layers if isinstance(m, BitLinear)]

    def deploy(self) -> "BitMLP":
        for layer in self.bit_layers():
            layer.deploy()
        return self.eval()

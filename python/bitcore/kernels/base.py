"""The interface every BitLab linear kernel implements.

A kernel turns float weights into the packed I2_S256 layout (plus one float scale per output
row) and computes ``y = x @ W_q^T * scales + bias`` from it; which arithmetic it uses (int8 or
float activations, per-tensor or per-row activation scales) comes from its config.
"""

from __future__ import annotations

import abc
from typing import Optional, Tuple

import torch

from ..config import BitQuantConfig
from ..ops import packing, quant


class BitKernelBase(abc.ABC):
    """Base class: pure-PyTorch packing and quantization; subclasses provide :meth:`linear`."""

    #: True when the kernel runs native C++ code (lowbit._native.bitlab).
    has_cpp_backend: bool = False

    def __init__(self, config: BitQuantConfig) -> None:
        if not isinstance(config, BitQuantConfig):
            raise ValueError(f"{type(self).__name__}: config must be a BitQuantConfig, got {type(config).__name__}")
        self.config = config

    @classmethod
    def is_available(cls) -> bool:
        """Whether the kernel can run here (native kernels need the extension)."""
        return True

    def quantize_weights(self, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(trits int8 ``[N, K]``, scales float32 ``[N]``)."""
        return quant.quantize_weights(weight, self.config.weight_granularity)

    def pack(self, trits: torch.Tensor) -> torch.Tensor:
        return packing.pack_2bit(trits)

    def unpack(self, packed: torch.Tensor, in_features: int) -> torch.Tensor:
        return packing.unpack_2bit(packed, in_features)

    def to_storage(self, packed: torch.Tensor, in_features: int) -> torch.Tensor:
        """I2_S256 ``[N, Kp / 4]`` -> TQ1_B3 bytes (1.6 bits per weight, for files and state dicts)."""
        return packing.pack_base3(self.unpack(packed, in_features))

    def from_storage(self, data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """TQ1_B3 bytes -> I2_S256 ``[rows, Kp / 4]``; ValueError on corrupt bytes."""
        return self.pack(packing.unpack_base3(data, rows, cols))

    @abc.abstractmethod
    def linear(
        self,
        x2d: torch.Tensor,
        packed: torch.Tensor,
        in_features: int,
        scales: torch.Tensor,
        bias: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """``[M, K]`` float32 contiguous -> ``[M, N]`` float32."""

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Functional form: quantize and pack ``weight``, then apply to ``x`` of shape ``(..., K)``."""
        trits, scales = self.quantize_weights(weight)
        k = weight.shape[1]
        x2d = x.detach().reshape(-1, k).float().contiguous()
        y = self.linear(x2d, self.pack(trits), k, scales, None if bias is None else bias.detach().float())
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

"""``BitMLPModel`` ("bitmlp"): the namesake's image-classification MLP, built from lowbit layers."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Iterable, Optional, Tuple

import torch
import torch.nn as nn

from ..bnn.bitlayers import BitLinear
from .auto import register_bitmodel
from .base import BaseBitModel
from .config import BaseBitModelConfig, positive_int, register_bitconfig
from .mixins import ImageClassificationMixin
from .tasks import ModelTask

# The namesake's bitlab.bitmodels.mlp was a folder (mlp.config, mlp.model): a search path makes
# this module a package, so those submodules are served by bitlab.bitmodels._namesake_paths.
__path__: list = []


@register_bitconfig("bitmlp")
@dataclasses.dataclass(frozen=True)
class BitMLPConfig(BaseBitModelConfig):
    """``input_size`` (flattened input features, default 784), ``hidden_dims`` (tuple of hidden
    widths, default ``(256, 256)``), ``num_classes`` (default 10), ``quant_type`` of the hidden
    ``BitLinear`` layers (default None: float layers, as upstream; ``"ai8pc_wpt"`` for BitNet b1.58).

    Raises:
        ValueError: non-positive sizes, ``hidden_dims`` not a sequence of positive ints, a
        ``quant_type`` that :class:`bitlab.bnn.BitLinear` does not support.
    """

    task: str = ModelTask.IMAGE_CLASSIFICATION.value
    model_type: str = "bitmlp"
    input_size: int = 28 * 28
    hidden_dims: Tuple[int, ...] = (256, 256)
    num_classes: int = 10
    quant_type: Optional[str] = None

    def _validate(self) -> None:
        from .._quant_type import quant_config_for

        positive_int("BitMLPConfig", "input_size", self.input_size)
        positive_int("BitMLPConfig", "num_classes", self.num_classes)
        if isinstance(self.hidden_dims, (str, bytes)) or not isinstance(self.hidden_dims, Iterable):
            raise ValueError(f"BitMLPConfig: hidden_dims must be a sequence of positive ints, got {self.hidden_dims!r}")
        dims = tuple(self.hidden_dims)
        for d in dims:
            positive_int("BitMLPConfig", "hidden_dims entries", d)
        object.__setattr__(self, "hidden_dims", dims)
        quant_config_for(self.quant_type)


class RMSNorm(nn.Module):
    """``x * rsqrt(mean(x^2, last dim) + eps) * weight`` with ``torch.nn.RMSNorm``'s default
    ``eps=None`` meaning ``torch.finfo(x.dtype).eps`` (``nn.RMSNorm`` is absent from torch < 2.4)."""

    def __init__(self, dim: int, eps: Optional[float] = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight


class BitMLP(nn.Module):
    """``net = [BitLinear(d_in, h, quant_type), RMSNorm(h), ReLU] per hidden width, then a float
    nn.Linear(h_last, num_classes)``; the input ``[B, ...]`` is flattened to ``[B, input_size]``.
    An empty ``hidden_dims`` means ``(256,)``, as upstream. Output: logits ``[B, num_classes]``."""

    def __init__(self, input_size: int, hidden_dims: Iterable[int], num_classes: int,
                 quant_type: Optional[str] = None) -> None:
        super().__init__()
        dims = list(hidden_dims) or [256]
        self.quant_type = quant_type
        layers = []
        prev = input_size
        for width in dims:
            layers += [BitLinear(prev, width, bias=True, quant_type=quant_type), RMSNorm(width), nn.ReLU(inplace=True)]
            prev = width
        layers.append(nn.Linear(prev, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


@register_bitmodel("bitmlp")
class BitMLPModel(ImageClassificationMixin, BaseBitModel):
    """``BitMLPModel(config=None, **overrides)``: :class:`BitMLP` as ``self.model``; ``forward(x)``
    -> logits ``[B, num_classes]``; ``predict(x)``; ``deploy()`` packs the hidden BitLinear layers."""

    config_cls: ClassVar[type] = BitMLPConfig

    def __init__(self, config: Optional[BitMLPConfig] = None, **overrides: Any) -> None:
        super().__init__(config=config, **overrides)

    def build_model(self, config: BitMLPConfig) -> nn.Module:
        return BitMLP(config.input_size, config.hidden_dims, config.num_classes, config.quant_type)

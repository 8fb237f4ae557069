"""BitLab layers: drop-in ternary replacements for torch.nn layers."""

from .base import BitLayerBase
from .bitlinear import BitLinear

__all__ = ["BitLayerBase", "BitLinear"]

"""BitLab layers: drop-in ternary replacements for torch.nn layers.

``LAYER_REGISTRY`` / ``register_layer`` are the namesake's name -> class registry
(``LAYER_REGISTRY["BitLinear"] is BitLinear``).
"""

from lowbit._deps import require_torch

require_torch("bitlayers")  # a clear ImportError, naming the fix, when PyTorch is missing

from .registry import LAYER_REGISTRY, register_layer
from .base import BitLayerBase
from .bitlinear import BitLinear

__all__ = ["LAYER_REGISTRY", "register_layer", "BitLayerBase", "BitLinear"]

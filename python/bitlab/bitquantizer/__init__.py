"""``bitlab.bitquantizer``: the namesake's fake quantizers, in plain PyTorch.

``BitQuantizer(eps, quant_type)(x, w) -> (dqx, dqw)``; the registries in :mod:`.registry`;
the functions in :mod:`.act` and :mod:`.weight` (each returns ``(scale, q)``, ``scale * q``
dequantizes). These follow the namesake's formulas (with its ``eps``); lowbit's layers
(``bitlab.bnn.BitLinear``) quantize with lowbit's own kernels instead (no ``eps``: see
docs/migrating.md).
"""

from .act import (quantize_act_ai8pc, quantize_act_ai8pg, quantize_act_ai8pg128, quantize_act_ai8pg256,
                  quantize_activation)
from .bitquantizer import BitQuantizer, parse_quant_type, quantize_act, quantize_weight
from .quantizers import (NoQuantizer, Quantize, Quantizer_ai8pc_wpt, Quantizer_ai8pg_wpt, QuantizerAi8pcWpt,
                         QuantizerAi8pg128Wpt, QuantizerAi8pg256Wpt, QuantizerAi8pgWpt, QuantizerFunction)
from .registry import (ACT_QUANT_REGISTRY, QUANTIZER_REGISTRY, WEIGHT_QUANT_REGISTRY, get_act_quant_fn,
                       get_quantizer, get_weight_quant_fn)
from .weight import quantize_weight_wpt

__all__ = [
    "BitQuantizer", "quantize_weight", "quantize_act", "quantize_activation", "parse_quant_type",
    "QuantizerFunction", "NoQuantizer", "Quantize", "QuantizerAi8pcWpt", "QuantizerAi8pgWpt",
    "QuantizerAi8pg128Wpt", "QuantizerAi8pg256Wpt", "Quantizer_ai8pc_wpt", "Quantizer_ai8pg_wpt",
    "quantize_weight_wpt", "quantize_act_ai8pc", "quantize_act_ai8pg",
    "quantize_act_ai8pg128", "quantize_act_ai8pg256",
    "QUANTIZER_REGISTRY", "WEIGHT_QUANT_REGISTRY", "ACT_QUANT_REGISTRY",
    "get_quantizer", "get_weight_quant_fn", "get_act_quant_fn",
]

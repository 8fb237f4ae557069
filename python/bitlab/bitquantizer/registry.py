"""Name -> function / class registries of ``bitlab.bitquantizer`` (the namesake's keys).

* ``WEIGHT_QUANT_REGISTRY``: ``"wpt"`` -> ``fn(w, eps=1e-6) -> (scale, q)``;
* ``ACT_QUANT_REGISTRY``: ``"ai8pc"``, ``"ai8pg"`` (groups of 128), ``"ai8pg128"``, ``"ai8pg256"``
  -> ``fn(x, eps=1e-6) -> (scale, q)``;
* ``QUANTIZER_REGISTRY``: ``"<act>_wpt"`` for each activation scheme, and ``"none"`` (the identity)
  -> autograd Function classes, ``cls.apply(x, w, eps=1e-6) -> (dqx, dqw)``.

No quantization is the ``"none"`` quantizer (or ``BitQuantizer(quant_type=None)``), not a
``"none"`` entry of the function registries (every function there quantizes).

In every ``(scale, q)`` pair, ``scale * q`` is the dequantized tensor (see :mod:`.act`, :mod:`.weight`).
"""

from __future__ import annotations

from typing import Callable, Dict

from .act import quantize_act_ai8pc, quantize_act_ai8pg, quantize_act_ai8pg128, quantize_act_ai8pg256
from .quantizers import NoQuantizer, QuantizerAi8pcWpt, QuantizerAi8pg128Wpt, QuantizerAi8pg256Wpt, QuantizerAi8pgWpt
from .weight import quantize_weight_wpt

WEIGHT_QUANT_REGISTRY: Dict[str, Callable] = {
    "wpt": quantize_weight_wpt,
}

ACT_QUANT_REGISTRY: Dict[str, Callable] = {
    "ai8pc": quantize_act_ai8pc,
    "ai8pg": quantize_act_ai8pg,
    "ai8pg128": quantize_act_ai8pg128,
    "ai8pg256": quantize_act_ai8pg256,
}

QUANTIZER_REGISTRY: Dict[str, type] = {
    "ai8pc_wpt": QuantizerAi8pcWpt,
    "ai8pg_wpt": QuantizerAi8pgWpt,
    "ai8pg128_wpt": QuantizerAi8pg128Wpt,
    "ai8pg256_wpt": QuantizerAi8pg256Wpt,
    "none": NoQuantizer,
}


def _lookup(registry: dict, kind: str, key):
    if key not in registry:
        raise ValueError(f"Unknown {kind} {key!r}. Available: {sorted(registry)}")
    return registry[key]


def get_quantizer(quant_type: str) -> type:
    """The autograd Function class registered as ``quant_type``; ValueError listing the keys otherwise."""
    return _lookup(QUANTIZER_REGISTRY, "quantizer type", quant_type)


def get_weight_quant_fn(weight_quant_type: str) -> Callable:
    """The weight function registered as ``weight_quant_type``; ValueError listing the keys otherwise."""
    return _lookup(WEIGHT_QUANT_REGISTRY, "weight quant type", weight_quant_type)


def get_act_quant_fn(act_quant_type: str) -> Callable:
    """The activation function registered as ``act_quant_type``; ValueError listing the keys otherwise."""
    return _lookup(ACT_QUANT_REGISTRY, "activation quant type", act_quant_type)


__all__ = ["QUANTIZER_REGISTRY", "WEIGHT_QUANT_REGISTRY", "ACT_QUANT_REGISTRY", "get_quantizer",
           "get_weight_quant_fn", "get_act_quant_fn"]

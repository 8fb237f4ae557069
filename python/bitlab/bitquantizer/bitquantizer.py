"""``BitQuantizer``: fake-quantize an activation / weight pair with a named scheme."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._checks import check_eps
from .quantizers import NoQuantizer, QuantizerFunction
from .registry import ACT_QUANT_REGISTRY, WEIGHT_QUANT_REGISTRY, get_act_quant_fn, get_weight_quant_fn


def parse_quant_type(quant_type: Optional[str]) -> Tuple[str, str]:
    """``"ai8pc_wpt"`` -> ``("ai8pc", "wpt")``; None or ``"none"`` -> ``("none", "none")`` (case-insensitive).

    Raises:
        TypeError: not a str or None. ValueError: no ``"_"`` separating the two schemes.
    """
    if quant_type is None:
        return "none", "none"
    if not isinstance(quant_type, str):
        raise TypeError(f"quant_type must be a str or None, got {type(quant_type).__name__}")
    text = quant_type.lower()
    if text == "none":
        return "none", "none"
    act, sep, weight = text.rpartition("_")
    if not sep or not act:
        raise ValueError(f"Invalid quant_type {quant_type!r}: expected '<act_quant_type>_<weight_quant_type>', "
                         f"e.g. 'ai8pc_wpt' (activation schemes {sorted(ACT_QUANT_REGISTRY)}, weight schemes "
                         f"{sorted(WEIGHT_QUANT_REGISTRY)})")
    return act, weight


class BitQuantizer:
    """Fake quantizer of an ``(activation, weight)`` pair: ``BitQuantizer(eps=1e-6, quant_type="ai8pc_wpt")``.

    ``quantizer(x, w) -> (dqx, dqw)``: ``x`` and ``w`` quantized with the activation and weight
    schemes of ``quant_type`` (see :mod:`bitlab.bitquantizer.registry`) and dequantized
    (``scale * q``), same shapes and dtypes as the inputs; the backward pass is the identity
    (straight-through). Then ``F.linear(dqx, dqw, bias)`` is a quantization-aware linear layer.
    ``quant_type=None`` or ``"none"``: no quantization (``(x, w)`` unchanged, as the ``"none"``
    quantizer). Attributes: ``eps``, ``quant_type``, ``act_quant_type``, ``weight_quant_type``,
    ``act_quant_fn``, ``weight_quant_fn`` (None for no quantization).

    Raises:
        ValueError: an unknown scheme (the message lists the registered ones), ``eps`` negative
        or not finite. TypeError: ``quant_type`` neither a str nor None.
    """

    def __init__(self, eps: float = 1e-6, quant_type: Optional[str] = "ai8pc_wpt") -> None:
        self.eps = check_eps(eps)
        self.quant_type = quant_type
        self.act_quant_type, self.weight_quant_type = parse_quant_type(quant_type)
        self.identity = (self.act_quant_type, self.weight_quant_type) == ("none", "none")
        if self.identity:
            self.weight_quant_fn = self.act_quant_fn = None
        else:
            self.weight_quant_fn = get_weight_quant_fn(self.weight_quant_type)
            self.act_quant_fn = get_act_quant_fn(self.act_quant_type)

    def __call__(self, x: torch.Tensor, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.identity:
            return NoQuantizer.apply(x, w, self.eps)
        return QuantizerFunction.apply(x, w, self.weight_quant_fn, self.act_quant_fn, self.eps)

    def __repr__(self) -> str:
        return f"BitQuantizer(eps={self.eps}, quant_type={self.quant_type!r})"


def quantize_weight(w: torch.Tensor, eps: float = 1e-6, weight_quant_type: str = "wpt"):
    """``(scale, q)`` of ``w`` under the weight scheme ``weight_quant_type`` (default ``"wpt"``)."""
    return get_weight_quant_fn(weight_quant_type)(w, eps)


def quantize_act(x: torch.Tensor, eps: float = 1e-6, act_quant_type: str = "ai8pc"):
    """``(scale, q)`` of ``x`` under the activation scheme ``act_quant_type`` (default ``"ai8pc"``)."""
    return get_act_quant_fn(act_quant_type)(x, eps)

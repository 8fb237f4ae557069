"""Fake-quantization autograd functions: forward quantizes and dequantizes, backward is the identity.

``SomeQuantizer.apply(x, w, eps=1e-6) -> (dqx, dqw)`` with ``dqx = sx * qx`` and ``dqw = sw * qw``
from the activation and weight functions of the scheme; gradients pass straight through
(straight-through estimator): ``grad_x = grad_dqx``, ``grad_w = grad_dqw``.
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch.autograd import Function

from .act import quantize_act_ai8pc, quantize_act_ai8pg, quantize_act_ai8pg128, quantize_act_ai8pg256
from .weight import quantize_weight_wpt

QuantFn = Callable[..., Tuple[torch.Tensor, torch.Tensor]]


def _fake_quantize(x, w, weight_fn: QuantFn, act_fn: QuantFn, eps: float):
    sw, qw = weight_fn(w, eps)
    sx, qx = act_fn(x, eps)
    return sx * qx, sw * qw


class QuantizerFunction(Function):
    """Generic fake quantizer: ``QuantizerFunction.apply(x, w, weight_quant_fn, act_quant_fn, eps=1e-6)``."""

    @staticmethod
    def forward(ctx, x, w, weight_quant_fn: QuantFn, act_quant_fn: QuantFn, eps: float = 1e-6):
        return _fake_quantize(x, w, weight_quant_fn, act_quant_fn, eps)

    @staticmethod
    def backward(ctx, grad_dqx, grad_dqw):
        return grad_dqx, grad_dqw, None, None, None


def _scheme(name: str, act_fn: QuantFn, weight_fn: QuantFn, doc: str) -> type:
    def forward(ctx, x, w, eps: float = 1e-6):
        return _fake_quantize(x, w, weight_fn, act_fn, eps)

    def backward(ctx, grad_dqx, grad_dqw):
        return grad_dqx, grad_dqw, None

    return type(name, (Function,), {"__doc__": doc, "__module__": __name__,
                                    "forward": staticmethod(forward), "backward": staticmethod(backward)})


QuantizerAi8pcWpt = _scheme("QuantizerAi8pcWpt", quantize_act_ai8pc, quantize_weight_wpt,
                            "int8 activations per row (ai8pc) x ternary weights per tensor (wpt).")
QuantizerAi8pgWpt = _scheme("QuantizerAi8pgWpt", quantize_act_ai8pg, quantize_weight_wpt,
                            "int8 activations per group of 128 (ai8pg) x ternary weights per tensor (wpt).")
QuantizerAi8pg128Wpt = _scheme("QuantizerAi8pg128Wpt", quantize_act_ai8pg128, quantize_weight_wpt,
                               "int8 activations per group of 128 x ternary weights per tensor (wpt).")
QuantizerAi8pg256Wpt = _scheme("QuantizerAi8pg256Wpt", quantize_act_ai8pg256, quantize_weight_wpt,
                               "int8 activations per group of 256 x ternary weights per tensor (wpt).")


class NoQuantizer(Function):
    """Identity: ``NoQuantizer.apply(x, w, eps=1e-6) -> (x, w)`` (values unchanged, gradients pass)."""

    @staticmethod
    def forward(ctx, x, w, eps: float = 1e-6):
        return x.view_as(x), w.view_as(w)

    @staticmethod
    def backward(ctx, grad_x, grad_w):
        return grad_x, grad_w, None


# The namesake's older class names
Quantizer_ai8pc_wpt = QuantizerAi8pcWpt
Quantizer_ai8pg_wpt = QuantizerAi8pgWpt
Quantize = QuantizerAi8pcWpt

"""Functional ternary linear layers (the namesake's ``bitcore.ops.bitlinear`` module).

* :func:`train_forward` - quantization-aware training: fake-quantized weights (and int8
  activations), straight-through gradients (BitNet b1.58, Ma et al. 2024, arXiv:2402.17764).
* :func:`quantize_weights` - ``(qweight_scale, qweight)`` for :func:`eval_forward`.
* :func:`eval_forward` - inference on pre-quantized weights through the kernel the registry picks
  for the config and the input's device (bit-identical on every backend).
* :func:`forward` (``training=True`` / ``False``) and :func:`prepare_weights` - the same three
  operations under the names the namesake's API reference documents.

The module is also callable: ``bitcore.ops.bitlinear(x, weight, bias, config)`` is
:func:`bitlinear` (quantize, pack and run in one call), as in earlier lowbit releases.
"""

from __future__ import annotations

import sys
import types
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from lowbit._backend import check_same_device, linear_output_dtype

from ..config import BitQuantConfig
from . import quant

__all__ = ["train_forward", "eval_forward", "quantize_weights", "forward", "prepare_weights", "bitlinear",
           "bitlinear_qat"]


def _config(quant_config: Optional[BitQuantConfig]) -> BitQuantConfig:
    if quant_config is None:
        return BitQuantConfig()
    if not isinstance(quant_config, BitQuantConfig):
        raise ValueError(f"quant_config must be a BitQuantConfig or None, got {type(quant_config).__name__}")
    return quant_config


def _kernel(config: BitQuantConfig, device):
    from ..kernels import KernelRegistry  # the kernels import ops: resolve at call time

    return KernelRegistry.get_kernel_for_config(config, device)


def train_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
    quant_config: Optional[BitQuantConfig] = None,
) -> torch.Tensor:
    """Quantization-aware forward: ``F.linear(x_ste, W_ste, bias)``.

    ``W_ste = W + (W_q * s - W).detach()`` and, for int8 activations,
    ``x_ste = x + (x_q * a / 127 - x).detach()``, so gradients pass straight through.

    Args:
        x: ``(..., K)`` floating tensor. weight: ``[N, K]``. bias: ``[N]`` or None. All on one device.

    Returns:
        ``(..., N)`` in ``x``'s dtype (under ``torch.autocast``: the autocast dtype, as
        ``nn.Linear``), on ``x``'s device. Computed in float32 (float64 for float64
        weights): half-precision weights are upcast inside the graph, so their gradients stay
        half and the quantizer's scales do not lose bits.

    Raises:
        ValueError: tensors on different devices (the message names both), a bad config.
    """
    config = _config(quant_config)
    check_same_device("x", x, "the weight", weight.device)
    dtype = torch.promote_types(weight.dtype, torch.float32)
    w = quant.fake_quantize_weights(weight.to(dtype), config.weight_granularity)
    xc = x.to(dtype)
    if config.activation_dtype == "int8":
        xc = quant.fake_quantize_activations(xc, config.activation_granularity)
    b = None if bias is None else bias.to(dtype)
    return F.linear(xc, w, b).to(linear_output_dtype(x))


def quantize_weights(
    weight: torch.Tensor, quant_config: Optional[BitQuantConfig] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(qweight_scale, qweight)``: float32 0-d (per tensor) or ``[N]`` (per channel) scale(s), and
    int8 ternary ``[N, K]``, on ``weight``'s device (the namesake's order).

    Raises:
        ValueError: NaN/Inf weights, a non-2-D or empty weight, a bad config.
    """
    config = _config(quant_config)
    from ..kernels.base import BitKernelBase  # the kernels import ops: resolve at call time

    BitKernelBase._check_weight(weight, "quantize_weights")
    return _kernel(config, weight.device).quantize_weights(weight)


def eval_forward(
    x: torch.Tensor, qweight_scale: torch.Tensor, qweight: torch.Tensor, bias: Optional[torch.Tensor] = None,
    quant_config: Optional[BitQuantConfig] = None,
) -> torch.Tensor:
    """Inference from :func:`quantize_weights`'s output: ``(..., K)`` -> ``(..., N)`` in ``x``'s dtype.

    Raises:
        ValueError: tensors on different devices, non-ternary ``qweight``, shapes that do not fit,
        NaN/Inf input.
    """
    config = _config(quant_config)
    check_same_device("x", x, "qweight", qweight.device)
    if bias is not None:
        check_same_device("bias", bias, "qweight", qweight.device)
    return _kernel(config, x.device).forward(x, qweight_scale, qweight, bias)


def prepare_weights(
    weight: torch.Tensor, quant_config: Optional[BitQuantConfig] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`quantize_weights` under the namesake's earlier name: ``(qweight_scale, qweight)``,
    float32 0-d (per tensor) or ``[N]`` (per channel) scale(s) and int8 ternary ``[N, K]``.

    Raises:
        ValueError: NaN/Inf weights, a non-2-D or empty weight, a bad config.
    """
    return quantize_weights(weight, quant_config)


_FORWARD_ARGS = {
    True: (("weight",), ("bias", "quant_config")),
    False: (("qweight_scale", "qweight"), ("bias", "quant_config")),
}


def forward(x: torch.Tensor, training: bool = True, **kwargs) -> torch.Tensor:
    """The namesake's keyword form of both passes.

    ``forward(x, weight=W, bias=b, quant_config=c, training=True)`` is :func:`train_forward`;
    ``forward(x, qweight_scale=s, qweight=q, bias=b, quant_config=c, training=False)`` is
    :func:`eval_forward` (``s, q`` from :func:`prepare_weights`). ``bias`` and ``quant_config`` are
    optional (default config: :class:`BitQuantConfig()`).

    Args:
        x: ``(..., K)`` floating tensor. weight: float ``[N, K]``. qweight_scale: 0-d or ``[N]``.
        qweight: ``[N, K]`` in {-1, 0, 1}. bias: ``[N]`` or None.

    Returns:
        ``(..., N)`` in ``x``'s dtype.

    Raises:
        TypeError: a required tensor is missing for the pass ``training`` selects, or an unknown
            keyword is given (both named).
        ValueError: as :func:`train_forward` / :func:`eval_forward`.
    """
    required, optional = _FORWARD_ARGS[bool(training)]
    mode = "training=True" if training else "training=False"
    missing = [k for k in required if kwargs.get(k) is None]
    if missing:
        raise TypeError(f"bitlinear.forward({mode}) needs " + " and ".join(repr(k) for k in missing)
                        + f" (got {', '.join(repr(k) for k in kwargs) or 'only x'})")
    unknown = sorted(set(kwargs) - set(required) - set(optional))
    if unknown:
        raise TypeError(f"bitlinear.forward({mode}): unexpected keyword argument(s) "
                        + ", ".join(repr(k) for k in unknown) + f"; it takes {', '.join(required + optional)}")
    if training:
        return train_forward(x, kwargs["weight"], kwargs.get("bias"), kwargs.get("quant_config"))
    return eval_forward(x, kwargs["qweight_scale"], kwargs["qweight"], kwargs.get("bias"), kwargs.get("quant_config"))


def bitlinear(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, config: Optional[BitQuantConfig] = None
) -> torch.Tensor:
    """Inference in one call: quantize and pack float ``weight`` ``[N, K]``, run the kernel for
    ``config`` on ``x``'s device. Returns ``(..., N)`` in ``x``'s dtype."""
    config = _config(config)
    check_same_device("x", x, "the weight", weight.device)
    return _kernel(config, x.device)._functional(x, weight, bias)


def bitlinear_qat(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, config: Optional[BitQuantConfig] = None
) -> torch.Tensor:
    """Training forward (:func:`train_forward` with lowbit's argument name ``config``)."""
    return train_forward(x, weight, bias, config)


class _CallableModule(types.ModuleType):
    """Lets ``bitcore.ops.bitlinear(...)`` keep working now that the name is the namesake's module."""

    def __call__(self, *args, **kwargs):
        return bitlinear(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""Activation fake-quantizers of ``bitlab.bitquantizer`` (the namesake's ``(scale, quantized)`` convention).

Each takes ``(x, eps=1e-6)`` and returns ``(scale, q)``: ``q`` has ``x``'s shape and dtype with
integer values in [-127, 127], and ``scale * q`` is the dequantized activation.
"""

from __future__ import annotations

from functools import partial
from typing import Tuple

import torch

from ._checks import check_eps, check_tensor


def _absmax_quantize(x: torch.Tensor, amax: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    scale = torch.clamp(amax / 127.0, min=eps)
    return scale, torch.clamp(torch.round(x / scale), -127, 127)


def quantize_act_ai8pc(x: torch.Tensor, eps: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """int8 activations, one scale per row (the last dimension: per token of a ``[..., K]`` input).

    ``scale = max(max|x| over the last dim / 127, eps)``, shape ``(..., 1)``;
    ``q = clamp(round(x / scale), -127, 127)``.

    Raises:
        TypeError: ``x`` not a floating-point tensor. ValueError: ``x`` empty or 0-d, ``eps``
        negative or not finite.
    """
    check_tensor("x", x)
    if x.dim() == 0:
        raise ValueError("quantize_act_ai8pc: x must have at least one dimension (rows of features), got a 0-d tensor")
    eps = check_eps(eps)
    return _absmax_quantize(x, x.abs().amax(dim=-1, keepdim=True), eps)


def quantize_act_ai8pg(x: torch.Tensor, eps: float = 1e-6, group_size: int = 128) -> Tuple[torch.Tensor, torch.Tensor]:
    """int8 activations, one scale per group of ``group_size`` consecutive elements of ``x`` (in
    row-major order; when the last dimension is a multiple of ``group_size`` the groups lie within rows).

    Returns ``scale`` expanded to ``x``'s shape (so ``scale * q`` dequantizes) and
    ``q = clamp(round(x / scale), -127, 127)`` with ``scale = max(group max|x| / 127, eps)``.

    Raises:
        TypeError: ``x`` not a floating-point tensor. ValueError: ``x`` empty; ``group_size`` not a
        positive int; ``x.numel()`` not a multiple of ``group_size``; ``eps`` negative or not finite.
    """
    check_tensor("x", x)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"quantize_act_ai8pg: group_size must be a positive int, got {group_size!r}")
    if x.numel() % group_size:
        raise ValueError(f"quantize_act_ai8pg: x has {x.numel()} elements, not a multiple of group_size={group_size}")
    eps = check_eps(eps)
    groups = x.reshape(-1, group_size)
    scale, q = _absmax_quantize(groups, groups.abs().amax(dim=-1, keepdim=True), eps)
    return scale.expand(-1, group_size).reshape(x.shape), q.reshape(x.shape)


quantize_act_ai8pg128 = partial(quantize_act_ai8pg, group_size=128)
quantize_act_ai8pg256 = partial(quantize_act_ai8pg, group_size=256)
quantize_activation = quantize_act_ai8pc  # the namesake's earliest name


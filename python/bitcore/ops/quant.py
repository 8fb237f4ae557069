"""Pure-PyTorch quantizers: the reference twins of the C++ ones (same formulas, same rounding).

weights      s   = float32(mean|W| in float64), per tensor or per output row
             W_q = clamp(round(W / s), -1, 1)          (s == 0 -> W_q = 0)
activations  a   = max|x|, per tensor or per row; inv = 127 / a (a == 0 -> inv = 0)
             x_q = clamp(round(x * inv), -128, 127); act_scale = a / 127
``torch.round`` rounds half to even, like the C++ ``nearbyint`` and the SIMD conversions.
"""

from __future__ import annotations

from typing import Tuple

import torch

# Scales below this are treated as 0 in the training (fake-quant) path to avoid dividing by 0.
_QAT_MIN_SCALE = 1e-8


def _per_row(granularity: str) -> bool:
    if granularity not in ("per_tensor", "per_channel"):
        raise ValueError(f"granularity must be 'per_tensor' or 'per_channel', got {granularity!r}")
    return granularity == "per_channel"


def weight_scales(weight: torch.Tensor, granularity: str) -> torch.Tensor:
    """``mean|W|`` as float32 of shape ``[out_features]`` (per tensor: repeated)."""
    w = weight.detach().double().abs()
    if _per_row(granularity):
        return w.mean(dim=1).float()
    return w.mean().float().expand(weight.shape[0]).contiguous()


def ternarize(weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``clamp(round(W / s), -1, 1)`` as int8, 0 where ``s == 0``."""
    s = scales.reshape(-1, 1)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.clamp(torch.round(weight.detach().float() / safe), -1, 1)
    return torch.where(s > 0, q, torch.zeros_like(q)).to(torch.int8)


def quantize_weights(weight: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(trits int8 ``[N, K]``, scales float32 ``[N]``)."""
    scales = weight_scales(weight, granularity)
    return ternarize(weight, scales), scales


def activation_max(x2d: torch.Tensor, granularity: str) -> torch.Tensor:
    """``max|x|`` as float32 ``[M]`` (per tensor: repeated)."""
    a = x2d.detach().float().abs()
    if _per_row(granularity):
        return a.amax(dim=1)
    return a.max().expand(x2d.shape[0]).contiguous()


def quantize_activations(x2d: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x_q int8 ``[M, K]``, act_scale float32 ``[M]`` = ``a / 127``)."""
    a = activation_max(x2d, granularity)
    inv = torch.where(a > 0, torch.tensor(127.0, dtype=torch.float32) / torch.where(a > 0, a, torch.ones_like(a)),
                      torch.zeros_like(a))
    q = torch.clamp(torch.round(x2d.detach().float() * inv.reshape(-1, 1)), -128, 127).to(torch.int8)
    return q, a / 127.0


def fake_quantize_weights(weight: torch.Tensor, granularity: str) -> torch.Tensor:
    """Training view of the weights: ``W_q * s`` forward, identity backward (straight-through)."""
    a = weight.abs()
    s = a.mean(dim=1, keepdim=True) if _per_row(granularity) else a.mean()
    s = s.detach().clamp(min=_QAT_MIN_SCALE)
    q = torch.clamp(torch.round(weight / s), -1, 1) * s
    return weight + (q - weight).detach()


def fake_quantize_activations(x: torch.Tensor, granularity: str) -> torch.Tensor:
    """Training view of int8 activations over ``(..., K)`` inputs, straight-through backward."""
    a = x.detach().abs()
    a = a.amax(dim=-1, keepdim=True) if _per_row(granularity) else a.max()
    a = a.clamp(min=_QAT_MIN_SCALE)
    q = torch.clamp(torch.round(x * (127.0 / a)), -128, 127) * (a / 127.0)
    return x + (q - x).detach()

"""Pure-PyTorch quantizers: the reference twins of the C++ ones (same formulas, same rounding).

weights      s   = float32(mean|W| in float64), per tensor or per output row
             W_q = clamp(round(W / s), -1, 1)          (s == 0 -> W_q = 0)
activations  a   = max|x|, per tensor or per row; inv = 127 / a (0 where not finite: a == 0 or a < 127 / FLT_MAX)
             x_q = clamp(round(x * inv), -128, 127); act_scale = a / 127
``torch.round`` rounds half to even, like the C++ ``nearbyint`` and the SIMD conversions.

Every function runs on the device of its input and returns tensors on that device (no host copy).
Only ``mean|W|`` depends on a summation order: the C++ core adds ``|w|`` in float64 one after the
other. On CPU tensors the twin reproduces that order exactly (``torch.cumsum`` is a sequential
scan on the CPU), so scales are bit-identical. On other devices the float64 sum runs in the
device's reduction order; both sums are within ``n * 2^-53`` (relative) of the exact sum, so the
float32 scale is identical unless the exact mean lies within that distance of a float32 rounding
boundary (about one layer in 2^29 / sqrt(n)); then it differs by one float32 ulp. That is the one
named tolerance of the device path: :data:`DEVICE_SCALE_ULPS` (MPS, which has no float64, sums in
float32 and is looser still).

Sources: BitNet b1.58 (Ma et al. 2024, arXiv:2402.17764), absmean weight and absmax
activation quantizers; docs/bitlab.md for the exact conventions.
"""

from __future__ import annotations

from typing import Tuple

import torch

#: On a non-CPU device a weight scale may differ from the C++ one by this many float32 ulps (see above).
DEVICE_SCALE_ULPS = 1

# Scales below this are treated as 0 in the training (fake-quant) path to avoid dividing by 0.
_QAT_MIN_SCALE = 1e-8

# Elements per cumsum block of the sequential CPU sum (bounds the float64 temporaries).
_SEQUENTIAL_BLOCK = 1 << 20


def _per_row(granularity: str) -> bool:
    if granularity not in ("per_tensor", "per_channel"):
        raise ValueError(f"granularity must be 'per_tensor' or 'per_channel', got {granularity!r}")
    return granularity == "per_channel"


def _sequential_row_sums(a: torch.Tensor) -> torch.Tensor:
    """float64 ``[R, L]`` -> ``[R]``: each row summed left to right, exactly as the C++ loop does.

    ``torch.cumsum`` on the CPU is a sequential scan; a block's carry is added to its first
    element, which continues the same left-to-right chain.
    """
    rows, length = a.shape
    out = torch.zeros(rows, dtype=a.dtype, device=a.device)
    step = max(1, _SEQUENTIAL_BLOCK // max(rows, 1))
    for start in range(0, length, step):
        block = a[:, start:start + step].clone()
        block[:, 0] += out
        out = torch.cumsum(block, dim=1)[:, -1]
    return out


def _mean_abs_rows(w2d: torch.Tensor) -> torch.Tensor:
    """``[R, L]`` -> float32 ``[R]``: ``float32(sum_k |w[r, k]| (float64) / L)``.

    Apple's MPS has no float64: there the sum runs in float32 (a scale within about ``L * 2^-24``
    relative of the C++ one).
    """
    wide = torch.float32 if w2d.device.type == "mps" else torch.float64
    a = w2d.detach().to(wide).abs()
    if a.device.type == "cpu":
        total = _sequential_row_sums(a)
    else:
        total = a.sum(dim=1)
    return (total / a.shape[1]).to(torch.float32)


def weight_scales(weight: torch.Tensor, granularity: str) -> torch.Tensor:
    """``mean|W|`` as float32 ``[out_features]`` on ``weight``'s device (per tensor: repeated).

    Raises:
        ValueError: bad granularity, or a weight that is not 2-D and non-empty.
    """
    if weight.dim() != 2 or weight.numel() == 0:
        raise ValueError(f"quantize_weights: weight must be a non-empty 2-D tensor, got shape {tuple(weight.shape)}")
    if _per_row(granularity):
        return _mean_abs_rows(weight)
    return _mean_abs_rows(weight.reshape(1, -1)).expand(weight.shape[0]).contiguous()


def ternarize(weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``clamp(round(W / s), -1, 1)`` as int8 ``[N, K]``, 0 where ``s == 0``."""
    s = scales.to(torch.float32).reshape(-1, 1)
    positive = s > 0
    safe = torch.where(positive, s, torch.ones_like(s))
    q = torch.clamp(torch.round(weight.detach().to(torch.float32) / safe), -1, 1)
    return torch.where(positive, q, torch.zeros_like(q)).to(torch.int8)


def _require_finite(t: torch.Tensor, what: str) -> None:
    if t.is_meta:  # no values (shape propagation)
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what}: contains NaN or Inf")


def quantize_weights(weight: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Ternary weights of a float ``[N, K]`` matrix: (trits int8 ``[N, K]``, scales float32 ``[N]``).

    Raises:
        ValueError: NaN/Inf weights, bad shape or granularity.
    """
    _require_finite(weight.detach(), "quantize_weights: weight")
    scales = weight_scales(weight, granularity)
    return ternarize(weight, scales), scales


def activation_max(x2d: torch.Tensor, granularity: str) -> torch.Tensor:
    """``max|x|`` as float32 ``[M]`` (per tensor: repeated). Exact on every device (max has no rounding)."""
    a = x2d.detach().to(torch.float32).abs()
    if _per_row(granularity):
        return a.amax(dim=1)
    return a.max().expand(x2d.shape[0]).contiguous()


def quantize_activations(x2d: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """int8 activations of float ``[M, K]``: (x_q int8 ``[M, K]``, act_scale float32 ``[M]`` = ``a / 127``).

    ``inv = 127 / a`` and ``x * inv`` are single float32 operations, as in the C++ ``quantize_row``.

    Raises:
        ValueError: NaN/Inf input or bad granularity.
    """
    _require_finite(x2d.detach(), "quantize_activations: input")
    if x2d.shape[0] == 0:
        return (torch.zeros(x2d.shape, dtype=torch.int8, device=x2d.device),
                torch.zeros(0, dtype=torch.float32, device=x2d.device))
    a = activation_max(x2d, granularity)
    positive = a > 0
    inv = 127.0 / torch.where(positive, a, torch.ones_like(a))
    inv = torch.where(positive & torch.isfinite(inv), inv, torch.zeros_like(inv))  # a < 127 / FLT_MAX: zeros
    q = torch.clamp(torch.round(x2d.detach().to(torch.float32) * inv.reshape(-1, 1)), -128, 127).to(torch.int8)
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
    if x.numel() == 0:  # an empty batch: nothing to scale (max() of no values is undefined)
        return x
    a = x.detach().abs()
    a = a.amax(dim=-1, keepdim=True) if _per_row(granularity) else a.max()
    a = a.clamp(min=_QAT_MIN_SCALE)
    q = torch.clamp(torch.round(x * (127.0 / a)), -128, 127) * (a / 127.0)
    return x + (q - x).detach()

"""Weight fake-quantizers of ``bitlab.bitquantizer`` (the namesake's ``(scale, quantized)`` convention).

Each takes ``(w, eps=1e-6)`` and returns ``(scale, q)`` with ``scale * q`` the dequantized weight.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ._checks import check_eps, check_tensor


def quantize_weight_wpt(w: torch.Tensor, eps: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Ternary weights with one scale for the whole tensor (BitNet b1.58 absmean).

    ``scale = mean(|w|)`` (0-d, ``w``'s dtype); ``q = clamp(round(w / (scale + eps)), -1, 1)``
    (same shape and dtype as ``w``, values in {-1, 0, 1}; ``round`` is half-to-even). Any shape.

    Raises:
        TypeError: ``w`` not a floating-point tensor. ValueError: ``w`` empty, ``eps`` negative
        or not finite.
    """
    check_tensor("w", w)
    eps = check_eps(eps)
    scale = w.abs().mean()
    return scale, torch.clamp(torch.round(w / (scale + eps)), -1, 1)


"""The native int8-activation, per-tensor activation, per-tensor weight BitLinear kernel, with the
namesake's function names and argument order (CPU tensors; ValueError for others)."""

from typing import Optional as _Optional, Tuple as _Tuple

import torch as _torch

from . import bitlinear_cpp as _cpp

__all__ = ["quantize_weights", "quantize_activations", "pack", "unpack", "forward"]

ACTIVATION_DTYPE = "int8"
ACTIVATION_GRANULARITY = "per_tensor"
WEIGHT_GRANULARITY = "per_tensor"


def quantize_weights(weight: _torch.Tensor) -> _Tuple[_torch.Tensor, _torch.Tensor]:
    """Float32 ``[N, K]`` -> ``(qweight_scale, qweight)``: a 0-d float32 ``mean|W|`` and int8 trits ``[N, K]``."""
    trits, scales = _cpp.quantize_weights(weight, WEIGHT_GRANULARITY)
    return scales[0].clone(), trits


def quantize_activations(x2d: _torch.Tensor) -> _Tuple[_torch.Tensor, _torch.Tensor]:
    """Float32 ``[M, K]`` -> (x_q int8 ``[M, K]``, act_scale float32 ``[M]``, all ``max|x| / 127``)."""
    return _cpp.quantize_activations(x2d, ACTIVATION_GRANULARITY)


pack = _cpp.pack_2bit
unpack = _cpp.unpack_2bit


def forward(
    x: _torch.Tensor,
    qweight_scale: _torch.Tensor,
    qweight: _torch.Tensor,
    bias: _Optional[_torch.Tensor] = None,
) -> _torch.Tensor:
    """``y = (x_q @ W_q^T) * (a / 127) * s + bias`` for float ``x`` ``(..., K)``; ``qweight`` int8 ``[N, K]``.

    Returns ``(..., N)`` in ``x``'s dtype.
    """
    from bitcore.kernels.base import normalize_qweight

    trits, scales = normalize_qweight(qweight, qweight_scale)
    n, k = trits.shape
    if not isinstance(x, _torch.Tensor) or x.dim() == 0 or x.shape[-1] != k:
        got = tuple(x.shape) if isinstance(x, _torch.Tensor) else type(x).__name__
        raise ValueError(f"forward: input of shape {got} must end with in_features={k} (qweight is [{n}, {k}])")
    x2d = x.detach().reshape(-1, k).to(_torch.float32).contiguous()
    b = None if bias is None else bias.detach().to(_torch.float32).contiguous()
    y = _cpp.bitlinear_int8(x2d, _cpp.pack_2bit(trits), k, scales, b, ACTIVATION_GRANULARITY)
    return y.reshape(*x.shape[:-1], n).to(x.dtype)

"""The native int8-activation, per-tensor activation, per-tensor weight BitLinear kernel."""

from typing import Optional as _Optional, Tuple as _Tuple

import torch as _torch

from . import bitlinear_cpp as _cpp

__all__ = ["quantize_weights", "quantize_activations", "pack", "unpack", "forward"]

ACTIVATION_DTYPE = "int8"
ACTIVATION_GRANULARITY = "per_tensor"
WEIGHT_GRANULARITY = "per_tensor"


def quantize_weights(weight: _torch.Tensor) -> _Tuple[_torch.Tensor, _torch.Tensor]:
    """(trits int8 ``[N, K]``, scale float32 ``[N]``, all equal to ``mean|W|``)."""
    return _cpp.quantize_weights(weight, WEIGHT_GRANULARITY)


def quantize_activations(x2d: _torch.Tensor) -> _Tuple[_torch.Tensor, _torch.Tensor]:
    return _cpp.quantize_activations(x2d, ACTIVATION_GRANULARITY)


pack = _cpp.pack_2bit
unpack = _cpp.unpack_2bit


def forward(
    x2d: _torch.Tensor,
    packed: _torch.Tensor,
    in_features: int,
    weight_scale: _torch.Tensor,
    bias: _Optional[_torch.Tensor] = None,
) -> _torch.Tensor:
    """``y = (x_q @ W_q^T) * (a / 127) * s + bias`` for float32 ``x2d`` ``[M, K]``."""
    return _cpp.bitlinear_int8(x2d, packed, in_features, weight_scale, bias, ACTIVATION_GRANULARITY)

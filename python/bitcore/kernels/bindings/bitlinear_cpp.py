"""torch wrappers over ``lowbit._native.bitlab`` (CPU tensors; no copies for contiguous input). The GEMM
calls use at most :func:`bitcore.threads.kernel_threads` threads of lowbit's pool (``torch.get_num_threads()``
unless a deployed model set it)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from lowbit._native import bitlab as _native

from ...threads import kernel_threads

__all__ = [
    "quantize_weights",
    "quantize_activations",
    "pack_2bit",
    "unpack_2bit",
    "pack_base3",
    "unpack_base3",
    "gemm_int8",
    "bitlinear_int8",
    "bitlinear_f32",
    "padded_cols",
    "packed_row_bytes",
    "storage_bytes",
]

padded_cols = _native.padded_cols
packed_row_bytes = _native.packed_row_bytes
storage_bytes = _native.storage_bytes


def _np(t: torch.Tensor, dtype: torch.dtype, what: str):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{what}: the C++ kernels run on CPU tensors, got device {t.device}")
    if t.dtype != dtype:
        raise ValueError(f"{what}: expected dtype {dtype}, got {t.dtype}")
    return t.detach().contiguous().numpy()


def quantize_weights(weight: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    trits, scales = _native.quantize_weights(_np(weight, torch.float32, "weight"), granularity)
    return torch.from_numpy(trits), torch.from_numpy(scales)


def quantize_activations(x2d: torch.Tensor, granularity: str) -> Tuple[torch.Tensor, torch.Tensor]:
    xq, scales = _native.quantize_activations(_np(x2d, torch.float32, "x"), granularity)
    return torch.from_numpy(xq), torch.from_numpy(scales)


def pack_2bit(trits: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(_native.pack_2bit(_np(trits, torch.int8, "trits")))


def unpack_2bit(packed: torch.Tensor, cols: int) -> torch.Tensor:
    return torch.from_numpy(_native.unpack_2bit(_np(packed, torch.uint8, "packed"), cols))


def pack_base3(trits: torch.Tensor) -> torch.Tensor:
    t = _np(trits, torch.int8, "trits")
    return torch.from_numpy(_native.pack_base3(t.reshape(1, -1) if t.ndim != 2 else t))


def unpack_base3(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return torch.from_numpy(_native.unpack_base3(_np(data, torch.uint8, "data"), rows, cols))


def gemm_int8(xq: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """Exact int32 ``x_q @ W_q^T``."""
    return torch.from_numpy(_native.gemm_int8(_np(xq, torch.int8, "x_q"), _np(packed, torch.uint8, "packed"),
                                              kernel_threads()))


def _bias(bias: Optional[torch.Tensor]):
    return None if bias is None else _np(bias, torch.float32, "bias")


def bitlinear_int8(
    x2d: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    weight_scale: torch.Tensor,
    bias: Optional[torch.Tensor],
    activation_granularity: str,
) -> torch.Tensor:
    y = _native.bitlinear_int8(
        _np(x2d, torch.float32, "x"),
        _np(packed, torch.uint8, "packed"),
        in_features,
        _np(weight_scale, torch.float32, "weight_scale"),
        _bias(bias),
        activation_granularity,
        kernel_threads(),
    )
    return torch.from_numpy(y)


def bitlinear_f32(
    x2d: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    weight_scale: torch.Tensor,
    bias: Optional[torch.Tensor],
) -> torch.Tensor:
    y = _native.bitlinear_f32(
        _np(x2d, torch.float32, "x"),
        _np(packed, torch.uint8, "packed"),
        in_features,
        _np(weight_scale, torch.float32, "weight_scale"),
        _bias(bias),
        kernel_threads(),
    )
    return torch.from_numpy(y)

"""Bit-packed codes: one record of ``t_bits + M * level_bits`` bits per vector (docs/coset.md)."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from lowbit._native import coset as _native

from ._arrays import _contig, back, code_array, is_tensor, to_numpy
from .config import QuantizationConfig


def packed_size(config: QuantizationConfig, n: int) -> int:
    """Bytes of the packed stream for n vectors."""
    return int(_native.packed_bytes(config.native(), int(n)))


def pack(b: Any, T: Any, config: QuantizationConfig) -> Any:
    """Packs codes ``b`` (..., M, d) and ``T`` (...) into a flat uint8 stream."""
    as_torch = is_tensor(b)
    codes = code_array(b, "b", config.q)
    if codes.ndim < 2 or codes.shape[-2:] != (config.M, config.d):
        raise ValueError(f"b: trailing shape must be (M, d)=({config.M}, {config.d}), got {tuple(codes.shape)}")
    t = code_array(T, "T", config.max_t() + 1)
    if t.shape != codes.shape[:-2]:
        raise ValueError(f"T: shape must be {tuple(codes.shape[:-2])}, got {tuple(t.shape)}")
    out = np.empty(packed_size(config, t.size), dtype=np.uint8)
    _native.pack_codes(config.native(), codes, t, out)
    return back(out, as_torch)


def unpack(packed: Any, n: int, config: QuantizationConfig) -> Tuple[Any, Any]:
    """The inverse of pack for n vectors: (b of shape (n, M, d), T of shape (n,))."""
    as_torch = is_tensor(packed)
    arr, _ = to_numpy(packed, "packed")
    arr = _contig(arr.reshape(-1).view(np.uint8) if arr.dtype == np.uint8 else arr.astype(np.uint8))
    if arr.size != packed_size(config, n):
        raise ValueError(f"packed: expected {packed_size(config, n)} bytes for {n} vectors, got {arr.size}")
    codes = np.empty((n, config.M, config.d), dtype=np.uint8)
    t = np.empty(n, dtype=np.uint8)
    _native.unpack_codes(config.native(), arr, codes, t)
    return back(codes, as_torch), back(t, as_torch)

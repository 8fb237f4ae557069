"""Bit-packed codes: one record of ``t_bits + M * level_bits`` bits per vector (docs/coset.md)."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from lowbit import _backend, _cuda_ops
from lowbit._native import coset as _native

from . import _torch_ops
from ._arrays import _contig, as_tensor, back, code_array, is_tensor, to_numpy, torch_codes
from ._dispatch import op as _op, torch_path as _torch_path
from .config import QuantizationConfig




def packed_size(config: QuantizationConfig, n: int) -> int:
    """Bytes of the packed stream for n vectors."""
    return _torch_ops.packed_bytes(config, int(n))


def pack(b: Any, T: Any, config: QuantizationConfig) -> Any:
    """Packs codes ``b`` (..., M, d) and ``T`` (...) into a flat uint8 stream (docs/coset.md layout).

    Tensors give a uint8 tensor on their device. Raises ``ValueError`` for codes outside [0, q),
    T beyond ``max_scaling_iterations``, wrong shapes, and T on another device than b.
    """
    impl = _torch_path(b, "b")
    if impl is not None:
        import torch

        codes = torch_codes(b, "b", config.q)
        if codes.dim() < 2 or tuple(codes.shape[-2:]) != (config.M, config.d):
            raise ValueError(f"b: trailing shape must be (M, d)=({config.M}, {config.d}), got {tuple(codes.shape)}")
        if not is_tensor(T):
            T = as_tensor(T, codes.device)
        _backend.check_same_device("T", T, "b", codes.device)
        t = torch_codes(T, "T", config.max_t() + 1)
        if tuple(t.shape) != tuple(codes.shape[:-2]):
            raise ValueError(f"T: shape must be {tuple(codes.shape[:-2])}, got {tuple(t.shape)}")
        return _op(impl, "coset.pack")(codes.reshape(-1, config.M, config.d), t.reshape(-1), config)
    as_torch = is_tensor(b)
    if as_torch and is_tensor(T):
        _backend.check_same_device("T", T, "b", b.device)
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
    """The inverse of pack for n vectors: (b of shape (n, M, d), T of shape (n,)), uint8.

    Raises ``ValueError`` for a stream of the wrong size, a record with T beyond the config's or
    a level index ``>= q^d``.
    """
    impl = _torch_path(packed, "packed")
    if impl is not None:
        import torch

        flat = packed.detach().reshape(-1)
        if flat.dtype != torch.uint8:
            flat = flat.to(torch.uint8)
        if flat.numel() != packed_size(config, n):
            raise ValueError(f"packed: expected {packed_size(config, n)} bytes for {n} vectors, got {flat.numel()}")
        t, idx = _torch_ops.unpack_fields(flat, int(n), config)
        if n:
            bad_t = t > config.max_t()
            if bool(bad_t.any()):
                i = int(bad_t.nonzero()[0, 0])
                raise ValueError(f"unpack_codes: record {i} has T={int(t[i])} beyond max_scaling_iterations={config.max_t()}")
            bad_idx = (idx >= config.q ** config.d).any(-1)
            if bool(bad_idx.any()):
                i = int(bad_idx.nonzero()[0, 0])
                raise ValueError(f"unpack_codes: record {i} has a level index {int(idx[i].max())} >= q^d")
        fn = _cuda_ops.get("coset.unpack") if impl == "cuda" else None
        if fn is not None:
            return fn(flat, int(n), config)
        return _torch_ops.level_codes(idx, config.d, config.q), t.to(torch.uint8)
    as_torch = is_tensor(packed)
    arr, _ = to_numpy(packed, "packed")
    arr = _contig(arr.reshape(-1).view(np.uint8) if arr.dtype == np.uint8 else arr.astype(np.uint8))
    if arr.size != packed_size(config, n):
        raise ValueError(f"packed: expected {packed_size(config, n)} bytes for {n} vectors, got {arr.size}")
    codes = np.empty((n, config.M, config.d), dtype=np.uint8)
    t = np.empty(n, dtype=np.uint8)
    _native.unpack_codes(config.native(), arr, codes, t)
    return back(codes, as_torch), back(t, as_torch)

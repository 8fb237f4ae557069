"""Lookup-table inner products with quantized vectors (one- and two-sided) and a LUT mat-vec."""

from __future__ import annotations

from typing import Any

import numpy as np

from lowbit._native import coset as _native

from ._arrays import _contig, back, code_array, float_array, is_tensor
from .config import QuantizationConfig
from .lattices.base import Lattice
from .quant import _check_pair


def _codes(b: Any, T: Any, config: QuantizationConfig, name: str):
    codes = code_array(b, f"b{name}", config.q)
    if codes.ndim != 3 or codes.shape[1:] != (config.M, config.d):
        raise ValueError(f"b{name}: expected shape (blocks, M, d)=(*, {config.M}, {config.d}), got {tuple(codes.shape)}")
    t = code_array(np.zeros(codes.shape[0], np.uint8) if T is None else T, f"T{name}", config.max_t() + 1)
    if t.shape != codes.shape[:1]:
        raise ValueError(f"T{name}: expected shape ({codes.shape[0]},), got {tuple(t.shape)}")
    return codes, t


class OneSidedLUT:
    """Tables ``L_k[idx] = <y_k, rep(idx)>`` for a float query ``y`` (length a multiple of d).

    ``dot(b, T)`` returns ``<x^, y>`` for a quantized vector of the same length given as
    ``b`` (blocks, M, d) and ``T`` (blocks,) from :func:`coset.encode`, without decoding.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig, y: Any) -> None:
        _check_pair(lattice, config)
        arr, _, _ = float_array(y, "y")
        arr = _contig(arr.reshape(-1), dtype=np.float32)
        if arr.size % config.d:
            raise ValueError(f"y: length {arr.size} is not a multiple of d={config.d}")
        self.config = config
        self._lut = _native.OneSidedLut(config.native(), arr)

    @property
    def blocks(self) -> int:
        return int(self._lut.blocks)

    @property
    def table(self) -> np.ndarray:
        out = np.empty((self._lut.blocks, self._lut.entries), dtype=np.float32)
        self._lut.table(out)
        return out

    def dot(self, b: Any, T: Any = None) -> float:
        codes, t = _codes(b, T, self.config, "")
        if codes.shape[0] != self.blocks:
            raise ValueError(f"b: expected {self.blocks} blocks, got {codes.shape[0]}")
        return float(self._lut.dot(codes, t))


class TwoSidedLUT:
    """The table ``<rep(i), rep(j)>`` (q^2d entries: D4 q<=4, E8 q=2, Z2 q<=16).

    ``dot(bx, Tx, by, Ty)`` is ``<x^, y^>`` for two quantized vectors of equal length.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig) -> None:
        _check_pair(lattice, config)
        self.config = config
        self._lut = _native.TwoSidedLut(config.native())

    def dot(self, bx: Any, Tx: Any, by: Any, Ty: Any) -> float:
        cx, tx = _codes(bx, Tx, self.config, "x")
        cy, ty = _codes(by, Ty, self.config, "y")
        if cx.shape != cy.shape:
            raise ValueError(f"by: shape {tuple(cy.shape)} differs from bx's {tuple(cx.shape)}")
        return float(self._lut.dot(self.config.native(), cx, tx, cy, ty))


class QuantizedMatrix:
    """A float matrix (rows x cols, cols a multiple of d) quantized block-wise along its rows.

    ``matvec(y)`` computes ``A^ @ y`` with one-sided tables (built per call) instead of
    decoding; ``decode()`` returns ``A^``.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig, a: Any) -> None:
        _check_pair(lattice, config)
        arr, self._torch, _ = float_array(a, "a")
        if arr.ndim != 2:
            raise ValueError(f"a: expected a 2-D matrix, got shape {tuple(arr.shape)}")
        if arr.shape[1] % config.d:
            raise ValueError(f"a: columns {arr.shape[1]} are not a multiple of d={config.d}")
        self.config = config
        self.shape = arr.shape
        self._qm = _native.QuantizedMatrix.encode(config.native(), _contig(arr, dtype=np.float32))

    def decode(self) -> Any:
        out = np.empty(self.shape, dtype=np.float32)
        self._qm.decode(out)
        return back(out, self._torch)

    def matvec(self, y: Any) -> Any:
        arr, as_torch, _ = float_array(y, "y")
        arr = _contig(arr.reshape(-1), dtype=np.float32)
        if arr.size != self.shape[1]:
            raise ValueError(f"y: expected length {self.shape[1]}, got {arr.size}")
        out = np.empty(self.shape[0], dtype=np.float32)
        self._qm.matvec_lut(arr, out)
        return back(out, as_torch or is_tensor(y))

"""Lookup-table inner products with quantized vectors (one- and two-sided) and a LUT mat-vec.

Kaplan & Ordentlich (arXiv 2505.13164, section 5): a quantized block decodes to
``s_T * sum_m q^m rep(b_m)``, so ``<x^, y>`` is a sum of table lookups ``L[idx] = <y, rep(idx)>``.
Host data and CPU tensors run the C++ tables (``src/coset/lut.cpp``); tensors on other devices
(or under ``lowbit.backend("torch")``) run the bit-identical PyTorch twin on their device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lowbit import _backend
from lowbit._native import coset as _native

from . import _torch_ops
from ._arrays import _contig, as_tensor, back, code_array, float_array, is_tensor, torch_codes, torch_float
from ._dispatch import op as _op, torch_path as _torch_path
from .config import QuantizationConfig
from .lattices.base import Lattice, lattice_for
from .quant import _check_pair

# Largest q^d of a one-sided table and of the two-sided table's side (include/lowbit/coset/lut.h).
MAX_LUT_ENTRIES = 65536
MAX_TWO_SIDED_ENTRIES = 256




def _require_lut_config(config: QuantizationConfig, limit: int, what: str) -> None:
    """The C++ checks of ``require_lut_config``, with the same messages."""
    if config.with_dither:
        raise ValueError(f"{what}: config.with_dither is not supported by lookup tables")
    entries = config.q ** config.d
    if entries > limit:
        raise ValueError(f"{what}: q^d = {entries} exceeds the table limit {limit} for "
                         f"{config.lattice_type} q={config.q}")


def _codes(b: Any, T: Any, config: QuantizationConfig, name: str):
    import torch

    cpu = torch.device("cpu")
    _backend.check_same_device(f"b{name}", b, "the table", cpu)  # the C++ table lives on the host
    _backend.check_same_device(f"T{name}", T, "the table", cpu)
    codes = code_array(b, f"b{name}", config.q)
    if codes.ndim != 3 or codes.shape[1:] != (config.M, config.d):
        raise ValueError(f"b{name}: expected shape (blocks, M, d)=(*, {config.M}, {config.d}), got {tuple(codes.shape)}")
    t = code_array(np.zeros(codes.shape[0], np.uint8) if T is None else T, f"T{name}", config.max_t() + 1)
    if t.shape != codes.shape[:1]:
        raise ValueError(f"T{name}: expected shape ({codes.shape[0]},), got {tuple(t.shape)}")
    return codes, t


def _torch_codes(b: Any, T: Any, config: QuantizationConfig, name: str, device: Any):
    """Codes (..., blocks, M, d) and T (..., blocks) as uint8 tensors on ``device`` (the owner's)."""
    import torch

    if not is_tensor(b):
        b = as_tensor(b, device)
    _backend.check_same_device(f"b{name}", b, "the table", device)
    codes = torch_codes(b, f"b{name}", config.q)
    if codes.dim() < 3 or tuple(codes.shape[-2:]) != (config.M, config.d):
        raise ValueError(f"b{name}: expected shape (..., blocks, M, d)=(..., *, {config.M}, {config.d}), "
                         f"got {tuple(codes.shape)}")
    if T is None:
        t = torch.zeros(codes.shape[:-2], dtype=torch.uint8, device=codes.device)
    else:
        if not is_tensor(T):
            T = as_tensor(T, codes.device)
        _backend.check_same_device(f"T{name}", T, "the table", device)
        t = torch_codes(T, f"T{name}", config.max_t() + 1)
    if tuple(t.shape) != tuple(codes.shape[:-2]):
        raise ValueError(f"T{name}: expected shape {tuple(codes.shape[:-2])}, got {tuple(t.shape)}")
    return codes, t


def _result(value: Any) -> Any:
    """A 0-d result on the CPU as a Python float (the C++ API's); anything else stays a tensor."""
    return float(value) if value.dim() == 0 and value.device.type == "cpu" else value


class OneSidedLUT:
    """Tables ``L_k[idx] = <y_k, rep(idx)>`` for a float query ``y`` (length a multiple of d).

    ``dot(b, T)`` returns ``<x^, y>`` for a quantized vector of the same length given as
    ``b`` (blocks, M, d) and ``T`` (blocks,) from :func:`coset.encode`, without decoding: a
    Python float for host data and CPU tensors, a 0-d float32 tensor on y's device otherwise
    (``b`` may carry leading batch axes there: (..., blocks, M, d) gives (...)). The table is
    float32 (``q^d`` entries per block, at most 65536). Raises ``ValueError`` for a config with
    ``with_dither``, a length not a multiple of d, codes out of range, a block count other than
    y's, and codes on another device than y.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig, y: Any) -> None:
        _check_pair(lattice, config)
        self.config = config
        self._impl = _torch_path(y, "y")
        if self._impl is not None:
            _require_lut_config(config, MAX_LUT_ENTRIES, "OneSidedLut")
            t = torch_float(y, "y").reshape(-1).float()
            if t.numel() % config.d:
                raise ValueError(f"y: length {t.numel()} is not a multiple of d={config.d}")
            self.device = t.device
            self._tables = _op(self._impl, "coset.lut_tables")(t.reshape(-1, config.d), config)
            return
        arr, _, _ = float_array(y, "y")
        arr = _contig(arr.reshape(-1), dtype=np.float32)
        if arr.size % config.d:
            raise ValueError(f"y: length {arr.size} is not a multiple of d={config.d}")
        self.device = None
        self._lut = _native.OneSidedLut(config.native(), arr)
        self._y = arr.copy()  # what a pickle rebuilds the C++ tables from (blocks * d floats)

    def __getstate__(self) -> dict:
        # The C++ tables cannot be pickled (deepcopy, DataLoader workers under "spawn"): the query
        # travels instead and the tables are rebuilt from it, bit for bit.
        state = self.__dict__.copy()
        state.pop("_lut", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._impl is None:
            self._lut = _native.OneSidedLut(self.config.native(), self._y)

    @property
    def blocks(self) -> int:
        return int(self._tables.shape[0]) if self._impl is not None else int(self._lut.blocks)

    @property
    def table(self) -> Any:
        """(blocks, q^d) float32: numpy for the C++ path, a tensor on y's device otherwise."""
        if self._impl is not None:
            return self._tables
        out = np.empty((self._lut.blocks, self._lut.entries), dtype=np.float32)
        self._lut.table(out)
        return out

    def dot(self, b: Any, T: Any = None) -> Any:
        if self._impl is not None:
            codes, t = _torch_codes(b, T, self.config, "", self.device)
            if codes.shape[-3] != self.blocks:
                raise ValueError(f"b: expected {self.blocks} blocks, got {codes.shape[-3]}")
            return _result(_op(self._impl, "coset.lut_dot")(self._tables, codes, t, self.config))
        codes, t = _codes(b, T, self.config, "")
        if codes.shape[0] != self.blocks:
            raise ValueError(f"b: expected {self.blocks} blocks, got {codes.shape[0]}")
        return float(self._lut.dot(codes, t))


class TwoSidedLUT:
    """The table ``<rep(i), rep(j)>`` (q^2d entries: D4 q<=4, E8 q=2, Z2 q<=16).

    ``dot(bx, Tx, by, Ty)`` is ``<x^, y^>`` for two quantized vectors of equal length. ``device``
    (a torch device, or ``None``): where the table lives; codes on a non-CPU device (or under the
    torch backend) use the PyTorch twin there. Results as :meth:`OneSidedLUT.dot`.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig, device: Any = None) -> None:
        _check_pair(lattice, config)
        _require_lut_config(config, MAX_TWO_SIDED_ENTRIES, "TwoSidedLut")
        self.config = config
        self._device = device
        self._tables = {}
        self._lut = None

    def __getstate__(self) -> dict:
        # The C++ table (made at the first CPU dot) cannot be pickled; it is made again when needed.
        return dict(self.__dict__, _lut=None)

    def _table_on(self, impl: str, device: Any):
        key = str(device)
        if key not in self._tables:
            self._tables[key] = _op(impl, "coset.lut_two_sided_table")(self.config, device)
        return self._tables[key]

    def dot(self, bx: Any, Tx: Any, by: Any, Ty: Any) -> Any:
        impl = _torch_path(bx, "bx")
        if impl is not None:
            import torch

            owner = torch.device(self._device) if self._device is not None else bx.device
            cx, tx = _torch_codes(bx, Tx, self.config, "x", owner)
            cy, ty = _torch_codes(by, Ty, self.config, "y", owner)
            if cx.shape != cy.shape:
                raise ValueError(f"by: shape {tuple(cy.shape)} differs from bx's {tuple(cx.shape)}")
            table = self._table_on(impl, cx.device)
            return _result(_op(impl, "coset.lut_two_sided_dot")(table, cx, tx, cy, ty, self.config))
        if self._lut is None:
            self._lut = _native.TwoSidedLut(self.config.native())
        cx, tx = _codes(bx, Tx, self.config, "x")
        cy, ty = _codes(by, Ty, self.config, "y")
        if cx.shape != cy.shape:
            raise ValueError(f"by: shape {tuple(cy.shape)} differs from bx's {tuple(cx.shape)}")
        return float(self._lut.dot(self.config.native(), cx, tx, cy, ty))


class QuantizedMatrix:
    """A float matrix (rows x cols, cols a multiple of d) quantized block-wise along its rows.

    ``matvec(y)`` computes ``A^ @ y`` with one-sided tables (built per call) instead of
    decoding; ``decode()`` returns ``A^``. A tensor ``a`` on a non-CPU device (or under the torch
    backend) keeps its codes there and computes there, bit for bit as the C++ panel kernel (per
    row, blocks in ascending order; Horner over the levels). ``y`` must be on the matrix's device
    (``ValueError`` naming both otherwise). float32 results.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig, a: Any) -> None:
        _check_pair(lattice, config)
        self.config = config
        self._impl = _torch_path(a, "a")
        if self._impl is not None:
            from .quant import _encode_counted

            _require_lut_config(config, MAX_LUT_ENTRIES, "QuantizedMatrix")
            t = torch_float(a, "a").float()
            if t.dim() != 2:
                raise ValueError(f"a: expected a 2-D matrix, got shape {tuple(t.shape)}")
            if t.shape[1] % config.d:
                raise ValueError(f"a: columns {t.shape[1]} are not a multiple of d={config.d}")
            self.shape = tuple(t.shape)
            self.device = t.device
            b, T, _ = _encode_counted(t.reshape(-1, config.d), lattice, config)
            rows, blocks = self.shape[0], self.shape[1] // config.d
            self._b = b.reshape(rows, blocks, config.M, config.d)
            self._t = T.reshape(rows, blocks)
            self._index = _torch_ops.level_index(self._b, config.q)
            self._torch = True
            return
        arr, self._torch, _ = float_array(a, "a")
        if arr.ndim != 2:
            raise ValueError(f"a: expected a 2-D matrix, got shape {tuple(arr.shape)}")
        if arr.shape[1] % config.d:
            raise ValueError(f"a: columns {arr.shape[1]} are not a multiple of d={config.d}")
        self.shape = arr.shape
        self.device = None
        self._qm = _native.QuantizedMatrix.encode(config.native(), _contig(arr, dtype=np.float32))

    def __reduce_ex__(self, protocol):
        if self._impl is None:
            raise TypeError("QuantizedMatrix: a matrix encoded by the C++ path (from numpy or a CPU tensor) cannot "
                            "be pickled or deep-copied (its codes live in C++); build it again from the float "
                            "matrix, or from a tensor under lowbit.backend('torch'), whose codes are tensors")
        return super().__reduce_ex__(protocol)

    def decode(self) -> Any:
        if self._impl is not None:
            from .quant import decode

            out = decode(self._b.reshape(-1, self.config.M, self.config.d), lattice_for(self.config.lattice_type),
                         self.config, self._t.reshape(-1))
            return out.reshape(self.shape)
        out = np.empty(self.shape, dtype=np.float32)
        self._qm.decode(out)
        return back(out, self._torch)

    def matvec(self, y: Any) -> Any:
        if self._impl is not None:
            import torch

            if not is_tensor(y):
                y = as_tensor(y, self.device)
            _backend.check_same_device("y", y, "the matrix", self.device)
            t = torch_float(y, "y").reshape(-1).float()
            if t.numel() != self.shape[1]:
                raise ValueError(f"y: expected length {self.shape[1]}, got {t.numel()}")
            return _op(self._impl, "coset.lut_matvec")(self._index, self._t, t, self.config)
        if is_tensor(y) and y.device.type != "cpu":
            import torch

            _backend.check_same_device("y", y, "the matrix", torch.device("cpu"))
        arr, as_torch, _ = float_array(y, "y")
        arr = _contig(arr.reshape(-1), dtype=np.float32)
        if arr.size != self.shape[1]:
            raise ValueError(f"y: expected length {self.shape[1]}, got {arr.size}")
        out = np.empty(self.shape[0], dtype=np.float32)
        self._qm.matvec_lut(arr, out)
        return back(out, as_torch or is_tensor(y))

"""Sample indices as numpy and torch read them, one rule for every Kuat accessor.

``sample_index`` is the rule for one sample (``archive[i]``, ``decode(i)``, ``label(i)``,
``shape(i)``); ``sample_rows`` the rule for several (``get_batch``, ``decode_batch``,
``get_indices_batch``, ``GPUDataset[...]``).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def sample_index(i: Any, n: int) -> int:
    """One sample index in ``[0, n)``: a Python or numpy integer, or a 0-d integer numpy array or
    tensor (negative values count from the end). TypeError for bools, floats, strings and other
    kinds; IndexError out of range."""
    if isinstance(i, (bool, np.bool_)) or (getattr(i, "dtype", None) is not None and str(i.dtype) in ("bool", "torch.bool")):
        raise TypeError(f"sample index must be an int, got {type(i).__name__} {i!r}")
    if isinstance(i, (slice, list, tuple, range)) or (isinstance(i, np.ndarray) and i.ndim > 0) \
            or (_is_tensor(i) and i.dim() > 0):
        raise TypeError(f"sample index must be an int, got {type(i).__name__}; get_batch / decode_batch take "
                        f"several (a slice, a list, an array, a tensor or a boolean mask)")
    if isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu":
        i = i.item()
    try:
        j = operator.index(i)  # int, numpy integers, 0-d integer tensors
    except TypeError:
        raise TypeError(f"sample index must be an int, got {type(i).__name__}") from None
    k = j + n if j < 0 else j
    if not 0 <= k < n:
        raise IndexError(f"sample index {j} out of range for {n} samples")
    return k


def sample_rows(index: Any, n: int) -> np.ndarray:
    """Rows (int64, 1-D) selected by ``index`` as numpy selects them from ``n`` samples: an integer
    (one row), a slice or range (any step), a sequence, iterable, numpy array or tensor (any device)
    of integers (negative ones from the end), or a boolean mask of length ``n``.

    Raises TypeError for other kinds (floats, a bool alone, strings), IndexError for an index out
    of range or a mask of another length, ValueError for indices with more than one dimension.
    """
    if isinstance(index, slice):
        return np.ascontiguousarray(np.arange(n, dtype=np.int64)[index])
    if isinstance(index, range):
        index = np.asarray(index, dtype=np.int64)
    if isinstance(index, (bool, np.bool_)):
        raise TypeError(f"sample index must be an integer, a slice, integers or a boolean mask, got {index!r}")
    if _is_tensor(index):
        a = index.detach().cpu().numpy() if str(index.dtype) != "torch.bfloat16" else index.detach().cpu().float().numpy()
    else:
        if not isinstance(index, (np.ndarray, list, tuple)) and hasattr(index, "__iter__") \
                and not isinstance(index, (str, bytes, dict)):
            index = list(index)  # generators, sets of ints, dict views
        if isinstance(index, (list, tuple)) and any(_is_tensor(v) for v in index):
            index = [v.item() if v.dim() == 0 else v for v in index]  # a list of 0-d tensors
        try:
            a = np.asarray(index)
        except Exception as e:  # noqa: BLE001 - e.g. ragged nested lists
            raise TypeError(f"sample index {index!r} is not an integer, a slice, integers or a boolean mask") from e
    if a.size == 0:
        a = a.astype(np.int64)
    if a.dtype.kind not in "biu":
        raise TypeError(f"sample indices must be integers or a boolean mask, got {a.dtype} ({index!r})")
    if a.ndim > 1:
        raise ValueError(f"sample indices must be 1-D (or one integer), got shape {a.shape}")
    if a.dtype.kind == "b":
        if a.ndim != 1 or a.size != n:
            raise IndexError(f"boolean mask of shape {a.shape} for {n} samples")
        return np.flatnonzero(a).astype(np.int64)
    rows = a.astype(np.int64).reshape(-1)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        bad = next(int(v) for v in rows.tolist() if not -n <= v < n)
        raise IndexError(f"sample index {bad} out of range for {n} samples")
    return np.where(rows < 0, rows + n, rows)


def integer(value: Any) -> Any:
    """``value`` as an int when it is an integer of any kind (Python, numpy, a 0-d integer array or
    tensor), else None (bools, floats, strings and the rest: the caller raises its own error)."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iu":
            return None
        value = value.item()
    if _is_tensor(value) and (value.dim() != 0 or str(value.dtype) == "torch.bool"):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None

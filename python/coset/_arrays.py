"""Torch/numpy plumbing: tensors cross into the native core as contiguous numpy arrays (CPU)."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from lowbit._backend import as_tensor  # noqa: F401 (re-exported: coset's callers import it from here)

try:
    import torch
except ImportError:  # numpy-only use stays possible
    torch = None


def _contig(arr: Any, dtype: Any = None) -> np.ndarray:
    """C-contiguous without a copy when possible; unlike np.ascontiguousarray, keeps 0-d arrays 0-d."""
    return np.asarray(arr, dtype=dtype, order="C")  # numpy 1 and 2 alike: a copy only when needed


def is_tensor(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def is_tensor_dtype(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.dtype)


def to_numpy(x: Any, name: str) -> Tuple[np.ndarray, bool]:
    """(array, came_from_torch). Tensors must live on the CPU; gradients are not tracked."""
    if is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name}: only CPU tensors are supported, got device {x.device}")
        t = x.detach()
        if t.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16: widen (exact)
            t = t.float()
        return t.contiguous().numpy(), True
    return np.asarray(x), False


def float_array(x: Any, name: str) -> Tuple[np.ndarray, bool, Any]:
    """Float32/float64 C-contiguous array, whether it came from torch, and its original dtype.

    Other real dtypes (float16, bfloat16, integers) are computed in float32.
    """
    if is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name}: only CPU tensors are supported, got device {x.device}")
        if x.is_complex():
            raise ValueError(f"{name}: expected a real tensor, got dtype {x.dtype}")
        if x.dtype == torch.bool:  # as torch_float (the PyTorch twin) and numpy bool arrays
            raise ValueError(f"{name}: expected a real numeric tensor, got dtype {x.dtype}")
        t = x.detach()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()
        return _contig(t.contiguous().numpy()), True, x.dtype
    arr = np.asarray(x)
    original = arr.dtype
    if arr.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    return _contig(arr), False, original


def back(arr: np.ndarray, as_torch: bool, dtype: Any = None) -> Any:
    """The result in the caller's library (and floating dtype when one is given)."""
    if as_torch:
        t = torch.from_numpy(_contig(arr))
        if dtype is not None and isinstance(dtype, torch.dtype) and dtype.is_floating_point and t.dtype != dtype:
            t = t.to(dtype)
        return t
    if dtype is not None and isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating) and arr.dtype != dtype:
        return arr.astype(dtype)
    return arr


def code_array(b: Any, name: str, upper: int) -> np.ndarray:
    """Integer codes in [0, upper) as a contiguous uint8 array, else ValueError naming `name`."""
    arr, _ = to_numpy(b, name)
    if np.issubdtype(arr.dtype, np.floating):
        arr = integral_float_codes(arr, name)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ValueError(f"{name}: values must lie in [0, {upper}), got [{arr.min()}, {arr.max()}]")
    return _contig(arr, dtype=np.uint8)


# --- tensors that stay on their device (the pure-PyTorch backend) -------------------------------

def torch_float(x: Any, name: str) -> Any:
    """A detached float32/float64 tensor on x's device (other real dtypes computed in float32)."""
    if x.is_complex():
        raise ValueError(f"{name}: expected a real tensor, got dtype {x.dtype}")
    t = x.detach()
    if t.dtype not in (torch.float32, torch.float64):
        if t.dtype == torch.bool:
            raise ValueError(f"{name}: expected a real numeric tensor, got dtype {t.dtype}")
        t = t.float()
    return t.contiguous()


def reject_meta(x: Any, name: str, op: str) -> None:
    """ValueError naming ``name`` when ``x`` is a meta tensor (a shape without data)."""
    if is_tensor(x) and x.is_meta:
        raise ValueError(f"{op}: {name} is a meta tensor, which holds no data (shape only) to {op}; "
                         "give it real data on a CPU or GPU device first")


def require_finite(x: Any, what: str, d: int) -> None:
    """ValueError like the C++ core's: ``<what>: x contains NaN or Inf (vector i)``."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).reshape(-1, d).any(-1).nonzero()[0, 0]) if x.numel() else 0
        raise ValueError(f"{what}: x contains NaN or Inf (vector {bad})")


def torch_codes(b: Any, name: str, upper: int) -> Any:
    """Integer codes in [0, upper) as a uint8 tensor on b's device, else ValueError naming `name`.

    Float tensors are accepted when every value is an integer (the namesake's codes are float).
    """
    if b.dtype == torch.bool or b.is_complex():
        raise ValueError(f"{name}: expected an integer array, got dtype {b.dtype}")
    t = b.detach()
    if t.dtype in (torch.float16, torch.bfloat16):  # exact widening; CPU round lacks half kernels
        t = t.float()
    if t.is_floating_point():
        if t.numel() and not bool((torch.isfinite(t) & (t == torch.round(t))).all()):
            raise ValueError(f"{name}: float codes must hold integers, got non-integer or non-finite values")
    if t.numel():
        lo, hi = t.min(), t.max()
        if not t.is_floating_point():  # compare in int64: 256 does not fit a uint8 comparison
            lo, hi = lo.to(torch.int64), hi.to(torch.int64)
        if bool(lo < 0) or bool(hi >= upper):
            fmt = (lambda v: int(v)) if not t.is_floating_point() else (lambda v: float(v))
            raise ValueError(f"{name}: values must lie in [0, {upper}), got [{fmt(lo)}, {fmt(hi)}]")
    return t.to(torch.uint8).contiguous()


def integral_float_codes(arr: np.ndarray, name: str) -> np.ndarray:
    """Float codes that hold integers, as int64 (the namesake's float codes); else ValueError."""
    if arr.size and not bool(np.all(np.isfinite(arr) & (arr == np.round(arr)))):
        raise ValueError(f"{name}: float codes must hold integers, got non-integer or non-finite values")
    return arr.astype(np.int64)

"""Which implementation runs an op on a torch tensor: the C++ core, the CUDA kernels or pure PyTorch.

One rule for every product (Kuat, Coset, BitLab): a public function or module that takes a torch
tensor returns its result on the same device, and never round-trips through the host when the
tensor is not on the CPU.

Backends
--------
``"auto"`` (default)
    C++ kernels (``lowbit._native``) for CPU tensors; the CUDA kernels for CUDA tensors when the
    extension was built with ``LOWBIT_CUDA=ON``; pure PyTorch otherwise (any other device, or a
    CUDA tensor without compiled kernels).
``"torch"``
    Pure PyTorch on every device, CPU included. Bit-identical to the C++ reference (same tie rule,
    same float evaluation order, no FMA contraction where the reference has none); the few places
    where PyTorch cannot promise an order use a named tolerance documented next to the op.
``"cpp"``
    The C++ core; a non-CPU tensor is refused with a ``ValueError`` (no silent host copy).

Select with the environment variable ``LOWBIT_BACKEND`` (read at import) or, scoped and
thread-local, with ``with lowbit.backend("torch"): ...``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator, Optional

BACKENDS = ("auto", "torch", "cpp")

ENV_VAR = "LOWBIT_BACKEND"


def _validated(name: Any, source: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"{source}: backend must be one of {BACKENDS}, got {name!r}")
    return name.lower()


_default = _validated(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
_current: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("lowbit_backend", default=None)


def get_backend() -> str:
    """The backend in force here: the innermost ``with backend(...)``, else ``$LOWBIT_BACKEND``, else ``"auto"``."""
    scoped = _current.get()
    return scoped if scoped is not None else _default


def set_backend(name: str) -> None:
    """Set the process-wide default backend (what ``LOWBIT_BACKEND`` sets at import)."""
    global _default
    _default = _validated(name, "set_backend")


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Run the enclosed block with backend ``name`` (``"auto"``, ``"torch"`` or ``"cpp"``).

    >>> import lowbit
    >>> with lowbit.backend("torch"):
    ...     pass  # every lowbit op on a tensor runs in pure PyTorch here
    """
    token = _current.set(_validated(name, "lowbit.backend"))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def cuda_kernels_compiled() -> bool:
    """True when the native module was built with ``LOWBIT_CUDA=ON``."""
    from . import _native

    return bool(_native.build_info().get("cuda_compiled", False))


def device_of(x: Any) -> Any:
    """The torch device of ``x``; ``None`` for anything that is not a tensor (numpy, lists)."""
    dev = getattr(x, "device", None)
    return dev if dev is not None and hasattr(dev, "type") else None


def select(device: Any, what: str = "input") -> str:
    """Which implementation runs for data on ``device``: ``"cpp"``, ``"cuda"`` or ``"torch"``.

    ``device`` is a ``torch.device`` (or ``None`` for host data such as numpy arrays, which always
    takes the C++ path). ``what`` names the input in the error raised when the ``"cpp"`` backend
    is forced on a non-CPU tensor.
    """
    chosen = get_backend()
    dev_type = "cpu" if device is None else device.type
    if device is None:
        return "cpp"
    if chosen == "torch":
        return "torch"
    if chosen == "cpp":
        if dev_type != "cpu":
            raise ValueError(f"{what}: the 'cpp' backend runs on CPU tensors, got device {device} "
                             f"(use backend 'auto' or 'torch')")
        return "cpp"
    if dev_type == "cpu":
        return "cpp"
    if dev_type == "cuda" and cuda_kernels_compiled():
        return "cuda"
    return "torch"


def uses_torch(x: Any, what: str = "input") -> bool:
    """True when the op on tensor ``x`` must run in pure PyTorch (see :func:`select`).

    CUDA kernels, where a product has none bound for an op yet, fall back to PyTorch too.
    """
    return select(device_of(x), what) != "cpp"


def check_same_device(name: str, x: Any, owner: str, owner_device: Any) -> None:
    """Raise ``ValueError`` naming both devices when tensor ``x`` is not on ``owner_device``."""
    dev = device_of(x)
    if dev is not None and owner_device is not None and dev != owner_device:
        # torch.device("cuda") != torch.device("cuda:0"): compare the resolved type and index
        same = dev.type == owner_device.type and (dev.index or 0) == (owner_device.index or 0)
        if not same:
            raise ValueError(f"{name} is on device {dev} but {owner} is on device {owner_device}; "
                             f"move one of them (e.g. {name}.to({str(owner_device)!r}))")


def linear_output_dtype(x: Any) -> Any:
    """The dtype ``torch.nn.Linear`` gives for input ``x`` here: the autocast dtype when autocast
    is on for x's device type and x is float32/float16/bfloat16 (autocast leaves float64 alone),
    else ``x.dtype``. The quantized layers compute in float32 and return this dtype, so a model
    under ``torch.autocast`` keeps one activation dtype through them, as with ``nn.Linear``."""
    import torch

    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return x.dtype
    kind = x.device.type
    try:  # torch >= 2.4: one API for every device type
        if torch.is_autocast_enabled(kind):
            return torch.get_autocast_dtype(kind)
        return x.dtype
    except TypeError:
        pass
    if kind == "cpu" and torch.is_autocast_cpu_enabled():
        return torch.get_autocast_cpu_dtype()
    if kind == "cuda" and torch.is_autocast_enabled():
        return torch.get_autocast_gpu_dtype()
    return x.dtype


def as_tensor(x: Any, device: Any = None) -> Any:
    """``x`` as a torch tensor on ``device`` (a tensor is moved only when ``device`` is given).

    Host data in any container torch.as_tensor refuses or warns about is accepted: numpy arrays
    with negative strides (``a[::-1]``), read-only or memory-mapped arrays (copied, so the result
    never aliases memory torch must not write), lists and numpy scalars. Unsigned integers wider
    than 8 bits (no torch dtype before torch 2.3) become int64.
    """
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    arr = np.asarray(x)
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = np.array(arr, order="C")  # a writable copy with positive strides
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)
    return torch.as_tensor(arr, device=device)

"""Which implementation runs a Coset op on an input: the C++ core, a CUDA kernel or the PyTorch twin.

See :mod:`lowbit._backend` for the rule (C++ for host data and CPU tensors under ``"auto"``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from lowbit import _backend, _cuda_ops

from . import _torch_ops
from ._arrays import is_tensor


def torch_path(x: Any, name: str) -> Optional[str]:
    """None for host data and CPU tensors under the C++ backend; else ``"torch"`` or ``"cuda"``."""
    if not is_tensor(x):
        return None
    impl = _backend.select(x.device, name)
    return None if impl == "cpp" else impl


def op(impl: str, name: str) -> Callable:
    """The CUDA kernel registered for op ``name`` when ``impl == "cuda"``, else the PyTorch twin."""
    if impl == "cuda":
        fn = _cuda_ops.get(name)
        if fn is not None:
            return fn
    return getattr(_torch_ops, name.split(".", 1)[1])

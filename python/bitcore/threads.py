"""How many threads lowbit's C++ kernels use when PyTorch code calls them.

lowbit's C++ kernels run on lowbit's own thread pool (``LOWBIT_NUM_THREADS`` threads, else one per
core, fixed when the pool starts), not on PyTorch's intra-op threads. Called from PyTorch (the
``bitcore.kernels.bindings`` wrappers) a kernel uses at most :func:`kernel_threads` of them, so
``torch.set_num_threads(n)`` limits both; the result does not depend on the count.

On a CPU with few cores the two pools compete: after each parallel PyTorch op its OpenMP threads
keep polling a core for a while, the core a lowbit thread then waits for. A model whose heavy work
is lowbit kernels (a deployed :class:`bitmodels.BitLM`) therefore runs its PyTorch ops on one thread
inside :func:`torch_ops_on_one_thread`, and its kernels on the threads PyTorch was given.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

import torch

__all__ = ["kernel_threads", "torch_ops_on_one_thread"]

_KERNEL_THREADS: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("lowbit_kernel_threads",
                                                                                default=None)


def kernel_threads() -> int:
    """The most threads of lowbit's pool one C++ kernel call may use (>= 1): ``torch.get_num_threads()``,
    or, inside :func:`torch_ops_on_one_thread`, PyTorch's count on entry. The pool's own size caps it."""
    n = _KERNEL_THREADS.get()
    return max(1, torch.get_num_threads() if n is None else n)


@contextlib.contextmanager
def torch_ops_on_one_thread() -> Iterator[None]:
    """Within: PyTorch's ops run on one thread (``torch.set_num_threads(1)``) while lowbit's kernels keep
    the :func:`kernel_threads` in force on entry; both are restored on exit (also on an exception).
    Nested uses keep the outer entry's count. ``torch.set_num_threads`` is process-wide on some
    builds: do not run PyTorch work in other Python threads meanwhile if its thread count matters."""
    threads = torch.get_num_threads()
    token = _KERNEL_THREADS.set(kernel_threads())
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)
        _KERNEL_THREADS.reset(token)

"""Registry of CUDA kernels bound into Python, keyed by op name (``"coset.encode"``, ...).

Each product implements every op twice in Python-visible form: the C++ path for CPU tensors and a
pure-PyTorch function (the device-generic reference). A CUDA kernel for an op registers here under
the op's name and takes exactly the arguments of the PyTorch function of the same name and returns
the same; the product's dispatcher asks :func:`get` when :func:`lowbit._backend.select` says
``"cuda"`` and falls back to the PyTorch function when nothing is registered.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, Optional

_OPS: Dict[str, Callable] = {}


def register(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as the CUDA implementation of op ``name``."""

    def wrap(fn: Callable) -> Callable:
        _OPS[name] = fn
        return fn

    return wrap


_BUILTIN = _OPS  # where the bound kernels go: a test may swap _OPS for a registry of its own
_loaded = False


def _load() -> None:
    """Register the bound kernels (:data:`lowbit._cuda_kernels.OPS`) once, when the build has CUDA.

    They go into the module's own registry even while a test has swapped ``_OPS`` for another
    dict, and never replace an op registered there before them.
    """
    global _loaded
    if _loaded:
        return
    # The modules themselves (sys.modules), not package attributes, which a test may replace.
    native = importlib.import_module("lowbit._native")
    if hasattr(native, "cuda"):  # LOWBIT_CUDA=ON builds only
        for name, fn in importlib.import_module("lowbit._cuda_kernels").OPS.items():
            _BUILTIN.setdefault(name, fn)
    _loaded = True


def get(name: str) -> Optional[Callable]:
    """The CUDA implementation of op ``name``, or ``None`` (not compiled, or no kernel for it).

    The first call imports the kernels' wrappers (and torch); products call this only once
    :func:`lowbit._backend.select` has said ``"cuda"``, i.e. for a CUDA tensor in a CUDA build.
    """
    _load()
    return _OPS.get(name)


def names() -> list:
    """Names of every op with a registered CUDA kernel."""
    _load()
    return sorted(_OPS)

"""Test helper: make the native module and numpy raise, to prove a path is pure PyTorch."""

from __future__ import annotations

import sys

PACKAGES = ("lowbit", "kuat", "coset", "bitcore", "bitlayers", "bitmodels", "bitlab")


def forbid_native_and_numpy(mp, packages=PACKAGES) -> None:
    """With pytest's ``monkeypatch`` ``mp``: every module-level name in ``packages`` bound to
    ``lowbit._native`` or one of its submodules (``from lowbit._native import coset as _native``)
    becomes an object whose attributes raise, and so do numpy's array makers and the tensor<->numpy
    conversions. Undone when the test ends."""
    import numpy
    import torch

    import lowbit

    class _Forbidden:
        def __init__(self, name):
            self._name = name

        def __getattr__(self, attr):
            raise AssertionError(f"the torch backend touched {self._name}.{attr}")

    native = lowbit._native
    targets = {id(native): "lowbit._native"}
    for sub in dir(native):
        obj = getattr(native, sub)
        if type(obj) is type(native):
            targets[id(obj)] = f"lowbit._native.{sub}"
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or mod_name.split(".")[0] not in packages:
            continue
        for attr, value in list(vars(mod).items()):
            if id(value) in targets:
                mp.setattr(mod, attr, _Forbidden(targets[id(value)]))

    def _forbid(what):
        def raiser(*args, **kwargs):
            raise AssertionError(f"the torch backend called {what}")
        return raiser

    mp.setattr(torch.Tensor, "numpy", _forbid("Tensor.numpy"))
    mp.setattr(torch, "from_numpy", _forbid("torch.from_numpy"))
    for fn in ("array", "asarray", "ascontiguousarray", "empty", "zeros", "frombuffer"):
        mp.setattr(numpy, fn, _forbid(f"numpy.{fn}"))

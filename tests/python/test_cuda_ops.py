"""lowbit._cuda_ops: the bound CUDA kernels register on first use, and only in a CUDA build."""

from __future__ import annotations

import sys

import lowbit
from lowbit import _cuda_ops

OURS = {"coset.encode", "coset.decode", "bitlab.linear_int8", "kuat.decode_packed"}


def test_registry_matches_the_build():
    names = set(_cuda_ops.names())
    if lowbit.build_info()["cuda_compiled"]:
        assert OURS <= names
        assert all(callable(_cuda_ops.get(n)) for n in OURS)
        assert "lowbit._cuda_kernels" in sys.modules
    else:  # nothing to register; the wrappers (and their torch import) stay unloaded
        assert not names & OURS
        assert _cuda_ops.get("coset.encode") is None
        assert "lowbit._cuda_kernels" not in sys.modules


def test_a_swapped_registry_is_left_as_the_test_made_it(monkeypatch):
    monkeypatch.setattr(_cuda_ops, "_OPS", {})
    assert _cuda_ops.get("coset.encode") is None and _cuda_ops.names() == []


def test_register_and_get():
    def fake(x):
        return x

    _cuda_ops.register("test.fake_op")(fake)
    try:
        assert _cuda_ops.get("test.fake_op") is fake
        assert "test.fake_op" in _cuda_ops.names()
    finally:
        _cuda_ops._OPS.pop("test.fake_op")

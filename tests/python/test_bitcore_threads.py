"""bitcore.threads: the thread count lowbit's C++ kernels get from PyTorch, and the one-thread scope for
PyTorch's own ops."""

from __future__ import annotations

import pytest
import torch

from bitcore.threads import kernel_threads, torch_ops_on_one_thread
from deps_helpers import need_module

need_module("lowbit._native")


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_kernel_threads_follow_torch_and_the_scope_restores_them(torch_threads):
    for n in (1, 3):
        torch.set_num_threads(n)
        assert kernel_threads() == n
    with torch_ops_on_one_thread():
        assert torch.get_num_threads() == 1 and kernel_threads() == 3
        with torch_ops_on_one_thread():  # nested: the outer entry's count
            assert torch.get_num_threads() == 1 and kernel_threads() == 3
        assert torch.get_num_threads() == 1 and kernel_threads() == 3
    assert torch.get_num_threads() == 3 and kernel_threads() == 3
    with pytest.raises(RuntimeError, match="boom"):
        with torch_ops_on_one_thread():
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 3 and kernel_threads() == 3


def test_cpp_wrappers_pass_the_thread_count_and_results_do_not_depend_on_it(torch_threads, monkeypatch):
    from bitcore.kernels.bindings import bitlinear_cpp as cpp

    torch.manual_seed(0)
    trits = torch.randint(-1, 2, (37, 300), dtype=torch.int8)
    packed = cpp.pack_2bit(trits)
    scales = torch.rand(37) + 0.5
    x = torch.randn(70, 300)
    native = cpp._native
    seen = []

    class Recorder:
        def __getattr__(self, name):
            fn = getattr(native, name)
            return lambda *a: seen.append((name, a[-1])) or fn(*a)

    results = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        monkeypatch.setattr(cpp, "_native", Recorder())
        results[n] = (cpp.bitlinear_int8(x, packed, 300, scales, None, "per_channel"),
                      cpp.bitlinear_f32(x, packed, 300, scales, None),
                      cpp.gemm_int8(torch.randint(-127, 128, (70, 300), dtype=torch.int8,
                                                  generator=torch.Generator().manual_seed(1)), packed))
        monkeypatch.setattr(cpp, "_native", native)
    assert seen == [(op, n) for n in (1, 2) for op in ("bitlinear_int8", "bitlinear_f32", "gemm_int8")]
    assert all(torch.equal(a, b) for a, b in zip(results[1], results[2]))
    # 0 (the binding's default) = the whole pool, the same result again
    y0 = torch.from_numpy(native.bitlinear_int8(x.numpy(), packed.numpy(), 300, scales.numpy(), None, "per_channel"))
    assert torch.equal(y0, results[1][0])

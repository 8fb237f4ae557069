"""Coset layers through a PyTorch user's lifecycle: threads, pickles of earlier layers."""

from __future__ import annotations

import copy
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402

from coset import QLinear, QuantizationConfig  # noqa: E402
from coset.model import deploy_model  # noqa: E402

CFG = QuantizationConfig(lattice_type="D4", q=4, M=2)


def _reference(layer: QLinear, x: torch.Tensor) -> torch.Tensor:
    fresh = QLinear(layer.in_features, layer.out_features, CFG).eval()
    fresh.load_state_dict(layer.state_dict())
    with torch.no_grad():
        return fresh(x)


def test_eval_forward_in_another_thread_never_pairs_a_new_key_with_the_old_weights(monkeypatch):
    # The eval cache is (key, weight copy, W^). Stored as three attributes, a forward in another
    # thread could read the new key and copy with the previous W^ (old weights' outputs). Here the
    # thread rebuilding the cache is held just before it stores anything named like the cache,
    # while the main thread runs a forward.
    torch.manual_seed(0)
    layer = QLinear(32, 8, CFG).eval()
    x = torch.randn(3, 32)
    with torch.no_grad():
        layer(x)  # cache for the first weights
        layer.weight.normal_()
    want = _reference(layer, x)
    held, release = threading.Event(), threading.Event()
    real_setattr = QLinear.__setattr__
    stored = []

    def slow_setattr(self, name, value):
        if name.startswith(("_cache", "_qcache")) and value is not None and not held.is_set():
            stored.append(name)
            if name in ("_cache_value", "_qcache"):  # the last store of the new cache
                held.set()
                release.wait(5)
        real_setattr(self, name, value)

    monkeypatch.setattr(QLinear, "__setattr__", slow_setattr)
    with ThreadPoolExecutor(1) as pool:
        background = pool.submit(lambda: layer(x).detach())
        assert held.wait(5)
        with torch.no_grad():
            during = layer(x)
        release.set()
        after_thread = background.result()
    monkeypatch.setattr(QLinear, "__setattr__", real_setattr)
    assert torch.equal(during, want)
    assert torch.equal(after_thread, want)
    with torch.no_grad():
        assert torch.equal(layer(x), want)


@pytest.mark.parametrize("state", ["eval", "deployed"])
def test_four_threads_give_the_sequential_outputs(state):
    torch.manual_seed(0)
    model = nn.Sequential(QLinear(32, 16, CFG), nn.ReLU(), QLinear(16, 8, CFG)).eval()
    if state == "deployed":
        deploy_model(model)
    xs = [torch.randn(2, 32) for _ in range(16)]
    with torch.no_grad():
        want = [model(x) for x in xs]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(model, xs))
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_layer_pickled_with_the_earlier_cache_attributes_still_works():
    layer = QLinear(16, 4, CFG).eval()
    x = torch.randn(2, 16)
    with torch.no_grad():
        want = layer(x)
    state = layer.__getstate__() if hasattr(layer, "__getstate__") else layer.__dict__
    state = dict(state)
    state.pop("_qcache", None)
    state.update(_cache_key=None, _cache_snapshot=None, _cache_value=None)  # an earlier release's pickle
    old = QLinear.__new__(QLinear)
    old.__setstate__(state)
    with torch.no_grad():
        assert torch.equal(old(x), want)
    clone = copy.deepcopy(pickle.loads(pickle.dumps(old)))
    with torch.no_grad():
        assert torch.equal(clone(x), want)


def test_vlut_table_follows_writes_that_bypass_the_version_counter():
    # The one-sided table of the same query tensor is reused while its values are unchanged; writes
    # through `.data` and through a numpy view leave `_version` alone and must still be seen.
    import numpy as np

    from coset import D4Lattice
    from coset.quant.vlut import vLUTManager

    cfg = QuantizationConfig(lattice_type="D4", q=3, M=1)
    manager = vLUTManager(D4Lattice(), cfg)

    def fresh(q):
        return vLUTManager(D4Lattice(), cfg).build_one_sided_vlut(q.clone())

    q = torch.tensor([0.5, -1.0, 2.0, 0.25])
    first = manager.build_one_sided_vlut(q)
    assert manager.build_one_sided_vlut(q) is first  # unchanged: the cached table
    q.data.copy_(torch.tensor([1.0, 1.0, -3.0, 0.0]))
    assert torch.equal(manager.build_one_sided_vlut(q), fresh(q))
    values = np.array([2.0, 0.0, 1.0, -1.0], dtype=np.float32)
    view = torch.from_numpy(values)
    manager.build_one_sided_vlut(view)
    values[:] = [-2.0, 0.5, 0.5, 3.0]
    assert torch.equal(manager.build_one_sided_vlut(view), fresh(view))


def test_eval_cache_built_under_inference_mode_serves_a_later_grad_forward():
    # nn.Linear after an inference-mode pass still runs with autograd; QLinear's cached W^ was an
    # inference tensor and F.linear refused to save it for backward.
    layer = QLinear(16, 4, CFG).eval()
    x = torch.randn(2, 16)
    with torch.inference_mode():
        first = layer(x)
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    y.sum().backward()
    assert torch.equal(y.detach(), first)
    assert xg.grad is not None and layer.weight.grad is not None


def test_packed_state_dict_loaded_under_inference_mode_gives_ordinary_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(QLinear(16, 8, CFG), nn.ReLU(), QLinear(8, 4, CFG)).eval()
    deploy_model(model)
    target = deploy_model(nn.Sequential(QLinear(16, 8, CFG), nn.ReLU(), QLinear(8, 4, CFG)).eval())
    with torch.inference_mode():
        target.load_state_dict(model.state_dict())
    assert not any(t.is_inference() for t in target.buffers())
    x = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(target(x), model(x))
        target[0].row_scale.mul_(2)  # an ordinary buffer takes writes outside inference mode


def test_lookup_tables_pickle_and_a_cpp_quantized_matrix_says_why_it_cannot():
    import numpy as np

    import lowbit
    from coset import D4Lattice, encode
    from coset.lut import OneSidedLUT, QuantizedMatrix, TwoSidedLUT

    cfg = QuantizationConfig(lattice_type="D4", q=3, M=2)
    y = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    x = torch.randn(16)
    b, T = encode(x.reshape(-1, 4), D4Lattice(), cfg)[:2]
    one = OneSidedLUT(D4Lattice(), cfg, y)
    want = one.dot(b, T)
    y[:] = 0  # the caller's array changes afterwards: the pickle still holds the query it was built from
    for clone in (pickle.loads(pickle.dumps(one)), copy.deepcopy(one)):
        assert clone.dot(b, T) == want
        np.testing.assert_array_equal(clone.table, one.table)
    two = TwoSidedLUT(D4Lattice(), cfg)
    first = two.dot(b, T, b, T)  # makes its C++ table
    assert pickle.loads(pickle.dumps(two)).dot(b, T, b, T) == first
    with lowbit.backend("cpp"), pytest.raises(TypeError, match="QuantizedMatrix: .*cannot be pickled"):
        pickle.dumps(QuantizedMatrix(D4Lattice(), cfg, torch.randn(3, 8)))
    with lowbit.backend("torch"):
        qm = QuantizedMatrix(D4Lattice(), cfg, torch.randn(3, 8))
        v = torch.randn(8)
        assert torch.equal(copy.deepcopy(qm).matvec(v), qm.matvec(v))

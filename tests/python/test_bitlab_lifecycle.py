"""BitLab layers and models through a PyTorch user's lifecycle: threads, pickling, partial loads."""

from __future__ import annotations

import copy
import pickle
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402

from bitcore.config import BitQuantConfig  # noqa: E402
from bitlayers.bitlinear import BitLinear  # noqa: E402


def _twin(layer: BitLinear) -> BitLinear:
    """A fresh layer holding the same latent weights, in the same mode."""
    twin = BitLinear(layer.in_features, layer.out_features, quant_config=layer.quant_config)
    with torch.no_grad():
        twin.weight.copy_(layer.weight)
        twin.bias.copy_(layer.bias)
    return twin.train(layer.training)


@pytest.mark.parametrize("config", [None, BitQuantConfig(activation_dtype="int8", weight_granularity="per_channel")])
def test_first_forwards_from_four_threads_after_a_weight_write_agree(config):
    # The packed cache is checked and rebuilt on the first eval forward after a write; four threads
    # doing it at once used to mix the old and new caches (a wrong output). A short switch interval
    # makes the threads interleave often.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _race(config)
    finally:
        sys.setswitchinterval(old)


def _race(config):
    torch.manual_seed(0)
    x = torch.randn(5, 64)
    for trial in range(40):
        torch.manual_seed(1)
        layer = BitLinear(64, 16, quant_config=config).eval()
        with torch.no_grad():
            layer.weight.normal_()
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda _: layer(x), range(8)))
        want = _twin(layer)(x)
        assert all(torch.equal(o, want) for o in outs), f"trial {trial}"
        assert torch.equal(layer(x), want)
        assert torch.equal(layer.qweight, _twin(layer).qweight)


def test_cache_rebuild_runs_in_one_thread_at_a_time(monkeypatch):
    # Deterministic form of the race above: a slow quantization keeps the first thread inside the
    # rebuild while the others arrive; they must wait for it, then use its cache.
    import bitlayers.base as base

    real, inside, most = base.kernel_ternarize, [0], [0]

    def slow(kernel, weight):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.02)
        try:
            return real(kernel, weight)
        finally:
            inside[0] -= 1

    layer = BitLinear(32, 8).eval()
    with torch.no_grad():
        layer.weight.normal_()
    monkeypatch.setattr(base, "kernel_ternarize", slow)
    x = torch.randn(2, 32)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: layer(x), range(4)))
    monkeypatch.setattr(base, "kernel_ternarize", real)
    assert most[0] == 1
    want = _twin(layer)(x)
    assert all(torch.equal(o, want) for o in outs)


@pytest.mark.parametrize("state", ["train", "eval", "deployed"])
def test_threads_give_the_sequential_outputs(state):
    torch.manual_seed(0)
    layer = BitLinear(32, 8)
    if state == "eval":
        layer.eval()
    elif state == "deployed":
        layer.deploy()
    xs = [torch.randn(3, 32) for _ in range(24)]
    want = [layer(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(layer, xs))
    assert all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("how", [pickle.dumps, copy.deepcopy])
def test_copies_get_their_own_lock_and_cache(how):
    layer = BitLinear(16, 4).eval()
    x = torch.randn(2, 16)
    y = layer(x)
    clone = pickle.loads(how(layer)) if how is pickle.dumps else how(layer)
    assert clone._lock() is not layer._lock()
    assert torch.equal(clone(x), y)
    with torch.no_grad():
        clone.weight.neg_()
    assert torch.equal(layer(x), y) and not torch.equal(clone(x), y)


@pytest.mark.parametrize("state", ["train", "eval", "deployed"])
def test_bias_mismatch_follows_nn_linear_strict_rules(state):
    # strict=False: reported in missing_keys / unexpected_keys, the layer keeps its bias (nn.Linear's
    # behaviour); strict=True: load_state_dict raises naming the key.
    for src_bias, dst_bias in ((True, False), (False, True)):
        src = BitLinear(8, 4, bias=src_bias)
        if state == "eval":
            src.eval()
        elif state == "deployed":
            src.deploy()
        want = nn.Linear(8, 4, bias=dst_bias).load_state_dict(nn.Linear(8, 4, bias=src_bias).state_dict(),
                                                              strict=False)
        dst = BitLinear(8, 4, bias=dst_bias).eval()
        bias_before = None if dst.bias is None else dst.bias.detach().clone()
        got = dst.load_state_dict(src.state_dict(), strict=False)
        assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
        if bias_before is not None:
            assert torch.equal(dst.bias, bias_before)
        src.eval()
        assert torch.equal(dst.qweight, src.qweight) and dst.deployed == src.deployed  # the weights did load
        with pytest.raises(RuntimeError, match="bias"):
            BitLinear(8, 4, bias=dst_bias).load_state_dict(src.state_dict())


def test_caches_built_under_inference_mode_serve_later_grad_forwards_and_writes():
    # nn.Linear: a forward under torch.inference_mode() changes nothing a later autograd forward or
    # a buffer write depends on. The packed cache (and the qweight buffers) rebuilt there used to be
    # inference tensors, so writes to qweight afterwards raised.
    torch.manual_seed(0)
    layer = BitLinear(16, 4).eval()
    x = torch.randn(2, 16)
    with torch.no_grad():
        layer.weight.normal_()  # the next forward rebuilds the cache...
    with torch.inference_mode():
        first = layer(x)  # ...under inference mode
    assert not layer.qweight.is_inference() and not layer.qweight_scale.is_inference()
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    y.sum().backward()
    assert torch.equal(y.detach(), first) and xg.grad is not None
    with torch.no_grad():
        layer.qweight.zero_()
    assert torch.equal(layer(x), layer.bias.detach().expand(2, 4))
    deployed = BitLinear(16, 4)
    with torch.inference_mode():
        deployed.deploy()
    assert not deployed.packed_2bit.is_inference() and not deployed.weight_scale.is_inference()


def test_deployed_bitlm_runs_its_first_forward_under_inference_mode():
    # The fused q/k/v and gate/up buffers were made there as inference tensors, whose missing
    # version counter then raised RuntimeError in that very forward.
    from bitmodels import BitLM, BitLMConfig

    torch.manual_seed(0)
    config = BitLMConfig(vocab_size=258, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         max_position_embeddings=32)
    model = BitLM(config).deploy()
    ids = torch.randint(0, 258, (1, 6))
    with torch.inference_mode():
        first = model(ids)
        assert torch.equal(model(ids), first)
        out = model.generate(ids, max_new_tokens=3)
    assert out.shape == (1, 9)
    with torch.no_grad():
        assert torch.equal(model(ids), first)
    assert not any(t.is_inference() for t in model.buffers())
    reloaded = BitLM(config)
    with torch.inference_mode():
        reloaded.load_state_dict(model.state_dict())  # a deployed dict, loaded in inference mode
        assert torch.equal(reloaded(ids), first)
    assert not any(t.is_inference() for t in reloaded.buffers())


def _forward_in_child(layer, x, queue):
    queue.put(layer(x).tolist())  # plain numbers: the child may exit before the parent reads


def test_a_process_forked_while_a_thread_holds_the_cache_lock_can_run_the_layer():
    import multiprocessing
    import threading

    torch.manual_seed(0)
    layer = BitLinear(16, 4).eval()
    x = torch.randn(2, 16)
    want = layer(x)
    held, release = threading.Event(), threading.Event()

    def hold():
        with layer._lock():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    child = None
    try:
        assert held.wait(5)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_forward_in_child, args=(layer, x, queue))
        child.start()
        got = queue.get(timeout=30)  # the child's forward would wait forever on the inherited lock
        child.join(30)
    finally:
        release.set()
        holder.join()
        if child is not None and child.is_alive():
            child.kill()
    assert torch.equal(torch.tensor(got), want)


def test_native_bitmlp_pickles_by_reloading_its_file(tmp_path, monkeypatch):
    import numpy as np

    from bitmodels import AutoBitModel, BitMLPConfig, export_bitmlp, load_bitmlp

    torch.manual_seed(0)
    model = AutoBitModel.from_config(BitMLPConfig(n_layers=2, in_channels=12, hidden_dim=8, out_channels=3,
                                                  dropout=0.0)).deploy()
    monkeypatch.chdir(tmp_path)
    export_bitmlp(model, "mlp.blm")
    native = load_bitmlp("mlp.blm")  # a relative path
    x = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
    want = native.forward(x)
    monkeypatch.chdir("/")
    for clone in (pickle.loads(pickle.dumps(native)), copy.deepcopy(native)):
        assert np.array_equal(clone.forward(x), want)

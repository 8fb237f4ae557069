"""BitLinear's packed weights follow every write to the latent weights (issue 15, kind 6).

Each write kind below changes ``weight`` after eval() built the packed cache; the layer's next
eval output must equal that of a fresh layer holding the same weights. Writes through ``.data``,
numpy views or a re-used storage address change neither ``weight._version`` nor ``data_ptr()``:
the cache compares values too (see ``BitLayerBase``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.bitlinear import BitLinear

K, N = 64, 8


def fresh_like(layer: BitLinear) -> BitLinear:
    ref = BitLinear(K, N, quant_config=layer.quant_config)
    with torch.no_grad():
        ref.weight.copy_(layer.weight.detach().float())
        ref.bias.copy_(layer.bias.detach().float())
    return ref.eval()


def _sgd(layer):
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer.train()
    layer(torch.randn(4, K)).pow(2).sum().backward()
    opt.step()


def _sgd_foreach(layer):
    opt = torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9, foreach=True)
    layer.train()
    for _ in range(2):
        opt.zero_grad()
        layer(torch.randn(4, K)).pow(2).sum().backward()
        opt.step()


def _adam(layer):
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer.train()
    layer(torch.randn(4, K)).pow(2).sum().backward()
    opt.step()


def _load_state_dict(layer):
    other = BitLinear(K, N, quant_config=layer.quant_config)
    layer.load_state_dict(other.state_dict())


def _numpy_view(layer):
    layer.weight.detach().numpy()[:] = torch.randn(N, K).numpy()


def _reused_storage(layer):
    # ``.data =`` a tensor that reuses the very storage the cache saw: same address, same version.
    storage = layer.weight.data
    storage.copy_(torch.randn(N, K))
    layer.weight.data = storage


def _to_and_back(layer):
    layer.double()
    with torch.no_grad():
        layer.weight.mul_(-1)
    layer.float()


WRITES = {
    "no_grad copy_": lambda l: _no_grad(l.weight.copy_, torch.randn(N, K)),
    "data.copy_": lambda l: l.weight.data.copy_(torch.randn(N, K)),
    "data.normal_": lambda l: l.weight.data.normal_(),
    "data = new": lambda l: setattr(l.weight, "data", torch.randn(N, K)),
    "data[...] =": lambda l: l.weight.data.__setitem__((slice(0, 3), slice(None)), torch.randn(3, K)),
    "one element via data": lambda l: l.weight.data.__setitem__((0, 0), 5.0),
    "EMA via data": lambda l: l.weight.data.mul_(0.5).add_(torch.randn(N, K), alpha=0.5),
    "detach().copy_": lambda l: l.weight.detach().copy_(torch.randn(N, K)),
    "nn.init": lambda l: nn.init.xavier_uniform_(l.weight),
    "new Parameter": lambda l: setattr(l, "weight", nn.Parameter(torch.randn(N, K))),
    "vector_to_parameters": lambda l: nn.utils.vector_to_parameters(torch.randn(N * K + N), l.parameters()),
    "sgd step": _sgd,
    "sgd foreach momentum": _sgd_foreach,
    "adam step": _adam,
    "load_state_dict": _load_state_dict,
    "numpy view": _numpy_view,
    "reused storage": _reused_storage,
    "to(float64) and back": _to_and_back,
}


def _no_grad(fn, *args):
    with torch.no_grad():
        fn(*args)


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_every_write_rebuilds_the_packed_weights(write, granularity, backend_name):
    torch.manual_seed(0)
    config = BitQuantConfig(granularity, "int8", "per_channel")
    layer = BitLinear(K, N, quant_config=config).eval()
    x = torch.randn(5, K)
    before = layer(x)                      # builds the cache
    qweight_before = layer.qweight.clone()
    WRITES[write](layer)
    layer.eval()
    ref = fresh_like(layer)
    after = layer(x)
    assert not torch.equal(after, before), "the write changed nothing: the test would prove nothing"
    assert torch.equal(after, ref(x))
    assert torch.equal(layer.qweight, ref.qweight) and torch.equal(layer.qweight_scale, ref.qweight_scale)
    assert torch.equal(layer.scale, ref.scale)
    if not torch.equal(ref.qweight, qweight_before):
        assert not torch.equal(layer.qweight, qweight_before)


def test_write_between_eval_and_first_forward():
    torch.manual_seed(0)
    layer = BitLinear(K, N).eval()        # eval() quantizes at once (the namesake's buffers)
    layer.weight.data.copy_(torch.randn(N, K))
    x = torch.randn(3, K)
    assert torch.equal(layer(x), fresh_like(layer)(x))


def test_unchanged_weights_keep_the_cache():
    layer = BitLinear(K, N).eval()
    x = torch.randn(3, K)
    layer(x)
    packed = layer.packed_weights()[0]
    layer.weight.data.copy_(layer.weight.detach().clone())  # same values: nothing to rebuild
    layer(x)
    assert layer.packed_weights()[0] is packed


def test_deploy_after_a_data_write_packs_the_new_weights():
    layer = BitLinear(K, N).eval()
    x = torch.randn(3, K)
    layer(x)
    layer.weight.data.normal_()
    expected = fresh_like(layer)(x)
    layer.deploy()
    assert torch.equal(layer(x), expected)

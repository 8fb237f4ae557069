"""BitLab fixes from a new-user review: gradients through eval/deployed layers, the model config
round trip, user kernels overriding the namesake API, qweight writes, meta tensors, binding shape
errors, and the packed_weight / packed_2bit names."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitcore.kernels import KernelRegistry
from bitcore.kernels.bitlinear_torch import ReferenceKernel
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, BitMLPConfig

CONFIGS = [
    BitQuantConfig(),
    BitQuantConfig(activation_dtype="int8", weight_granularity="per_channel"),
]


def w_deq(layer: BitLinear) -> torch.Tensor:
    return layer.qweight.to(torch.float32) * layer.scale.reshape(-1, 1)


# ----------------------------------------------------------------------------- 1. gradients
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("deployed", [False, True])
def test_eval_and_deployed_layers_pass_gradients_to_earlier_layers(config, deployed):
    torch.manual_seed(0)
    pre = nn.Linear(8, 16)
    layer = BitLinear(16, 4, quant_config=config)
    layer.deploy() if deployed else layer.eval()
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        expected = layer(pre(x))
    h = pre(x)
    h.retain_grad()
    y = layer(h)
    assert torch.equal(y, expected)  # the forward is the same bit for bit
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    assert pre.weight.grad is not None and bool(pre.weight.grad.abs().sum() > 0)
    torch.testing.assert_close(h.grad, grad_y @ w_deq(layer), rtol=1e-6, atol=1e-6)
    # no gradient for the layer's own parameters in eval / deployed mode
    for p in layer.parameters():
        assert p.grad is None


def test_eval_forward_without_grad_is_unchanged():
    torch.manual_seed(1)
    layer = BitLinear(16, 4).eval()
    x = torch.randn(5, 16)
    y_plain = layer(x)
    assert not y_plain.requires_grad and y_plain.grad_fn is None
    xr = x.clone().requires_grad_(True)
    with torch.no_grad():
        y_nograd = layer(xr)
    assert y_nograd.grad_fn is None
    assert torch.equal(y_plain, y_nograd)
    assert torch.equal(y_plain, layer(xr))


def test_eval_gradient_keeps_input_dtype():
    layer = BitLinear(16, 4).eval()
    x = torch.randn(3, 16, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.dtype == torch.float64 and x.grad.shape == x.shape


# ----------------------------------------------------------------------------- 2. config round trip
def test_get_config_reports_the_quant_config_in_force():
    qc = BitQuantConfig(activation_dtype="int8", weight_granularity="per_channel")
    user_config = BitMLPConfig(in_channels=32, hidden_dim=16, out_channels=4)
    torch.manual_seed(0)
    m = AutoBitModel.from_config(user_config, qc)
    assert m.get_config().quant_config == qc == m.get_quant_config()
    assert user_config.quant_config == BitQuantConfig()  # the caller's config is left alone
    rebuilt = AutoBitModel.from_config(m.get_config())
    assert rebuilt.get_quant_config() == qc
    rebuilt.load_state_dict(m.state_dict())
    m.eval()
    rebuilt.eval()
    x = torch.randn(6, 32)
    assert torch.equal(m(x), rebuilt(x))


# ----------------------------------------------------------------------------- 3. user kernels
@pytest.fixture
def registered():
    kernels = []

    def register(kernel_cls):
        KernelRegistry.register(priority=1000)(kernel_cls)
        kernels.append(kernel_cls)
        return kernel_cls

    yield register
    for kernel_cls in kernels:
        KernelRegistry.unregister(kernel_cls)


@pytest.mark.parametrize("deployed", [False, True])
def test_layer_uses_an_overridden_namesake_forward(registered, deployed):
    calls = []

    class Zero(ReferenceKernel):
        def forward(self, x, qweight_scale, qweight, bias=None):
            calls.append(tuple(qweight.shape))
            return torch.zeros(*x.shape[:-1], qweight.shape[0], dtype=x.dtype, device=x.device)

    registered(Zero)
    layer = BitLinear(16, 8)
    assert type(layer.kernel) is Zero
    layer.deploy() if deployed else layer.eval()
    y = layer(torch.randn(3, 16))
    assert torch.equal(y, torch.zeros(3, 8)) and calls == [(8, 16)]


def test_layer_uses_an_overridden_quantize_weights(registered):
    class AllOnes(ReferenceKernel):
        def quantize_weights(self, weight, quant_config=None):
            return torch.tensor(0.5), torch.ones(weight.shape, dtype=torch.int8)

    registered(AllOnes)
    layer = BitLinear(16, 8, bias=False).eval()
    assert torch.equal(layer.qweight, torch.ones(8, 16, dtype=torch.int8))
    x = torch.randn(2, 16)
    torch.testing.assert_close(layer(x), (x.sum(-1, keepdim=True) * 0.5).expand(2, 8))


def test_shipped_kernels_still_run_the_packed_path(registered):
    class Renamed(ReferenceKernel):  # overrides nothing: same results as the shipped kernel
        pass

    torch.manual_seed(2)
    layer = BitLinear(16, 8).eval()
    x = torch.randn(4, 16)
    before = layer(x)
    registered(Renamed)
    assert type(layer.kernel) is Renamed
    assert torch.equal(layer(x), before)


# ----------------------------------------------------------------------------- 4. qweight writes
def test_writes_to_qweight_in_eval_mode_are_honoured():
    torch.manual_seed(3)
    layer = BitLinear(16, 8).eval()
    x = torch.randn(4, 16)
    before = layer(x)
    layer.qweight.data.zero_()
    assert torch.equal(layer(x), layer.bias.detach().expand(4, 8))
    layer.qweight_scale.data.mul_(2)  # scale writes count too
    assert torch.equal(layer(x), layer.bias.detach().expand(4, 8))
    # a write to the latent weights requantizes them (and qweight follows them again)
    torch.manual_seed(3)
    fresh = BitLinear(16, 8).eval()
    layer.weight.data.copy_(fresh.weight.data * 2)  # same trits, twice the scale
    torch.testing.assert_close(layer(x) - layer.bias.detach(), 2 * (before - layer.bias.detach()))
    layer.qweight.data.zero_()
    layer.weight.data.copy_(fresh.weight.data)
    assert torch.equal(layer(x), before)
    assert torch.equal(layer.qweight, fresh.qweight)
    layer.qweight.data.zero_()
    layer.load_state_dict(fresh.state_dict())
    assert torch.equal(layer(x), before)


def test_writes_to_qweight_scale_in_eval_mode_are_honoured():
    torch.manual_seed(7)
    layer = BitLinear(16, 8, quant_config=BitQuantConfig(weight_granularity="per_channel")).eval()
    x = torch.randn(4, 16)
    before = layer(x) - layer.bias.detach()
    layer.qweight_scale.data.mul_(2)
    torch.testing.assert_close(layer(x) - layer.bias.detach(), 2 * before)
    layer.qweight_scale.data.fill_(-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        layer(x)


def test_registering_a_kernel_requantizes_cached_layers(registered):
    torch.manual_seed(8)
    layer = BitLinear(16, 8, bias=False).eval()
    layer(torch.randn(2, 16))  # cache built with the shipped kernel

    class AllOnes(ReferenceKernel):
        def quantize_weights(self, weight, quant_config=None):
            return torch.tensor(1.0), torch.ones(weight.shape, dtype=torch.int8)

    registered(AllOnes)
    assert torch.equal(layer.qweight, torch.ones(8, 16, dtype=torch.int8))


def test_assigning_a_new_qweight_and_bad_values():
    torch.manual_seed(4)
    layer = BitLinear(16, 8, bias=False).eval()
    x = torch.randn(2, 16)
    trits = torch.randint(-1, 2, (8, 16), dtype=torch.int8)
    layer.qweight = trits
    expected = BitLinear(16, 8, bias=False).eval()
    expected.qweight.copy_(trits)
    expected.qweight_scale.copy_(layer.qweight_scale)
    assert torch.equal(layer(x), expected(x))
    layer.qweight.data.fill_(3)
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        layer(x)


# ----------------------------------------------------------------------------- 5. meta tensors
def test_meta_layers_propagate_shapes_in_train_mode():
    layer = BitLinear(16, 8, device="meta")
    y = layer(torch.empty(3, 5, 16, device="meta"))
    assert y.is_meta and y.shape == (3, 5, 8)
    with pytest.raises(ValueError, match="meta"):
        layer.eval()(torch.empty(3, 16, device="meta"))


# ----------------------------------------------------------------------------- 6. bindings
def test_binding_forward_rejects_the_wrong_width():
    bindings = pytest.importorskip("bitcore.kernels.bindings.bitlinear_int8_pt_pt_cpp")
    scale, qweight = bindings.quantize_weights(torch.randn(4, 16))
    with pytest.raises(ValueError, match=r"in_features=16.*|\(3, 10\)") as info:
        bindings.forward(torch.randn(3, 10), scale, qweight)
    assert "in_features=16" in str(info.value) and "(3, 10)" in str(info.value)


# ----------------------------------------------------------------------------- 7. names
def test_packed_weight_and_packed_2bit_names():
    torch.manual_seed(5)
    layer = BitLinear(16, 8).deploy()
    sd = layer.state_dict()
    assert "packed_weight" in sd and "packed_2bit" not in sd
    assert torch.equal(layer.packed_weight, sd["packed_weight"])
    assert layer.get_buffer("packed_2bit") is layer.packed_2bit
    with pytest.raises(AttributeError):
        BitLinear(16, 8).packed_weight


def test_meta_layers_materialize():
    layer = BitLinear(16, 8, device="meta")
    with pytest.raises(ValueError, match="meta"):
        layer.deploy()
    torch.manual_seed(6)
    source = BitLinear(16, 8).eval()
    layer = layer.to_empty(device="cpu")
    layer.load_state_dict(source.state_dict())
    layer.eval()
    x = torch.randn(3, 16)
    assert torch.equal(layer(x), source(x))

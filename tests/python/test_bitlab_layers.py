"""BitLinear: QAT, eval through the packed kernel, deploy, packed state dicts, bad input."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn as nn

import lowbit
from bitcore.config import BitQuantConfig
from bitcore.kernels import TorchReferenceKernel
from bitcore.ops import quant
from bitlayers.bitlinear import BitLinear

# Train (float fake-quant matmul) vs eval (exact int32 sums + float epilogue) differ only by float
# rounding of K-term sums: relative ~ sqrt(K) * 2^-24; 1e-4 of the output scale is ample.
TRAIN_EVAL_REL_TOLERANCE = 1e-4


def make_layer(k=96, n=40, bias=True, config=None, seed=0):
    torch.manual_seed(seed)
    return BitLinear(k, n, bias=bias, quant_config=config)


def saved_size(module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@pytest.mark.parametrize("ad", ["int8", "float32"])
@pytest.mark.parametrize("wg", ["per_tensor", "per_channel"])
def test_eval_matches_reference_and_train(ad, wg):
    config = BitQuantConfig(wg, ad, "per_channel")
    layer = make_layer(config=config)
    x = torch.randn(6, 96)
    layer.eval()
    y = layer(x)
    packed, scales = layer.packed_weights()
    ref = TorchReferenceKernel(config).linear(x, packed, 96, scales, layer.bias.detach())
    assert torch.equal(y, ref)
    layer.train()
    y_train = layer(x)
    assert torch.allclose(y_train, y, rtol=0, atol=TRAIN_EVAL_REL_TOLERANCE * float(y.abs().max()))


def test_qweight_is_int8_ternary_and_follows_the_formula():
    layer = make_layer().eval()
    q = layer.qweight
    assert q.dtype == torch.int8 and q.shape == (40, 96)
    assert set(q.unique().tolist()) <= {-1, 0, 1}
    expected, _ = quant.quantize_weights(layer.weight, "per_tensor")
    assert torch.equal(q, expected)


def test_qat_gradients_are_straight_through():
    layer = make_layer(config=BitQuantConfig(activation_dtype="int8"))
    x = torch.randn(4, 96, requires_grad=True)
    layer.train()
    layer(x).sum().backward()
    # Straight-through: d/dW of sum(x_q W_q^T) is the column sums of the (fake-quantized) input.
    xq = quant.fake_quantize_activations(x.detach(), "per_tensor")
    assert torch.allclose(layer.weight.grad, xq.sum(0).expand(40, 96), atol=1e-5)
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0


def test_training_steps_refresh_the_packed_cache():
    layer = make_layer()
    x = torch.randn(8, 96)
    layer.eval()
    before = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer.train()
    layer(x).pow(2).sum().backward()
    opt.step()
    layer.eval()
    after = layer(x)
    assert not torch.equal(before, after)
    assert torch.equal(after, TorchReferenceKernel(layer.quant_config).linear(
        x, *_packed_args(layer), layer.bias.detach()))


def _packed_args(layer):
    packed, scales = layer.packed_weights()
    return packed, layer.in_features, scales


def test_any_leading_shape_and_dtypes():
    layer = make_layer(config=BitQuantConfig(activation_granularity="per_channel")).eval()
    x = torch.randn(2, 3, 5, 96)
    y = layer(x)
    assert y.shape == (2, 3, 5, 40)
    assert torch.equal(y.reshape(-1, 40), layer(x.reshape(-1, 96)))
    assert layer(torch.randn(96)).shape == (40,)
    assert layer(x.double()).dtype == torch.float64
    assert layer(torch.zeros(0, 96)).shape == (0, 40)
    layer.train()
    assert layer(x).shape == (2, 3, 5, 40)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(4, 95), "in_features=96"),
    (torch.ones(4, 96, dtype=torch.int32), "floating-point"),
    (torch.tensor(1.0), "in_features"),
    ([1.0] * 96, "torch.Tensor"),
])
def test_bad_inputs_raise_value_error(bad, match):
    layer = make_layer()
    for mode in (layer.train, layer.eval):
        mode()
        with pytest.raises(ValueError, match=match):
            layer(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("act", ["int8", "float32"])
def test_non_finite_inputs_raise(value, act):
    """Every mode and backend names the layer; on the C++ path the op's own check raises it."""
    layer = make_layer(config=BitQuantConfig(activation_dtype=act))
    x = torch.randn(3, 96)
    x[1, 5] = value
    for backend in ("torch", "auto"):
        with lowbit.backend(backend):
            for mode in (layer.train, layer.eval, layer.deploy):
                mode()
                with pytest.raises(ValueError, match="BitLinear: input contains NaN or Inf"):
                    layer(x)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="in_features"):
        BitLinear(0, 4)
    with pytest.raises(ValueError, match="quant_config"):
        BitLinear(4, 4, quant_config={"activation_dtype": "int8"})


def test_deploy_drops_latent_weights_and_keeps_outputs():
    layer = make_layer(k=300, n=70).eval()
    x = torch.randn(5, 300)
    y = layer(x)
    layer.deploy()
    assert layer.weight is None and layer.deployed
    assert [name for name, _ in layer.named_parameters()] == ["bias"]
    assert torch.equal(layer(x), y)
    layer.train()  # a deployed layer stays on the packed path
    assert torch.equal(layer(x), y)
    assert layer.qweight.dtype == torch.int8


@pytest.mark.parametrize("bias", [True, False])
def test_deployed_state_dict_is_packed_and_reloads_bit_identically(bias):
    n = k = 1024
    layer = make_layer(k=k, n=n, bias=bias, config=BitQuantConfig("per_channel", "int8", "per_channel")).deploy()
    sd = layer.state_dict()
    assert sd["packed_weight"].dtype == torch.uint8 and sd["packed_weight"].numel() == (n * k + 4) // 5
    assert "weight" not in sd
    assert saved_size(layer) * 8 / (n * k) <= 2.1  # everything, bias and file overhead included
    fresh = BitLinear(k, n, bias=bias, quant_config=layer.quant_config)
    fresh.load_state_dict(sd)
    assert fresh.deployed and fresh.weight is None
    x = torch.randn(3, k)
    assert torch.equal(fresh.eval()(x), layer(x))
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    again = BitLinear(k, n, bias=bias, quant_config=layer.quant_config)
    again.load_state_dict(torch.load(buffer))
    assert torch.equal(again.eval()(x), layer(x))


def test_latent_state_dict_round_trips_and_undeploys():
    layer = make_layer()
    sd = copy.deepcopy(layer.state_dict())
    deployed = make_layer(seed=5).deploy()
    deployed.load_state_dict(sd)
    assert not deployed.deployed and torch.equal(deployed.weight, layer.weight)
    x = torch.randn(2, 96)
    assert torch.equal(deployed.eval()(x), layer.eval()(x))


def test_state_dict_of_another_shape_raises():
    deployed_sd = make_layer(k=96, n=40).deploy().state_dict()
    latent_sd = make_layer(k=96, n=40).state_dict()
    for sd in (deployed_sd, latent_sd):
        with pytest.raises(ValueError, match="shape"):
            BitLinear(97, 40).load_state_dict(sd)
        with pytest.raises(ValueError, match="shape"):
            BitLinear(96, 41).load_state_dict(sd)
        with pytest.raises(RuntimeError, match="Unexpected key.*bias"):  # as nn.Linear (strict=False loads)
            BitLinear(96, 40, bias=False).load_state_dict(sd)
    corrupt = dict(deployed_sd)
    corrupt["packed_weight"] = torch.full_like(deployed_sd["packed_weight"], 250)
    with pytest.raises(ValueError):
        BitLinear(96, 40).load_state_dict(corrupt)
    bad_scale = dict(deployed_sd)
    bad_scale["weight_scale"] = torch.full((40,), float("nan"))
    with pytest.raises(ValueError, match="weight_scale"):
        BitLinear(96, 40).load_state_dict(bad_scale)


def test_module_copies_and_pickles():
    layer = make_layer().deploy()
    x = torch.randn(2, 96)
    assert torch.equal(copy.deepcopy(layer)(x), layer(x))
    buffer = io.BytesIO()
    torch.save(nn.Sequential(layer), buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), layer(x))


def test_from_linear_copies_weights():
    linear = nn.Linear(96, 40)
    layer = BitLinear.from_linear(linear)
    assert torch.equal(layer.weight, linear.weight) and torch.equal(layer.bias, linear.bias)

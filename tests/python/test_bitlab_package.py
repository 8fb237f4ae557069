"""The ``bitlab`` package: the namesake's newer layout (bitlab.bnn / bitquantizer / bitmodels /
bittrainer) on lowbit's layers. What code written for that layout relies on, and what is refused."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bitlayers
from bitcore.config import BitQuantConfig

import bitlab
import bitlab.bnn as bnn
from bitlab.bitquantizer import (ACT_QUANT_REGISTRY, QUANTIZER_REGISTRY, WEIGHT_QUANT_REGISTRY, BitQuantizer,
                                 quantize_act, quantize_weight)
from bitlab.bitquantizer.registry import get_act_quant_fn, get_quantizer, get_weight_quant_fn
from bitlab.bitmodels import (CONFIG_REGISTRY, MODEL_REGISTRY, TASK_REGISTRY, BaseBitModelConfig, BitAutoModel,
                              BitAutoModelForCausalLM, BitAutoModelForImageClassification, BitMLPConfig, BitMLPModel,
                              BitNetConfig, BitNetForCausalLM, ModelTask)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------- bnn

def test_bnn_bitlinear_is_lowbits_layer_with_the_namesake_constructor():
    layer = bnn.BitLinear(12, 7, False, 1e-4, "ai8pt_wpc")  # positional order: bias, eps, quant_type
    assert isinstance(layer, bitlayers.BitLinear)
    assert (layer.in_features, layer.out_features, layer.bias) == (12, 7, None)
    assert layer.eps == 1e-4 and layer.quant_type == "ai8pt_wpc"
    assert layer.quant_config == BitQuantConfig("per_channel", "int8", "per_tensor")
    assert layer.weight.shape == (7, 12)


def test_bnn_bitlinear_initialises_like_the_namesake():
    torch.manual_seed(0)
    layer = bnn.BitLinear(300, 200)
    bound = math.sqrt(6.0 / (300 + 200))  # Xavier-uniform
    assert float(layer.weight.abs().max()) <= bound
    assert float(layer.weight.abs().max()) > 0.95 * bound
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("quant_type, expected", [
    ("ai8pc_wpt", BitQuantConfig("per_tensor", "int8", "per_channel")),
    ("AI8PTK_WPT", BitQuantConfig("per_tensor", "int8", "per_channel")),
    ("ai8pt_wpt", BitQuantConfig("per_tensor", "int8", "per_tensor")),
    ("ai8pc_wpc", BitQuantConfig("per_channel", "int8", "per_channel")),
    ("none_wpt", BitQuantConfig("per_tensor", "float32", "per_tensor")),
])
def test_quant_type_maps_to_the_lowbit_config(quant_type, expected):
    assert bnn.BitLinear(8, 4, quant_type=quant_type).quant_config == expected


@pytest.mark.parametrize("quant_type, fragment", [
    ("ai8pg128_wpt", "per group"), ("ai8pc_wpg128", "per group"), ("abf16_wpt", "bfloat16"),
    ("af16_wpt", "float16"), ("ai8pc_none", "unknown scheme"), ("ai8pc", "expected '<activation>_<weight>'"),
    ("xyz_wpt", "unknown scheme"),
])
def test_unsupported_quant_types_are_refused(quant_type, fragment):
    with pytest.raises(ValueError, match="supported") as e:
        bnn.BitLinear(8, 4, quant_type=quant_type)
    assert fragment in str(e.value)


@pytest.mark.parametrize("eps", [-1e-6, float("nan"), float("inf"), "1e-6", True])
def test_bad_eps_is_refused(eps):
    with pytest.raises(ValueError, match="eps"):
        bnn.BitLinear(8, 4, eps=eps)


def test_non_string_quant_type_is_a_type_error():
    with pytest.raises(TypeError, match="quant_type"):
        bnn.BitLinear(8, 4, quant_type=3)


def test_bnn_bitlinear_runs_lowbits_arithmetic_in_every_mode():
    torch.manual_seed(1)
    ours = bnn.BitLinear(40, 24)  # ai8pc_wpt
    ref = bitlayers.BitLinear(40, 24, quant_config=BitQuantConfig("per_tensor", "int8", "per_channel"))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 40)
    assert torch.equal(ours(x), ref(x))                 # QAT forward
    ours.eval(), ref.eval()
    assert torch.equal(ours(x), ref(x))                 # packed kernels
    ours._deploy()                                      # the namesake's per-layer hook
    assert torch.equal(ours(x), ref.deploy()(x))
    assert ours.deployed and not ours.training and ours.weight is None


def test_from_linear_takes_the_namesake_arguments():
    lin = nn.Linear(6, 3)
    layer = bnn.BitLinear.from_linear(lin, quant_type="ai8pt_wpt", eps=1e-3)
    assert type(layer) is bnn.BitLinear and layer.quant_type == "ai8pt_wpt" and layer.eps == 1e-3
    assert torch.equal(layer.weight, lin.weight) and torch.equal(layer.bias, lin.bias)
    with pytest.raises(ValueError, match="nn.Linear"):
        bnn.BitLinear.from_linear(layer)


def test_quant_type_none_is_a_float_layer_in_every_mode():
    torch.manual_seed(2)
    layer = bnn.BitLinear(10, 6, quant_type=None)
    x = torch.randn(3, 10)
    expected = F.linear(x, layer.weight, layer.bias)
    assert torch.equal(layer(x), expected)
    layer.eval()
    assert torch.equal(layer(x), expected)
    assert layer.deploy() is layer and not layer.deployed and torch.equal(layer(x), expected)
    assert set(layer.state_dict()) == {"weight", "bias"}
    with pytest.raises(ValueError, match="float layer"):
        layer.packed_weights()
    with pytest.raises(ValueError, match="in_features=10"):
        layer(torch.randn(3, 11))


def test_module_deploy_returns_the_model_with_every_bit_layer_packed():
    calls = []

    class Custom(nn.Module):
        def _deploy(self):
            calls.append("custom")

        def forward(self, x):
            return x

    class Net(bnn.Module):
        def __init__(self):
            super().__init__()
            self.a = bnn.BitLinear(16, 12)
            self.inner = nn.Sequential(nn.ReLU(), bitlayers.BitLinear(12, 8), Custom())
            self.b = bnn.BitLinear(8, 3, quant_type=None)

        def forward(self, x):
            return self.b(self.inner(self.a(x)))

    torch.manual_seed(3)
    net = Net().eval()
    x = torch.randn(4, 16)
    before = net(x)
    deployed = net.deploy()
    assert deployed is net and calls == ["custom"]
    assert net.a.deployed and net.inner[1].deployed and not net.b.deployed
    assert torch.equal(deployed(x), before)  # deploy keeps the eval-mode (packed) outputs


def test_refused_layers_say_what_is_available():
    assert hasattr(bnn, "BitConv2d")
    with pytest.raises(NotImplementedError, match="BitLinear"):
        bnn.BitConv2d(3, 8, 3)
    with pytest.raises(ImportError, match="bitcore.ops.bitlinear"):
        importlib.import_module("bitlab.bnn.functional")
    with pytest.raises(ImportError, match="not provided by lowbit"):
        bnn.functional  # noqa: B018


def test_bittrainer_import_says_what_to_use():
    sys.modules.pop("bitlab.bittrainer", None)
    with pytest.raises(ImportError) as e:
        importlib.import_module("bitlab.bittrainer")
    assert "Lightning" in str(e.value) and "not provided by lowbit" in str(e.value) and "deploy()" in str(e.value)


# ------------------------------------------------------------------------------- bitquantizer

def _round_half_even(t):
    return torch.round(t)  # torch.round is half-to-even, as the namesake's code


@pytest.mark.parametrize("eps", [1e-6, 0.0, 0.05])
def test_wpt_values(eps):
    torch.manual_seed(4)
    w = torch.randn(9, 33) * 0.1
    scale, q = WEIGHT_QUANT_REGISTRY["wpt"](w, eps)
    mean_abs = w.abs().sum() / w.numel()
    assert scale.shape == () and torch.allclose(scale, mean_abs, rtol=1e-6, atol=0)
    for i in range(w.shape[0]):
        for j in range(0, w.shape[1], 7):
            expected = max(-1.0, min(1.0, float(_round_half_even(w[i, j] / (scale + eps)))))
            assert float(q[i, j]) == expected
    assert q.dtype == w.dtype and set(q.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_ai8pc_values_one_scale_per_row():
    torch.manual_seed(5)
    x = torch.randn(2, 3, 20)
    scale, q = ACT_QUANT_REGISTRY["ai8pc"](x)
    assert scale.shape == (2, 3, 1)
    for idx in [(0, 0), (1, 2)]:
        row = x[idx]
        s = max(float(row.abs().max()) / 127.0, 1e-6)
        assert math.isclose(float(scale[idx][0]), s, rel_tol=1e-6)
        assert torch.equal(q[idx], torch.clamp(torch.round(row / scale[idx][0]), -127, 127))
    assert float(q.abs().max()) == 127.0
    zero_scale, zero_q = ACT_QUANT_REGISTRY["ai8pc"](torch.zeros(2, 4), 1e-6)
    assert torch.equal(zero_scale, torch.full((2, 1), 1e-6)) and torch.count_nonzero(zero_q) == 0


@pytest.mark.parametrize("key, group", [("ai8pg", 128), ("ai8pg128", 128), ("ai8pg256", 256)])
def test_ai8pg_values_one_scale_per_group(key, group):
    torch.manual_seed(6)
    x = torch.randn(4, 512)
    scale, q = ACT_QUANT_REGISTRY[key](x)
    assert scale.shape == x.shape  # expanded: scale * q dequantizes
    flat_x, flat_s = x.reshape(-1, group), scale.reshape(-1, group)
    for g in range(flat_x.shape[0]):
        assert torch.all(flat_s[g] == flat_s[g][0])
        assert math.isclose(float(flat_s[g][0]), float(flat_x[g].abs().max()) / 127.0, rel_tol=1e-6)
    assert torch.allclose(scale * q, x, atol=float(scale.max()) / 2 + 1e-7)
    with pytest.raises(ValueError, match="multiple of group_size"):
        ACT_QUANT_REGISTRY[key](torch.randn(3, 100))


def test_registry_keys_and_lookups():
    assert list(WEIGHT_QUANT_REGISTRY) == ["wpt"]
    assert list(ACT_QUANT_REGISTRY) == ["ai8pc", "ai8pg", "ai8pg128", "ai8pg256"]
    assert list(QUANTIZER_REGISTRY) == ["ai8pc_wpt", "ai8pg_wpt", "ai8pg128_wpt", "ai8pg256_wpt", "none"]
    assert get_weight_quant_fn("wpt") is WEIGHT_QUANT_REGISTRY["wpt"]
    assert get_act_quant_fn("ai8pc") is ACT_QUANT_REGISTRY["ai8pc"]
    for lookup, bad in ((get_weight_quant_fn, "wpc"), (get_act_quant_fn, "ai8ptk"), (get_quantizer, "x_y")):
        with pytest.raises(ValueError, match="Available"):
            lookup(bad)


@pytest.mark.parametrize("quant_type", ["ai8pc_wpt", "ai8pg_wpt", "ai8pg256_wpt"])
def test_quantizer_classes_and_bitquantizer_fake_quantize_with_straight_through_gradients(quant_type):
    torch.manual_seed(7)
    x = torch.randn(4, 256, requires_grad=True)
    w = torch.randn(8, 256, requires_grad=True)
    act, weight = quant_type.rsplit("_", 1)
    sx, qx = ACT_QUANT_REGISTRY[act](x.detach())
    sw, qw = WEIGHT_QUANT_REGISTRY[weight](w.detach())
    dqx, dqw = QUANTIZER_REGISTRY[quant_type].apply(x, w)
    assert torch.equal(dqx, sx * qx) and torch.equal(dqw, sw * qw)
    bx, bw = BitQuantizer(quant_type=quant_type)(x, w)
    assert torch.equal(bx, dqx) and torch.equal(bw, dqw)
    gx, gw = torch.randn_like(x), torch.randn_like(w)
    torch.autograd.backward((bx, bw), (gx, gw))
    assert torch.equal(x.grad, gx) and torch.equal(w.grad, gw)


def test_no_quantization():
    x, w = torch.randn(3, 5), torch.randn(2, 5)
    for q in (BitQuantizer(quant_type=None), BitQuantizer(quant_type="none")):
        dx, dw = q(x, w)
        assert torch.equal(dx, x) and torch.equal(dw, w)
    dx, dw = QUANTIZER_REGISTRY["none"].apply(x, w)
    assert torch.equal(dx, x) and torch.equal(dw, w)


def test_bitquantizer_and_helpers_refuse_bad_input():
    with pytest.raises(ValueError, match="Available"):
        BitQuantizer(quant_type="ai8pc_wpg")
    with pytest.raises(ValueError, match="Invalid quant_type"):
        BitQuantizer(quant_type="ai8pc")
    with pytest.raises(ValueError, match="eps"):
        BitQuantizer(eps=-1.0)
    with pytest.raises(TypeError, match="floating-point"):
        quantize_weight(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty"):
        quantize_act(torch.empty(0, 4))
    scale, q = quantize_weight(torch.randn(4, 4))  # the helpers' defaults: wpt / ai8pc
    assert scale.shape == () and q.shape == (4, 4)
    assert quantize_act(torch.randn(2, 4))[0].shape == (2, 1)


# --------------------------------------------------------------------------------- bitmodels

TINY_NET = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=32)


def test_registries_and_tasks():
    assert MODEL_REGISTRY["bitmlp"] is BitMLPModel and MODEL_REGISTRY["bitnet"] is BitNetForCausalLM
    assert CONFIG_REGISTRY["bitmlp"] is BitMLPConfig and CONFIG_REGISTRY["bitnet"] is BitNetConfig
    assert TASK_REGISTRY[ModelTask.CAUSAL_LM.value]["bitnet"] is BitNetForCausalLM
    assert TASK_REGISTRY[ModelTask.IMAGE_CLASSIFICATION.value]["bitmlp"] is BitMLPModel
    assert not {"bitresnet", "bitunet"} & set(MODEL_REGISTRY)


def test_auto_model_builds_in_eval_mode_and_checks_tasks():
    model = BitAutoModelForImageClassification.from_config(BitMLPConfig(input_size=8, hidden_dims=[4]))
    assert isinstance(model, BitMLPModel) and not model.training and model.config.hidden_dims == (4,)
    assert BitAutoModel.from_config(BitMLPConfig(), eval_mode=False, num_classes=3).training
    with pytest.raises(ValueError, match="registered for task 'image-classification'"):
        BitAutoModelForCausalLM.from_config(BitMLPConfig())
    with pytest.raises(ValueError, match="not provided by lowbit"):
        BitAutoModel._resolve_model_cls("BitResNet")
    with pytest.raises(NotImplementedError, match="load_gguf"):
        BitAutoModel.from_pretrained("bitnet:base")


@pytest.mark.parametrize("name", ["BitResNetConfig", "BitResNetModel", "BitUNetConfig", "BitUNetModel"])
def test_models_lowbit_lacks_are_refused_naming_the_available_ones(name):
    import bitlab.bitmodels as bm

    with pytest.raises(NotImplementedError, match="BitMLPModel.*BitNetForCausalLM"):
        getattr(bm, name)(num_classes=2)


def test_configs_are_frozen_validated_and_round_trip(tmp_path):
    c = BitMLPConfig(input_size=16, hidden_dims=[8, 4], num_classes=3, quant_type="ai8pc_wpt")
    assert c.hidden_dims == (8, 4) and c.model_type == "bitmlp" and c.task == "image-classification"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.num_classes = 5
    assert c.with_overrides(num_classes=5).num_classes == 5 and c.num_classes == 3
    c.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["hidden_dims"] == [8, 4]
    assert BaseBitModelConfig.load(tmp_path / "m") == c
    model = BitAutoModel.from_config(tmp_path / "m")
    assert isinstance(model, BitMLPModel) and model.config == c
    for bad in (dict(model_type="bitnet"), dict(hidden_dims=(0,)), dict(input_size=-1), dict(quant_type="abf16_wpt")):
        with pytest.raises(ValueError):
            BitMLPConfig(**bad)
    with pytest.raises(ValueError, match="unknown fields"):
        BitMLPConfig.from_dict({"input_size": 4, "colour": "red"})
    with pytest.raises(ValueError, match="unknown fields"):
        c.with_overrides(depth=3)
    (tmp_path / "r.json").write_text(json.dumps({"model_type": "bitresnet"}))
    with pytest.raises(ValueError, match="not provided by lowbit"):
        BaseBitModelConfig.load(tmp_path / "r.json")


def test_bitmlp_architecture_and_output():
    torch.manual_seed(8)
    model = BitMLPModel(BitMLPConfig(input_size=12, hidden_dims=(10, 6), num_classes=3, quant_type="ai8pc_wpt"))
    net = model.model.net
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["BitLinear", "RMSNorm", "ReLU", "BitLinear", "RMSNorm", "ReLU", "Linear"]
    assert isinstance(net[0], bnn.BitLinear) and net[0].quant_type == "ai8pc_wpt" and type(net[6]) is nn.Linear
    x = torch.randn(5, 3, 4)  # flattened to [5, 12]
    h = x.reshape(5, 12)
    for i in (0, 3):
        h = net[i](h)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + torch.finfo(h.dtype).eps) * net[i + 1].weight
        h = torch.relu(h)
    expected = net[6](h)
    assert model.training and torch.equal(model(x), expected)  # quantization-aware forward
    out = model.predict(x)  # switches to eval (packed kernels), as upstream
    assert not model.training
    evaluated = model(x)
    assert torch.equal(out["logits"], evaluated) and torch.equal(out["predictions"], evaluated.argmax(-1))
    assert torch.allclose(out["probabilities"].sum(-1), torch.ones(5))
    assert model.deploy() is model and net[0].deployed and net[3].deployed
    assert torch.equal(model(x), evaluated)  # eval-mode outputs kept by deploy
    assert not BitMLPModel(BitMLPConfig()).uses_quantization()  # the namesake's default: float layers
    assert BitMLPModel(BitMLPConfig()).model.net[0].quant_type is None


def test_bitnet_config_maps_to_bitlm():
    lm_cfg = BitNetConfig(**TINY_NET, head_dim=8, hidden_act="swish", rope_theta=1e4).to_bitlm_config()
    assert (lm_cfg.num_layers, lm_cfg.num_heads, lm_cfg.num_kv_heads, lm_cfg.head_dim) == (2, 4, 2, 8)
    assert lm_cfg.hidden_act == "silu" and lm_cfg.rope_theta == 1e4 and lm_cfg.ternary
    assert lm_cfg.quant_config == BitQuantConfig("per_tensor", "int8", "per_channel")
    assert not BitNetConfig(**TINY_NET, quant_type=None).to_bitlm_config().ternary
    with pytest.raises(ValueError, match="head_dim"):
        BitNetConfig(**TINY_NET, head_dim=16)
    with pytest.raises(ValueError, match="hidden_act"):
        BitNetConfig(**TINY_NET, hidden_act="gelu")
    with pytest.raises(ValueError, match="divide"):
        BitNetConfig(**{**TINY_NET, "num_attention_heads": 5})


def test_bitnet_forward_loss_cache_and_generate():
    torch.manual_seed(9)
    model = BitAutoModelForCausalLM.from_config(BitNetConfig(**TINY_NET))
    ids = torch.randint(1, 64, (2, 6))
    out = model(ids, labels=ids, use_cache=True)
    assert out["logits"].shape == (2, 6, 64) and len(out["past_key_values"]) == 2
    assert torch.equal(out["logits"], model.model(ids))
    manual = F.cross_entropy(out["logits"][:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1))
    assert torch.allclose(out["loss"], manual)
    assert model(ids)["loss"] is None and model(ids)["past_key_values"] is None
    with pytest.raises(ValueError, match="labels"):
        model(ids, labels=ids[:, :3])
    with pytest.raises(ValueError, match="attention_mask"):  # the namesake's 4-D additive mask
        model(ids, attention_mask=torch.zeros(2, 1, 6, 6))
    greedy = model.generate(ids, max_length=10, do_sample=False, eos_token_id=())
    assert greedy.shape == (2, 10) and torch.equal(greedy[:, :6], ids)
    assert torch.equal(greedy, model.model.generate(ids, 4, eos_token_id=()))
    assert model.generate(ids, max_length=4, do_sample=False).shape == (2, 6)  # max_length counts the prompt


def test_bitnet_pad_row_and_namesake_state_dict():
    torch.manual_seed(10)
    cfg = BitNetConfig(**TINY_NET, pad_token_id=3, tie_word_embeddings=False)  # tied: the head's gradient reaches row 3
    model = BitNetForCausalLM(cfg).train()
    emb = model.model.embed_tokens
    assert emb.padding_idx == 3 and torch.count_nonzero(emb.weight[3]) == 0
    model(torch.tensor([[3, 5, 3, 7]]), labels=torch.tensor([[3, 5, 3, 7]]))["loss"].backward()
    assert torch.count_nonzero(emb.weight.grad[3]) == 0 and torch.count_nonzero(emb.weight.grad[5]) > 0
    # the namesake nests the decoder under model.model (lm_head stays at model.lm_head)
    theirs = {(k if k.startswith("model.lm_head") else "model.model." + k[len("model."):]): v
              for k, v in model.state_dict().items()}
    assert any(k.startswith("model.model.layers.0.self_attn.q_proj") for k in theirs)
    fresh = BitNetForCausalLM(cfg)
    fresh.load_state_dict(theirs)
    ids = torch.randint(0, 64, (1, 5))
    model.eval(), fresh.eval()
    assert torch.equal(fresh(ids)["logits"], model(ids)["logits"])


# ------------------------------------------------------------------------------- packaging

def test_bitlab_is_packaged_like_the_other_packages():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "python/bitlab" in project["tool"]["scikit-build"]["wheel"]["packages"]
    assert '"bitmodels", "bitlab")' in (REPO / "scripts" / "check-wheel.sh").read_text()
    assert bitlab.__all__ == ["bnn", "bitquantizer"]
    import lowbit

    assert bitlab.__version__ == lowbit.__version__
    assert bitlab.bitmodels.BitAutoModel is BitAutoModel  # reachable as an attribute, imported on first use


def test_import_bitlab_without_torch_names_the_fix():
    code = ("import sys\nsys.modules['torch'] = None\n"
            "try:\n    import bitlab.bnn\nexcept ImportError as e:\n    print(e)\nelse:\n    print('imported')\n")
    # the same interpreter and environment as this test: the installed packages (or PYTHONPATH's)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "bitlab needs PyTorch" in p.stdout and "pip install torch" in p.stdout


def test_documented_layer_differences_raise_rather_than_mislead():
    # docs/migrating.md "From BitLab (the bitlab package)": no layer.quantizer; the namesake's deployed
    # buffers (qws / qw) do not load silently.
    torch.manual_seed(11)
    layer = bnn.BitLinear(8, 4)
    with pytest.raises(AttributeError, match="quantizer"):
        layer.quantizer  # noqa: B018
    with pytest.raises(RuntimeError, match="qws"):
        layer.load_state_dict({"qws": torch.tensor(0.5), "qw": torch.zeros(4, 8), "bias": torch.zeros(4)})
    x = torch.randn(2, 8)
    fake = F.linear(*BitQuantizer(layer.eps, layer.quant_type)(x, layer.weight), layer.bias)
    assert torch.allclose(layer(x), fake, atol=1e-4)  # same method; lowbit's kernels round in their own order


# ------------------------------------------------------------------- eval() still trains, as upstream

def _grads(module, names):
    params = dict(module.named_parameters())
    return {n: None if params[n].grad is None else params[n].grad.clone() for n in names}


@pytest.mark.parametrize("quant_type", ["ai8pc_wpt", "ai8pt_wpc", "none_wpt"])
def test_a_loss_computed_in_eval_mode_trains_the_layer_as_in_train_mode(quant_type):
    # The namesake's BitLinear computes the same fake-quantized forward in train() and eval(); code
    # that backpropagates in eval mode (BitAutoModel.from_config's default) must still train it.
    torch.manual_seed(3)
    layer = bnn.BitLinear(24, 10, quant_type=quant_type)
    x = torch.randn(2, 5, 24)
    target = torch.randn(2, 5, 10)

    xt = x.clone().requires_grad_(True)
    F.mse_loss(layer(xt), target).backward()
    want = _grads(layer, ["weight", "bias"])
    layer.zero_grad()

    layer.eval()
    with torch.no_grad():
        kernel_out = layer(x)
    xe = x.clone().requires_grad_(True)
    out = layer(xe)
    assert torch.equal(out, kernel_out)          # still the packed kernels' output, bit for bit
    F.mse_loss(out, target).backward()
    got = _grads(layer, ["weight", "bias"])
    for name in ("weight", "bias"):
        assert got[name] is not None, name
        assert torch.allclose(got[name], want[name], rtol=1e-4, atol=1e-6), name
    assert torch.allclose(xe.grad, xt.grad, rtol=1e-4, atol=1e-6)


def test_frozen_or_deployed_layers_in_eval_mode_give_no_weight_gradient():
    layer = bnn.BitLinear(8, 4).eval()
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    x = torch.randn(3, 8, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None
    deployed = bnn.BitLinear(8, 4).deploy()
    x2 = torch.randn(3, 8, requires_grad=True)
    deployed(x2).sum().backward()
    assert x2.grad is not None and deployed.bias.grad is None  # no latent weights left to train


def test_auto_built_mlp_trains_its_bitlinear_layers_without_calling_train():
    torch.manual_seed(4)
    model = BitAutoModel.from_config(BitMLPConfig(input_size=16, hidden_dims=(32,), num_classes=3,
                                                  quant_type="ai8pc_wpt"))
    assert not model.training
    hidden = model.model.net[0]
    before = hidden.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(12, 16), torch.randint(0, 3, (12,))
    F.cross_entropy(model(x), y).backward()
    assert hidden.weight.grad is not None and hidden.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(hidden.weight.detach(), before)


def test_bitnet_in_eval_mode_gives_its_projections_train_mode_gradients(tmp_path):
    torch.manual_seed(5)
    cfg = BitNetConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    model = BitAutoModelForCausalLM.from_config(cfg)
    ids = torch.randint(3, 40, (2, 9))
    names = [n for n, _ in model.named_parameters() if n.endswith("proj.weight")]
    assert len(names) == 7  # q, k, v, o, gate, up, down

    model.train()
    model(ids, labels=ids)["loss"].backward()
    want = _grads(model, names)
    model.zero_grad()
    model.eval()
    with torch.no_grad():
        logits = model(ids)["logits"]
    out = model(ids, labels=ids)
    assert torch.equal(out["logits"], logits)
    out["loss"].backward()
    got = _grads(model, names)
    for name in names:
        assert got[name] is not None, name
        assert torch.allclose(got[name], want[name], rtol=1e-3, atol=1e-6), name

    # the projections stay lowbit layers: deploy, pickling and state dicts as before
    path = tmp_path / "m.pt"
    torch.save(model, path)
    again = torch.load(path)
    with torch.no_grad():
        assert torch.equal(again(ids)["logits"], logits)
    assert all(isinstance(m, bitlayers.BitLinear) for n, m in model.named_modules() if n.endswith("proj"))
    model.deploy()
    with torch.no_grad():
        assert torch.allclose(model(ids)["logits"], logits, atol=1e-4)


# ------------------------------------------------------------- the namesake's model-folder paths

@pytest.mark.parametrize("path, names", [
    ("classification", ["BitMLPConfig", "BitMLPModel", "BitResNetConfig", "BitResNetModel"]),
    ("classification.image.mlp.model", ["BitMLPModel", "BitMLP"]),
    ("classification.image.mlp.config", ["BitMLPConfig"]),
    ("imageclassification.mlp", ["BitMLPModel"]),
    ("mlp.config", ["BitMLPConfig"]),
    ("mlp.model", ["BitMLPModel"]),
    ("causallm", ["BitNetConfig", "BitNetForCausalLM"]),
    ("causallm.bitnet.model", ["BitNetForCausalLM"]),
    ("autoregressive.bitnet.config", ["BitNetConfig"]),
    ("resnet.model", ["BitResNetModel"]),
    ("diffusion", ["BitUNetConfig", "BitUNetModel"]),
    ("imagegeneration.image.unet.model", ["BitUNetModel"]),
])
def test_the_namesakes_model_folder_paths_give_the_same_classes(path, names):
    import bitlab.bitmodels as bm

    module = importlib.import_module(f"bitlab.bitmodels.{path}")
    for name in names:
        assert getattr(module, name) is getattr(bm, name), name


def test_the_namesakes_mnist_example_imports_and_builds_its_model():
    from bitlab.bitmodels.classification import BitMLPConfig as Config, BitMLPModel as Model

    model = Model(Config(input_size=28 * 28, hidden_dims=tuple([32, 16]), num_classes=10, quant_type="ai8pc_wpt"))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    from bitlab.bitmodels.classification import BitResNetModel
    with pytest.raises(NotImplementedError, match="not provided"):
        BitResNetModel()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("bitlab.bitmodels.classification.no_such_model")


def test_generate_reads_the_namesakes_disabled_values():
    torch.manual_seed(6)
    cfg = BitNetConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    model = BitNetForCausalLM(cfg).eval()
    ids = torch.randint(3, 40, (2, 4))
    greedy = model.generate(ids, max_length=10, do_sample=False)
    assert torch.equal(model.generate(ids, max_length=10, temperature=0), greedy)
    torch.manual_seed(7)
    no_filter = model.generate(ids, max_length=10, top_k=None)
    torch.manual_seed(7)
    assert torch.equal(model.generate(ids, max_length=10, top_k=0), no_filter)
    for bad in (dict(top_k=-1), dict(temperature=-1.0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            model.generate(ids, max_length=10, **bad)


def test_eval_mode_gradients_under_autocast_match_train_mode():
    torch.manual_seed(8)
    layer = bnn.BitLinear(32, 16)
    x = torch.randn(4, 32)

    def grads(mode):
        getattr(layer, mode)()
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(xi)
        assert y.dtype == torch.bfloat16
        y.float().sum().backward()  # a loss whose gradient does not depend on the output's rounding
        return layer.weight.grad.clone(), layer.bias.grad.clone(), xi.grad.clone()

    for got, want in zip(grads("eval"), grads("train")):
        assert torch.equal(got, want)

"""What users of the namesake BitLab (OliverGrainge/BitLab) rely on: names, defaults, argument and
tuple orders, eval-mode buffers, registries, and its state dicts."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn

import bitcore
import bitlayers
import bitmodels
from bitcore.config import BitQuantConfig
from bitcore.kernels import (BitKernelBase, KernelRegistry, NoSuitableKernelError, ReferenceKernel,
                             TorchReferenceKernel)
from bitcore.ops import bitlinear
from bitlayers import LAYER_REGISTRY, register_layer
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, CONFIG_REGISTRY, MODEL_REGISTRY, build_model, register_config, register_model
from bitmodels.base import BitModelBase
from bitmodels.mlp import BitMLP, BitMLPConfig, BitMLPModel


def test_config_defaults_and_dataclass():
    c = BitQuantConfig()
    assert (c.weight_granularity, c.activation_dtype, c.activation_granularity) == ("per_tensor", "float32",
                                                                                   "per_tensor")
    assert dataclasses.is_dataclass(c) and dataclasses.asdict(c) == c.to_dict()
    assert BitLinear(4, 3).quant_config.activation_dtype == "float32"


@pytest.mark.parametrize("granularity, scale_shape", [("per_tensor", ()), ("per_channel", (4,))])
def test_kernel_quantize_weights_returns_scale_then_qweight(granularity, scale_shape, backend_name):
    w = torch.randn(4, 8)
    for ad in ("int8", "float32"):
        config = BitQuantConfig(granularity, ad)
        kernel = KernelRegistry.get_kernel_from_config(config)
        qweight_scale, qweight = kernel.quantize_weights(w)
        assert tuple(qweight_scale.shape) == scale_shape and qweight_scale.dtype == torch.float32
        assert qweight.shape == (4, 8) and qweight.dtype == torch.int8
        assert float(qweight_scale.reshape(-1)[0]) == pytest.approx(float(w.abs().mean(dim=1)[0] if scale_shape
                                                                              else w.abs().mean()), rel=1e-6)
        # The namesake's quantize_weights(weight, quant_config) form.
        s2, q2 = kernel.quantize_weights(w, config)
        assert torch.equal(s2, qweight_scale) and torch.equal(q2, qweight)
        x = torch.randn(3, 8)
        y = kernel.forward(x, qweight_scale, qweight, torch.zeros(4))
        assert torch.equal(y, kernel.forward(x, qweight_scale, qweight.float(), None))
        assert torch.equal(y, bitlinear.eval_forward(x, qweight_scale, qweight, None, config))
        with pytest.raises(ValueError, match="-1, 0 or 1"):
            kernel.forward(x, qweight_scale, qweight * 2)


def test_ops_bitlinear_is_the_namesake_module_and_still_callable():
    import bitcore.ops.bitlinear as module

    assert bitlinear is module and bitcore.bitlinear is module
    for name in ("train_forward", "eval_forward", "quantize_weights"):
        assert callable(getattr(bitlinear, name))
    config = BitQuantConfig("per_tensor", "float32", "per_tensor")
    torch.manual_seed(42)
    x, w, b = torch.randn(2, 2), torch.randn(2, 2), torch.randn(2)
    s, q = bitlinear.quantize_weights(w, config)
    assert torch.allclose(bitlinear.eval_forward(x, s, q, b, config), bitlinear.train_forward(x, w, b, config),
                          atol=1e-6)
    assert torch.equal(bitlinear(x, w, b, config), bitlinear.eval_forward(x, s, q, b, config))


def test_registry_namesake_api():
    names = KernelRegistry.list_kernels()
    assert "TorchReferenceKernel" in names and "CppInt8Kernel" in names
    assert ReferenceKernel is TorchReferenceKernel
    k = KernelRegistry.get_kernel_from_name("TorchReferenceKernel", BitQuantConfig(activation_dtype="int8"))
    assert type(k) is TorchReferenceKernel and k.quant_config.activation_dtype == "int8"
    assert type(KernelRegistry.get_kernel_by_name("CppFloat32Kernel")) .__name__ == "CppFloat32Kernel"
    with pytest.raises(ValueError, match="Unknown kernel"):
        KernelRegistry.get_kernel_by_name("nope")

    @KernelRegistry.register_kernel(name="int8_pc", priority=300, activation_dtype="int8",
                                    weight_granularity="per_channel")
    class Declared(TorchReferenceKernel):
        pass

    @KernelRegistry.register(lambda c: c.activation_granularity == "per_channel", name="matcher", priority=200)
    class Matched(TorchReferenceKernel):
        pass

    try:
        assert KernelRegistry.list_kernels()[:2] == ["int8_pc", "matcher"]
        assert type(KernelRegistry.get_kernel_from_config(BitQuantConfig("per_channel", "int8"))) is Declared
        assert type(KernelRegistry.get_kernel_from_config(BitQuantConfig("per_tensor", "float32", "per_channel"))) \
            is Matched
        assert type(KernelRegistry.get_kernel_by_name("int8_pc")) is Declared
    finally:
        KernelRegistry.unregister("int8_pc")
        KernelRegistry.unregister(Matched)
    assert "int8_pc" not in KernelRegistry.list_kernels()
    saved = list(KernelRegistry._entries)
    try:
        KernelRegistry.unregister(TorchReferenceKernel)
        with pytest.raises(NoSuitableKernelError):
            KernelRegistry.get_kernel_for_config(BitQuantConfig(), "meta")
        assert issubclass(NoSuitableKernelError, ValueError)
    finally:
        KernelRegistry._entries = saved
        KernelRegistry._changed()
    assert issubclass(ReferenceKernel, BitKernelBase)


def test_bitlinear_namesake_attributes():
    layer = BitLinear(10, 5)
    assert layer.use_bias and not BitLinear(10, 5, bias=False).use_bias
    assert not layer.is_deployed
    bound = math.sqrt(3.0) * math.sqrt(2.0 / 10)
    k = BitLinear(10, 5, init_method="kaiming_uniform")
    assert bool((k.weight.abs() <= bound).all()) and bool((k.bias == 0).all())
    xb = math.sqrt(6.0 / 15)
    assert bool((BitLinear(10, 5, init_method="xavier_uniform").weight.abs() <= xb).all())
    with pytest.raises(ValueError, match="Unknown initialization method"):
        BitLinear(10, 5, init_method="invalid_method")
    # lowbit's earlier positional order (quant_config 4th) still works.
    assert BitLinear(10, 5, True, BitQuantConfig("per_channel")).quant_config.weight_granularity == "per_channel"
    assert not hasattr(layer, "qweight") and not hasattr(layer, "qweight_scale")
    layer.eval()
    buffers = dict(layer.named_buffers())
    assert buffers["qweight"].dtype == torch.int8 and buffers["qweight_scale"].shape == ()
    assert "qweight" not in layer.state_dict()  # derived: the stored form is weight (or packed_weight)
    layer.train()
    assert "qweight" not in dict(layer.named_buffers())
    layer._on_enter_training_mode()
    layer._on_enter_eval_mode()
    layer.deploy()
    assert layer.is_deployed and not layer.training
    assert layer.qweight_scale.shape == () and layer.qweight.shape == (5, 10)
    assert LAYER_REGISTRY["BitLinear"] is BitLinear and bitlayers.register_layer is register_layer


def _namesake_eval_state_dict(n=5, k=10, per_channel=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    scale = w.abs().mean(dim=1) if per_channel else w.abs().mean()
    q = torch.clamp(torch.round(w / (scale.reshape(-1, 1) if per_channel else scale)), -1, 1)
    return {"weight": w, "bias": torch.randn(n, generator=g), "qweight": q, "qweight_scale": scale}


def test_namesake_eval_state_dicts_load():
    sd = _namesake_eval_state_dict()
    for mode in ("train", "eval"):
        layer = BitLinear(10, 5)
        getattr(layer, mode)()
        layer.load_state_dict(sd)  # strict
        assert torch.equal(layer.weight, sd["weight"]) and not layer.deployed
        x = torch.randn(3, 10)
        ref = BitLinear(10, 5).eval()
        ref.load_state_dict({"weight": sd["weight"], "bias": sd["bias"]})
        assert torch.equal(layer.eval()(x), ref(x))
    with pytest.raises(ValueError, match="qweight"):
        BitLinear(10, 5).load_state_dict({**sd, "qweight": torch.zeros(5, 11)})


@pytest.mark.parametrize("per_channel", [False, True])
def test_namesake_deployed_state_dict_loads_as_a_deployed_layer(per_channel):
    sd = _namesake_eval_state_dict(per_channel=per_channel)
    deployed_sd = {key: sd[key] for key in ("bias", "qweight", "qweight_scale")}
    config = BitQuantConfig("per_channel" if per_channel else "per_tensor")
    layer = BitLinear(10, 5, quant_config=config)
    layer.load_state_dict(deployed_sd)
    assert layer.deployed
    x = torch.randn(4, 10)
    scale = sd["qweight_scale"].reshape(-1, 1) if per_channel else sd["qweight_scale"]
    expected = torch.nn.functional.linear(x, sd["qweight"] * scale, sd["bias"])
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.equal(layer.qweight, sd["qweight"].to(torch.int8))
    bad = dict(deployed_sd, qweight=sd["qweight"] * 3)
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        BitLinear(10, 5).load_state_dict(bad)


def test_model_registries_and_auto_model():
    assert MODEL_REGISTRY["BitMLPModel"] is BitMLPModel is BitMLP
    assert CONFIG_REGISTRY["BitMLPConfig"] is BitMLPConfig
    cfg = BitMLPConfig()
    assert dataclasses.is_dataclass(cfg)
    assert (cfg.n_layers, cfg.in_channels, cfg.hidden_dim, cfg.out_channels, cfg.dropout) == (3, 256, 128, 10, 0.0)
    qc = BitQuantConfig(activation_dtype="int8")
    model = AutoBitModel.from_config(cfg, qc)
    assert isinstance(model, BitModelBase) and model.training
    # get_config() describes the model built: a copy of cfg carrying the override (cfg untouched)
    assert model.get_config() == dataclasses.replace(cfg, quant_config=qc) and model.get_quant_config() == qc
    assert cfg.quant_config == BitQuantConfig()
    assert AutoBitModel.from_config(cfg).get_config() is cfg  # no override: the config itself
    assert all(layer.quant_config == qc for layer in model.bit_layers())  # every layer, first and last too
    assert model(torch.randn(2, 256)).shape == (2, 10)
    keys = list(build_model("BitMLPModel", cfg).state_dict())
    assert keys == ["network.0.weight", "network.0.bias", "network.2.weight", "network.2.bias",
                    "network.4.weight", "network.4.bias"]
    with pytest.raises(ValueError, match="not found"):
        build_model("Missing", cfg)

    @register_config("TinyConfig")
    @dataclasses.dataclass
    class TinyConfig:
        width: int = 4

    @register_model("TinyModel")
    class TinyModel(BitModelBase):
        def __init__(self, config, quant_config=None):
            super().__init__(config, quant_config)
            self.layer = BitLinear(config.width, 2, quant_config=quant_config)

        def forward(self, x):
            return self.layer(x)

    try:
        tiny = AutoBitModel.from_config(TinyConfig(), qc)  # the namesake's naming rule
        assert isinstance(tiny, TinyModel) and tiny.get_quant_config() is qc
        assert bitmodels.build_model("TinyModel", TinyConfig()).layer.in_features == 4
    finally:
        MODEL_REGISTRY.pop("TinyModel")
        CONFIG_REGISTRY.pop("TinyConfig")
    with pytest.raises(NotImplementedError):
        AutoBitModel.from_pretrained("x")


def test_earlier_lowbit_mlp_state_dicts_still_load():
    torch.manual_seed(0)
    cfg = BitMLPConfig(3, 20, 12, 4)
    model = BitMLP(cfg)
    legacy = {}
    for key, value in model.state_dict().items():  # lowbit 0.x: layers.<0|3|6> (ReLU, Dropout between)
        index, rest = key.split(".", 2)[1:]
        legacy[f"layers.{int(index) // 2 * 3}.{rest}"] = value
    fresh = BitMLP(cfg)
    fresh.load_state_dict(legacy)
    x = torch.randn(3, 20)
    assert torch.equal(fresh.eval()(x), model.eval()(x))
    assert fresh.layers is fresh.network


def test_dropout_only_when_positive():
    assert not any(isinstance(m, nn.Dropout) for m in BitMLP(BitMLPConfig(dropout=0.0)).modules())
    assert sum(isinstance(m, nn.Dropout) for m in BitMLP(BitMLPConfig(dropout=0.1)).modules()) == 2


def test_a_kernel_written_for_the_namesake_runs_in_a_layer():
    calls = []

    @KernelRegistry.register(lambda c: c.weight_granularity == "per_channel", name="upstream_style", priority=900)
    class UpstreamStyle(BitKernelBase):
        @classmethod
        def is_suitable_for(cls, config):
            return True

        def forward(self, x, qweight_scale, qweight, bias=None):
            calls.append(tuple(qweight_scale.shape))
            scale = qweight_scale.reshape(-1, 1) if qweight_scale.dim() else qweight_scale
            return torch.nn.functional.linear(x, qweight.float() * scale, bias)

    try:
        layer = BitLinear(16, 4, quant_config=BitQuantConfig("per_channel")).eval()
        assert type(layer.kernel) is UpstreamStyle
        x = torch.randn(3, 16)
        expected = torch.nn.functional.linear(x, layer.qweight.float() * layer.scale.reshape(-1, 1), layer.bias)
        assert torch.allclose(layer(x), expected, atol=1e-6) and calls == [(4,)]
    finally:
        KernelRegistry.unregister(UpstreamStyle)
    with pytest.raises(TypeError):
        BitKernelBase(BitQuantConfig())


def test_namesake_kernel_imports_keyword_and_names():
    from bitcore.kernels import KernelRegistry, TorchReferenceKernel
    from bitcore.kernels.base import BitKernelBase, ReferenceKernel  # where the namesake defines it

    assert ReferenceKernel is TorchReferenceKernel
    assert isinstance(KernelRegistry.get_kernel_by_name("ReferenceKernel"), TorchReferenceKernel)
    for upstream in ("int8_per_tensor", "bitlinear_kernel_i8_pt_pt"):  # its int8 kernel's name and class
        k = KernelRegistry.get_kernel_by_name(upstream, BitQuantConfig(activation_dtype="int8"))
        assert type(k).__name__ == "CppInt8Kernel" and k.quant_config.activation_dtype == "int8"

    @KernelRegistry.register(config_matcher=lambda config: False, name="never_matches")  # the namesake's keyword
    class Never(TorchReferenceKernel):
        pass

    try:
        assert "never_matches" in KernelRegistry.list_kernels()
        assert issubclass(Never, BitKernelBase)
    finally:
        KernelRegistry.unregister("never_matches")
    with pytest.raises(ValueError, match="config_matcher must be callable"):
        KernelRegistry.register(config_matcher=3)
    with pytest.raises(ValueError, match="a config_matcher or criteria, not both"):
        KernelRegistry.register("int8", config_matcher=lambda c: True)


def test_partial_checkpoints_load_with_strict_false_and_empty_batches_train():
    model = nn.Sequential(bitlayers.BitLinear(8, 8), nn.ReLU(), bitlayers.BitLinear(8, 4))
    backbone = {k: v for k, v in model.state_dict().items() if not k.startswith("2.")}
    before = {k: v.clone() for k, v in model[2].state_dict().items()}
    result = model.load_state_dict(backbone, strict=False)  # a fine-tuning head: PyTorch's convention
    assert sorted(result.missing_keys) == ["2.bias", "2.weight"] and not result.unexpected_keys
    assert all(torch.equal(v, model[2].state_dict()[k]) for k, v in before.items())
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(backbone)
    layer = bitlayers.BitLinear(16, 4, quant_config=BitQuantConfig(activation_dtype="int8")).train()
    for shape in ((0, 16), (2, 0, 16)):  # max() of no activations raised
        y = layer(torch.randn(*shape))
        assert y.shape == shape[:-1] + (4,)


# The API the namesake documents next to the README our contract follows (its docs/api/core.md):
# bitcore.ops.bitlinear.forward(..., training=) and prepare_weights(), kernels called as
# kernel(x, qweight_scale, qweight, bias, quant_config), custom kernels with prepare_weights/__call__.

def test_ops_forward_with_training_flag_and_prepare_weights():
    config = BitQuantConfig("per_channel", "int8", "per_tensor")
    x, w, b = torch.randn(5, 12), torch.randn(6, 12), torch.randn(6)
    y_train = bitlinear.forward(x=x, weight=w, bias=b, quant_config=config, training=True)
    assert torch.equal(y_train, bitlinear.train_forward(x, w, b, config))
    assert torch.equal(bitlinear.forward(x, weight=w, quant_config=config),  # training defaults to True
                       bitlinear.train_forward(x, w, None, config))
    s, q = bitlinear.prepare_weights(w, config)
    s2, q2 = bitlinear.quantize_weights(w, config)
    assert torch.equal(s, s2) and torch.equal(q, q2) and s.shape == (6,) and q.dtype == torch.int8
    y_eval = bitlinear.forward(x=x, qweight_scale=s, qweight=q, bias=b, quant_config=config, training=False)
    assert torch.equal(y_eval, bitlinear.eval_forward(x, s, q, b, config))
    with pytest.raises(TypeError, match="'weight'"):
        bitlinear.forward(x, qweight_scale=s, qweight=q, training=True)
    with pytest.raises(TypeError, match="'qweight'"):
        bitlinear.forward(x, weight=w, training=False)
    with pytest.raises(TypeError, match="'wieght'"):
        bitlinear.forward(x, wieght=w)


def test_kernel_call_takes_the_namesake_arguments_and_prepare_weights():
    config = BitQuantConfig("per_tensor", "int8", "per_tensor")
    kernel = KernelRegistry.get_kernel_for_config(config)
    x, w, b = torch.randn(4, 16), torch.randn(3, 16), torch.randn(3)
    s, q = kernel.prepare_weights(w, config)
    assert s.shape == () and torch.equal(q, kernel.quantize_weights(w)[1])
    expected = kernel.forward(x, s, q, b)
    assert torch.equal(kernel(x, s, q, b, config), expected)  # the namesake's eval_forward call
    assert torch.equal(kernel(x, s, q, b), expected)
    assert torch.equal(kernel(x, qweight_scale=s, qweight=q, bias=b, quant_config=config), expected)
    assert torch.equal(kernel(x, s, q), kernel.forward(x, s, q))
    assert torch.equal(kernel(x, w, b), expected)  # lowbit's functional form: float weight [N, K]
    other = BitQuantConfig("per_tensor", "float32", "per_tensor")  # the config passed decides the arithmetic
    assert torch.equal(kernel(x, s, q, b, other), bitlinear.eval_forward(x, s, q, b, other))
    assert not torch.equal(kernel(x, s, q, b, other), expected)
    with pytest.raises(TypeError, match="quant_config"):
        kernel(x, s, q, b, "int8")


def test_a_kernel_written_to_the_namesake_prepare_weights_and_call_interface_runs_in_a_layer():
    calls = []

    @KernelRegistry.register(lambda c: c.activation_granularity == "per_channel", name="older_upstream", priority=900)
    class OlderUpstream(BitKernelBase):
        def prepare_weights(self, weight, quant_config):
            calls.append("prepare")
            scale = weight.abs().mean(dim=1)
            return scale, torch.clamp(torch.round(weight / scale[:, None]), -1, 1)

        def __call__(self, x, qweight_scale, qweight, bias=None, quant_config=None):
            calls.append(("call", quant_config is self.quant_config))
            return torch.nn.functional.linear(x, qweight * qweight_scale.reshape(-1, 1), bias) + 1000.0

        def is_compatible_with(self, quant_config):
            return True

    try:
        config = BitQuantConfig("per_channel", "float32", "per_channel")
        layer = BitLinear(16, 4, quant_config=config).eval()
        assert type(layer.kernel) is OlderUpstream
        x = torch.randn(3, 16)
        y = layer(x)
        expected = torch.nn.functional.linear(x, layer.qweight.float() * layer.scale.reshape(-1, 1), layer.bias)
        assert torch.allclose(y, expected + 1000.0, atol=1e-4)
        assert "prepare" in calls and ("call", True) in calls
        kernel = OlderUpstream(config)
        s, q = kernel.quantize_weights(layer.weight)
        assert torch.equal(q.to(torch.int8), layer.qweight)
    finally:
        KernelRegistry.unregister(OlderUpstream)


@pytest.mark.parametrize("weight, what", [(torch.randn(4), r"shape \(4,\)"), (torch.randn(2, 3, 4), r"shape \(2, 3, 4\)"),
                                          ([[1.0, -1.0]], "got list")])
def test_a_weight_that_is_not_a_matrix_gets_the_same_clear_error_on_every_backend(weight, what, backend_name):
    config = BitQuantConfig()
    kernel = KernelRegistry.get_kernel_for_config(config)
    for call in (kernel.quantize_weights, kernel.prepare_weights, kernel.ternarize,
                 lambda w: bitlinear.quantize_weights(w, config), lambda w: bitlinear.prepare_weights(w, config)):
        with pytest.raises(ValueError, match="weight must be .*2-D.*" + what):
            call(weight)


def test_the_documented_activation_differences_from_the_namesake():
    # docs/migrating.md: float32 activations are not rounded to integers (the namesake's code rounds
    # them with scale 1.0), per_channel int8 activations are one scale per token, and a model built
    # without a quant config reports the default one.
    x, w = torch.rand(3, 8) * 0.4, torch.randn(4, 8)  # |x| < 0.5: the namesake's rounding gives zeros
    config = BitQuantConfig()
    s, q = bitlinear.quantize_weights(w, config)
    expected = torch.nn.functional.linear(x, q.float() * s)
    assert torch.allclose(bitlinear.train_forward(x, w, None, config), expected, atol=1e-6)
    assert torch.allclose(bitlinear.eval_forward(x, s, q, None, config), expected, atol=1e-5)
    assert expected.abs().sum() > 0
    per_token = BitQuantConfig("per_tensor", "int8", "per_channel")
    x3 = torch.randn(1, 5, 8) * torch.tensor([1.0, 10.0, 100.0, 0.1, 3.0]).reshape(1, 5, 1)
    rows = torch.cat([bitlinear.eval_forward(x3[:, t], s, q, None, per_token) for t in range(5)])
    assert torch.equal(bitlinear.eval_forward(x3, s, q, None, per_token)[0], rows)  # each token on its own
    model = BitMLPModel(BitMLPConfig())
    assert model.get_quant_config() == BitQuantConfig() and model.quant_config == BitQuantConfig()


def test_a_kernel_registered_at_the_default_priority_is_used_where_the_namesake_would_use_it(backend_name):
    # The namesake ships one kernel (int8 activations, per tensor, per tensor; priority 100) and falls
    # back to its reference kernel otherwise, so a user kernel registered without a priority runs for
    # every other config. lowbit's own kernels cover every config: they must not shadow it there.
    @KernelRegistry.register(lambda c: True, name="users_default_priority")
    class UsersKernel(TorchReferenceKernel):
        def forward(self, x, qweight_scale, qweight, bias=None):
            return super().forward(x, qweight_scale, qweight, bias) + 7.0

    try:
        for config in (BitQuantConfig(), BitQuantConfig("per_channel", "int8", "per_tensor"),
                       BitQuantConfig("per_tensor", "int8", "per_channel"), BitQuantConfig("per_channel")):
            assert type(KernelRegistry.get_kernel_for_config(config)) is UsersKernel, config
            layer = BitLinear(8, 3, quant_config=config).eval()
            x = torch.randn(2, 8)
            assert torch.allclose(layer(x), bitlinear.eval_forward(x, layer.qweight_scale, layer.qweight,
                                                                   layer.bias, config) , atol=1e-5)
            assert type(layer.kernel) is UsersKernel
        namesake_slot = BitQuantConfig("per_tensor", "int8", "per_tensor")
        assert type(KernelRegistry.get_kernel_for_config(namesake_slot)) is not UsersKernel
        KernelRegistry.register(lambda c: True, name="users_default_priority", priority=101)(UsersKernel)
        assert type(KernelRegistry.get_kernel_for_config(namesake_slot)) is UsersKernel
    finally:
        KernelRegistry.unregister(UsersKernel)
    assert type(KernelRegistry.get_kernel_for_config(BitQuantConfig())) is not UsersKernel

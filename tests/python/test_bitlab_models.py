"""bitmodels: BitMLP through AutoBitModel, and the nn.Linear -> BitLinear converter."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import lowbit
from bitcore.config import BitQuantConfig
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, BitMLP, BitMLPConfig, convert_to_bitlinear, deploy_model


@pytest.mark.parametrize("n_layers", [1, 2, 4])
def test_config_reaches_every_layer(n_layers):
    qc = BitQuantConfig("per_channel", "float32", "per_channel")
    config = BitMLPConfig(n_layers=n_layers, in_channels=20, hidden_dim=12, out_channels=3, dropout=0.25,
                          quant_config=qc, bias=False)
    model = AutoBitModel.from_config(config)
    assert isinstance(model, BitMLP)
    layers = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert len(layers) == n_layers
    assert [(l.in_features, l.out_features) for l in layers] == config.layer_sizes()
    assert layers[0].in_features == 20 and layers[-1].out_features == 3
    assert all(l.quant_config == qc and l.bias is None for l in layers)
    expected = "TorchReferenceKernel" if lowbit.get_backend() == "torch" else "CppFloat32Kernel"
    assert all(type(l.kernel).__name__ == expected for l in layers)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == n_layers - 1 and all(d.p == 0.25 for d in dropouts)
    assert model(torch.randn(2, 5, 20)).shape == (2, 5, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_layers=0), "n_layers"),
    (dict(hidden_dim=2.5), "hidden_dim"),
    (dict(dropout=1.0), "dropout"),
    (dict(quant_config="int8"), "quant_config"),
])
def test_bad_configs_raise(kwargs, match):
    base = dict(n_layers=2, in_channels=4, hidden_dim=4, out_channels=2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BitMLPConfig(**base)
    with pytest.raises(ValueError, match="no model"):
        AutoBitModel.from_config(object())


def test_converter_swaps_linears_except_skipped():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 16), nn.Tanh()), nn.Linear(16, 4))
    originals = [m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Linear)]
    qc = BitQuantConfig(weight_granularity="per_channel")
    converted = convert_to_bitlinear(model, qc, skip=["3"])
    assert converted is model
    assert isinstance(model[0], BitLinear) and isinstance(model[2][0], BitLinear)
    assert type(model[3]) is nn.Linear
    assert torch.equal(model[0].weight, originals[0]) and torch.equal(model[2][0].weight, originals[1])
    assert model[0].quant_config == qc
    x = torch.randn(3, 8)
    y_train = model(x)
    deploy_model(model)
    assert model[0].deployed and not model.training
    assert torch.allclose(model(x), y_train, atol=1e-3 * float(y_train.abs().max()))
    with pytest.raises(ValueError, match="match no module"):
        convert_to_bitlinear(nn.Sequential(nn.Linear(2, 2)), skip=["head"])
    pattern_model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    convert_to_bitlinear(pattern_model, skip=["*"])
    assert all(type(m) is nn.Linear for m in pattern_model)
    assert isinstance(convert_to_bitlinear(nn.Linear(3, 2)), BitLinear)


def test_bitmlp_deploy_round_trips_through_state_dict():
    config = BitMLPConfig(n_layers=3, in_channels=30, hidden_dim=16, out_channels=5)
    model = AutoBitModel.from_config(config).deploy()
    x = torch.randn(4, 30)
    fresh = AutoBitModel.from_config(config)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.eval()(x), model(x))

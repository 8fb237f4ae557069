"""QLinear: quantized forward, straight-through backward, and it trains."""

from __future__ import annotations

import pytest
import torch

from coset import D4Lattice, QLinear, QuantizationConfig, encode
from coset.nn import quantize_weight_rows


def test_forward_uses_quantized_weights_and_gradients_pass_straight_through():
    torch.manual_seed(0)
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = QLinear(128, 256, config, quantize_weights=True)
    x = torch.randn(32, 128)
    out = layer(x)
    assert out.shape == (32, 256)
    w_q = layer.quantized_weight()
    assert not torch.equal(w_q, layer.weight)
    torch.testing.assert_close(out, torch.nn.functional.linear(x, w_q, layer.bias))
    rel = float(((w_q - layer.weight) ** 2).mean() / (layer.weight ** 2).mean())
    assert rel < 0.05  # 4 bits per weight at a fixed per-row scale: about 8-9 dB above D(R)
    out.sum().backward()
    torch.testing.assert_close(layer.weight.grad, torch.ones(32, 256).t() @ x)
    plain = QLinear(128, 256, config, quantize_weights=False)
    assert torch.equal(plain(x), torch.nn.functional.linear(x, plain.weight, plain.bias))


def test_rows_quantized_in_blocks_along_the_input_dimension():
    w = torch.randn(3, 10)  # 10 = 2 blocks of 4 + a padded one
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    w_q = quantize_weight_rows(w, config)
    assert w_q.shape == w.shape
    # Scaling a row scales its quantized row (per-row scale), up to float rounding.
    w2 = w.clone()
    w2[1] *= 8.0
    torch.testing.assert_close(quantize_weight_rows(w2, config)[1], 8.0 * w_q[1])


def test_qat_trains():
    torch.manual_seed(1)
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    model = torch.nn.Sequential(QLinear(16, 32, config), torch.nn.ReLU(), QLinear(32, 3, config))
    x = torch.randn(512, 16)
    y = (x[:, :3] * 2).argmax(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_bad_config_and_overload_warning():
    with pytest.raises(ValueError, match="^config:"):
        QLinear(4, 4, {"q": 4})
    with pytest.raises(ValueError, match="^config:"):
        QLinear(4, 4, QuantizationConfig(with_dither=True))
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=1, max_scaling_iterations=0)
    with pytest.warns(RuntimeWarning, match="overload"):
        encode(torch.full((2, 4), 1000.0), D4Lattice(), cfg)


# --- the cached quantized weight in evaluation (issue 15, kind 6) ----------------------------------

@pytest.fixture
def counted(monkeypatch):
    """Counts how often QLinear quantizes its weight."""
    import coset.nn as qnn

    calls = {"n": 0}
    real = qnn.quantize_weight_rows

    def counting(weight, config):
        calls["n"] += 1
        return real(weight, config)

    monkeypatch.setattr(qnn, "quantize_weight_rows", counting)
    return calls


def _eval_layer():
    torch.manual_seed(3)
    layer = QLinear(16, 8, QuantizationConfig(lattice_type="D4", q=4, M=2))
    layer.eval()
    return layer


def _fresh(layer):
    return quantize_weight_rows(layer.weight, layer.config)


@pytest.mark.parametrize("write", ["optimizer_step", "copy_", "load_state_dict", "data_inplace", "data_setitem",
                                   "data_assign", "to_dtype", "no_grad_inplace"])
def test_eval_cache_recomputes_after_every_kind_of_write(counted, write):
    layer = _eval_layer()
    x = torch.randn(4, 16)
    first = layer(x)
    assert torch.equal(layer(x), first) and counted["n"] == 1  # cached: no second quantization
    if write == "optimizer_step":
        layer.weight.grad = torch.ones_like(layer.weight)
        torch.optim.SGD(layer.parameters(), lr=0.5).step()
    elif write == "copy_":
        with torch.no_grad():
            layer.weight.copy_(layer.weight * 3)
    elif write == "load_state_dict":
        state = {k: v * 3 for k, v in layer.state_dict().items()}
        layer.load_state_dict(state)
    elif write == "data_inplace":
        layer.weight.data.mul_(3)  # .data has its own version counter: _version does not move
    elif write == "data_setitem":
        layer.weight.data[0, 0] = 100.0
    elif write == "data_assign":
        layer.weight.data = layer.weight.data * 3
    elif write == "to_dtype":
        layer.to(torch.float64)
        x = x.double()
    elif write == "no_grad_inplace":
        with torch.no_grad():
            layer.weight[1] += 1.0
    out = layer(x)
    assert counted["n"] == 2, f"{write}: the cached W^ was not recomputed"
    torch.testing.assert_close(out, torch.nn.functional.linear(x, _fresh(layer), layer.bias), rtol=0, atol=0)
    layer(x)
    assert counted["n"] == 2  # and cached again


def test_eval_cache_follows_config_and_training(counted):
    layer = _eval_layer()
    x = torch.randn(4, 16)
    layer(x)
    layer.config = QuantizationConfig(lattice_type="D4", q=8, M=1)
    layer(x)
    assert counted["n"] == 2
    layer.train()
    layer(x)
    layer(x)
    assert counted["n"] == 4  # training quantizes every step (the weights change every step)
    assert layer._cache_snapshot is None  # no weight copy kept while training


def test_layer_runs_on_its_device(device, backend_name):
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = QLinear(12, 6, config, device=device, quantize_activations=True)
    x = torch.randn(5, 12, device=device, requires_grad=True)
    out = layer(x)
    assert out.device == x.device
    out.sum().backward()
    assert layer.weight.grad.device == x.device and x.grad.device == x.device
    layer.eval()
    assert layer(x).device == x.device
    assert layer.quantized_weight().device == x.device


@pytest.mark.parametrize("training", [True, False])
def test_qlinear_checks_its_input_and_weight(training):
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = QLinear(16, 8, config).train(training)
    with pytest.raises(ValueError, match=r"QLinear: input has 15 features \(shape \(2, 15\)\), expected in_features=16"):
        layer(torch.randn(2, 15))
    with pytest.raises(ValueError, match="QLinear: input contains NaN or Inf"):  # quantize_activations=False too
        layer(torch.full((2, 16), float("nan")))
    with torch.no_grad():
        layer.weight[3, 2] = float("inf")
    with pytest.raises(ValueError, match=r"QLinear: the layer's weight contains NaN or Inf \(row 3\)"):
        layer(torch.randn(2, 16))


@pytest.mark.parametrize("training", [True, False])
def test_qlinear_on_the_meta_device_propagates_shapes(training):
    layer = QLinear(16, 8, QuantizationConfig(lattice_type="D4", q=4, M=2), device="meta").train(training)
    y = layer(torch.empty(3, 5, 16, device="meta"))
    assert y.is_meta and y.shape == (3, 5, 8)
    with pytest.raises(ValueError, match="QLinear: the layer's weight is a meta tensor, which holds no data"):
        layer.quantized_weight()

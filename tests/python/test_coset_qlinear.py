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

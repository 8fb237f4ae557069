"""What users of the namesake (mlsquare/coset) write keeps working here (issue 16)."""

from __future__ import annotations

import pytest
import torch

from coset import D4Lattice, E8Lattice, QLinear, QuantizationConfig, Z2Lattice, decode, encode, quantize
from coset.quant import accumulate_modq, batch_decode, batch_encode, mac_modq


def test_single_vector_encode_types_and_float_codes():
    lat, cfg = D4Lattice(), QuantizationConfig(lattice_type="D4", q=4, M=2)
    b, T = encode(torch.tensor([0.3, -1.2, 0.8, 0.1]), lat, cfg)
    assert isinstance(T, int) and b.dtype == torch.float32 and b.shape == (2, 4)
    points = b @ lat.G.T  # float algebra on codes works
    assert points.shape == (2, 4)
    x_hat = decode(b, lat, cfg, T)
    assert torch.equal(x_hat, decode(b.to(torch.uint8), lat, cfg, torch.tensor(T, dtype=torch.uint8)))
    assert torch.equal(decode(b.double(), lat, cfg, 0), x_hat)
    with pytest.raises(ValueError, match="^T:"):
        decode(b, lat, cfg, 11)
    batch_b, batch_t = encode(torch.randn(3, 4), lat, cfg)  # batches keep the compact types
    assert batch_b.dtype == torch.uint8 and batch_t.dtype == torch.uint8


def test_codec_keywords_and_lattice_helpers():
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2)
    lat = D4Lattice(device="cpu")
    assert lat.G.device.type == "cpu" and lat.device.type == "cpu"
    assert repr(lat) == "D4Lattice(d=4)"
    x = torch.randn(4)
    b, t = encode(x, lat, cfg, dither=None, device=torch.device("cpu"))
    assert torch.equal(decode(b, lat, cfg, t, device="cpu"), quantize(x, lat, cfg, device="cpu"))
    point = torch.tensor([2.0, 0.0, 0.0, 0.0])
    codes = lat.encode_coords(point, 4)
    assert codes.dtype == torch.float32 and torch.equal(lat.decode_coords(codes, 4), point)
    for cls in (Z2Lattice, D4Lattice, E8Lattice):  # G b round trip for random lattice points
        lt = cls()
        bb = torch.randint(0, 4, (10, lt.d)).float()
        assert torch.equal(lt.encode_coords(lt.decode_coords(bb, 4), 4), bb)
    assert torch.equal(lat.custom_round(torch.tensor([0.5, -0.5, 1.6])), torch.tensor([0.0, 0.0, 2.0]))
    assert not torch.allclose(lat.g_x(torch.tensor([0.1] * 4)), lat.custom_round(torch.tensor([0.1] * 4)))
    assert lat.generate_tie_dither().shape == (4,)


def test_user_dither_is_subtractive_and_consistent():
    lat = D4Lattice()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.1, with_dither=True)
    u = torch.tensor([0.3, -0.2, 0.1, 0.45])
    x = torch.randn(4)
    b, t = encode(x, lat, cfg, dither=u)
    x_hat = decode(b, lat, cfg, t, dither=u)
    assert torch.equal(quantize(x, lat, cfg, dither=u), x_hat)
    assert float((x_hat - x).abs().max()) < 0.2
    plain = cfg.replace(with_dither=False)  # the namesake ignores dither= without with_dither
    assert torch.equal(quantize(x, lat, plain, dither=u), quantize(x, lat, plain))


def test_config_dict_rate_and_compression():
    cfg = QuantizationConfig(lattice_type="Z2", q=8, M=3, beta=2.0, alpha=1.5)
    d = cfg.to_dict()
    assert d["lattice_type"] == "Z2" and d["q"] == 8 and d["M"] == 3
    assert QuantizationConfig.from_dict(d) == cfg
    assert cfg.get_rate() == pytest.approx(9.0)
    assert cfg.get_compression_ratio() == pytest.approx(32 / 9)
    with pytest.raises(ValueError, match="config_dict: unknown keys"):
        QuantizationConfig.from_dict({"q": 4, "bogus": 1})
    for bad in ({"q": 0}, {"beta": 0}, {"lattice_type": "INVALID"}):
        with pytest.raises(ValueError):
            QuantizationConfig(**bad)


def test_batch_helpers_and_modq():
    lat, cfg = Z2Lattice(), QuantizationConfig(lattice_type="Z2", q=4, M=2)
    X = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    codes, counts = batch_encode(X, lat, cfg)
    assert codes.shape == (3, 2, 2) and counts.shape == (3,)
    assert batch_decode(codes, counts, lat, cfg).shape == X.shape
    assert mac_modq(torch.tensor([1, 2, 3]), torch.tensor([2, 3, 4]), 5) == 20 % 5
    assert accumulate_modq(torch.tensor(3), torch.tensor(4), 5) == 2


def test_qlinear_namesake_signature():
    cfg = QuantizationConfig(lattice_type="Z2", q=4, M=2)
    lat = Z2Lattice()
    layer = QLinear(4, 8, cfg, lat)  # 4th positional: lattice, as in the namesake
    assert layer.lattice is lat and layer.quantize_weights
    assert QLinear(4, 8, cfg).lattice.name == "Z2"  # default: the config's lattice
    with pytest.raises(ValueError, match="^lattice: .*4th positional"):
        QLinear(4, 8, cfg, True)  # this package's old positional quantize_weights is refused, not reinterpreted
    with pytest.raises(ValueError, match="^lattice: D4Lattice does not match"):
        QLinear(4, 8, cfg, lattice=D4Lattice())
    layer = QLinear(4, 8, cfg, quantize_weights=True, quantize_activations=True, quantize_every=2, use_lut=True)
    x = torch.randn(2, 4)
    layer(x)
    assert layer._step_count == 1
    stats = layer.get_quantization_stats()
    assert stats["step_count"] == 1 and stats["lattice_type"] == "Z2" and stats["config"]["q"] == 4
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))  # step 2 of 2: float
    layer.reset_step_count()
    assert layer._step_count == 0
    off = QLinear(4, 8, cfg, quantize_every=0)
    assert torch.equal(off(x), torch.nn.functional.linear(x, off.weight, off.bias))


def test_the_namesakes_cuda_vlut_module_points_to_the_lut_classes():
    import importlib

    with pytest.raises(ImportError, match=r"coset\.OneSidedLUT.*docs/migrating\.md"):
        importlib.import_module("coset.cuda.test_optimized_kernels_v2")
    cuda = importlib.import_module("coset.cuda")
    with pytest.raises(AttributeError, match=r"create_vectorized_vlut_operations.*coset\.TwoSidedLUT"):
        cuda.create_vectorized_vlut_operations


def test_integral_floats_are_accepted_for_integer_config_fields():
    cfg = QuantizationConfig(lattice_type="D4", q=4.0, M=2.0, max_scaling_iterations=10.0)
    assert cfg == QuantizationConfig(lattice_type="D4", q=4, M=2)
    assert type(cfg.q) is int and type(cfg.M) is int and type(cfg.max_scaling_iterations) is int
    assert QuantizationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"^q: expected an integer in \[2, 16\], got 4\.5 \(a float must hold an integer"):
        QuantizationConfig(q=4.5)
    with pytest.raises(ValueError, match="^M:"):
        QuantizationConfig(M=float("nan"))
    with pytest.raises(ValueError, match="^q:"):
        QuantizationConfig(q=32.0)


def test_disable_scaling_with_a_beta_other_than_one_is_refused_not_ignored():
    # The namesake divides by beta whatever disable_scaling says (its default is True); here the flag
    # means beta = 1, so accepting both would quantize on another grid without a word.
    with pytest.raises(ValueError, match="^beta: disable_scaling=True .* beta=0.3 would be ignored"):
        QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.3, disable_scaling=True)
    with pytest.raises(ValueError, match="^beta:"):
        QuantizationConfig(lattice_type="D4", q=4, M=2, disable_scaling=True).replace(beta=2.0)
    x = torch.randn(5, 4)
    plain = QuantizationConfig(lattice_type="D4", q=4, M=2, disable_scaling=True)  # beta 1: allowed
    assert torch.equal(quantize(x, D4Lattice(), plain), quantize(x, D4Lattice(), plain.replace(disable_scaling=False)))


def test_saved_layer_records_with_disable_scaling_and_another_beta_still_load():
    import struct

    from coset.deploy import read_layer_record

    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, disable_scaling=True, alpha=0.5)
    raw = bytearray(bytes(layer_record_bytes(cfg)))
    raw[14:22] = struct.pack("<d", 7.0)  # what an earlier version wrote for beta=7.0 (unused there)
    saved = read_layer_record(torch.frombuffer(raw, dtype=torch.uint8))
    assert saved.config == cfg
    old_dict = dict(cfg.to_dict(), beta=7.0)
    assert read_layer_record({"version": 1, "config": old_dict, "in_features": 8, "out_features": 3,
                              "bias": True}).config == cfg


def layer_record_bytes(cfg):
    from coset.deploy import layer_record

    return layer_record(cfg, 8, 3, True).numpy().tobytes()


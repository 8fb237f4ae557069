"""What users of the namesake (mlsquare/coset) write keeps working here (issue 16)."""

from __future__ import annotations

import numpy as np
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


def test_decode_takes_the_namesakes_positional_dither():
    lat = D4Lattice()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.2, with_dither=True)
    u = torch.tensor([0.31, -0.2, 0.05, 0.4])
    x = torch.randn(4)
    b, t = encode(x, lat, cfg, u)
    assert torch.equal(decode(b, lat, cfg, t, u), decode(b, lat, cfg, t, dither=u))  # decode(b, L, c, T, dither)
    assert not torch.equal(decode(b, lat, cfg, t, u), decode(b, lat, cfg, t))
    assert torch.equal(decode(b, lat, cfg, t, u.numpy()), decode(b, lat, cfg, t, dither=u))
    assert decode(b, lat, cfg, t, torch.float64).dtype == torch.float64  # a dtype stays a dtype
    with pytest.raises(ValueError, match="^dtype: got an array as well as dither="):
        decode(b, lat, cfg, t, u, dither=u)


def test_the_namesakes_module_paths_are_the_same_objects():
    import coset
    import coset.legacy.lattices as legacy_lattices
    import coset.legacy.nn as legacy_nn
    import coset.legacy.quant as legacy_quant
    from coset.legacy.quant.functional import quantize as legacy_quantize
    from coset.legacy.quant.sim import create_simulator as legacy_create_simulator
    from coset.legacy.quant.vlut import vLUTManager as legacy_manager
    from coset.lattices.e8 import E8Lattice as e8_from_module
    from coset.quant import functional, params, sim, vlut

    assert functional.encode is coset.encode and functional.decode is coset.decode
    assert functional.quantize is coset.quantize is legacy_quantize
    assert functional.batch_encode is coset.quant.batch_encode and functional.batch_quantize is coset.quant.batch_quantize
    assert params.QuantizationConfig is coset.QuantizationConfig is legacy_quant.QuantizationConfig
    assert legacy_lattices.E8Lattice is coset.E8Lattice is e8_from_module
    assert legacy_nn.QLinear is coset.QLinear
    assert legacy_manager is vlut.vLUTManager is coset.quant.vLUTManager
    assert legacy_create_simulator is sim.create_simulator
    from coset.quant import batch_e8_quantize, build_vlut  # noqa: F401  (names of the namesake's coset.quant)

    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        coset.quant.not_a_name


def test_batch_helpers_use_the_namesakes_types_and_match_quantize():
    from coset.quant import batch_decode, batch_encode, batch_quantize

    lat, cfg = D4Lattice(), QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.3)
    X = torch.randn(6, 4) * 2
    b, t = batch_encode(X, lat, cfg)
    assert b.dtype == torch.float32 and t.dtype == torch.int64 and b.shape == (6, 2, 4) and t.shape == (6,)
    b8, t8 = encode(X, lat, cfg)
    assert torch.equal(b, b8.float()) and torch.equal(t, t8.long())
    assert torch.equal(batch_decode(b, t, lat, cfg), quantize(X, lat, cfg))
    assert torch.equal(batch_quantize(X, lat, cfg), quantize(X, lat, cfg))
    bn, tn = batch_encode(X.numpy(), lat, cfg)
    assert bn.dtype == np.float32 and tn.dtype == np.int64


def test_e8_batch_helpers():
    from coset.quant import batch_decode_e8, batch_e8_quantize, batch_encode_e8, batch_quantize_e8

    lat = E8Lattice()
    X = torch.randn(20, 8) * 3
    assert torch.equal(batch_e8_quantize(X), lat.Q(X))
    assert torch.equal(batch_e8_quantize(torch.zeros(3, 8)), torch.zeros(3, 8))
    with pytest.raises(ValueError, match=r"^X: expected shape \(\.\.\., 8\)"):
        batch_e8_quantize(torch.randn(3, 4))
    cfg = QuantizationConfig(lattice_type="E8", q=4, M=2, beta=0.25, max_scaling_iterations=6)
    b, t = batch_encode_e8(X, lat, cfg, device="cpu")
    assert b.dtype == torch.float32 and t.dtype == torch.int64
    assert int(t.max()) > 0 and int(t.max()) < 6  # real rescale counts (not max_scaling_iterations)
    for i in range(3):
        bi, ti = encode(X[i], lat, cfg)
        assert torch.equal(b[i], bi) and int(t[i]) == ti
    assert torch.equal(batch_decode_e8(b, t, lat, cfg), quantize(X, lat, cfg))
    assert torch.equal(batch_quantize_e8(X, lat, cfg), quantize(X, lat, cfg))
    with pytest.raises(ValueError, match="^config: the \\*_e8 functions need an E8 config"):
        batch_encode_e8(torch.randn(2, 4), D4Lattice(), QuantizationConfig(lattice_type="D4"))


@pytest.mark.parametrize("name,q,M,beta", [("Z2", 4, 3, 0.5), ("D4", 4, 2, 0.7), ("E8", 3, 2, 0.4), ("D4", 5, 2, 1.0)])
def test_vlut_manager_tables_reproduce_decode(name, q, M, beta):
    from coset.lattices import LATTICES
    from coset.quant.vlut import _encoding_to_index, vLUTManager

    lat = LATTICES[name]()
    cfg = QuantizationConfig(lattice_type=name, q=q, M=M, beta=beta, alpha=0.5)
    manager = vLUTManager(lat, cfg)
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(lat.d, generator=gen)
    vlut = manager.build_one_sided_vlut(y)
    assert vlut.shape == (q ** lat.d,) and vlut.dtype == torch.float32 and vlut.device.type == "cpu"
    X = torch.randn(50, lat.d, generator=gen) * beta * q ** M / 2  # includes overloads: T > 0
    b, t = encode(X, lat, cfg)
    assert int(t.max()) > 0
    want = decode(b, lat, cfg, t).double() @ y.double()
    idx = _encoding_to_index(b.reshape(-1, lat.d).float(), q).reshape(50, M)
    levels = (vlut.double()[idx] * torch.tensor([float(q ** m) for m in range(M)], dtype=torch.float64)).sum(1)
    got = beta * 2.0 ** (0.5 * t.double()) * levels
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-4)
    two = manager.build_two_sided_vlut()
    p = manager.lattice_points()
    assert two.shape == (q ** lat.d,) * 2 and torch.allclose(two, (p.double() @ p.double().T).float())


def test_vlut_index_puts_the_first_coordinate_first_and_tables_are_cached_by_value():
    from coset.quant.vlut import _encoding_to_index, build_vlut, vLUTManager

    assert _encoding_to_index(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), 3).tolist() == [3, 1, 7]
    lat, cfg = Z2Lattice(), QuantizationConfig(lattice_type="Z2", q=3, M=2)
    manager = vLUTManager(lat, cfg)
    p = manager.lattice_points()
    assert torch.equal(p[3], decode(torch.tensor([[1, 0]], dtype=torch.uint8), lat, cfg.replace(M=1), 0))
    a = manager.build_one_sided_vlut(torch.tensor([1.0, 2.0]))
    assert manager.build_one_sided_vlut(torch.tensor([1.0, 2.0])) is a
    c = manager.build_one_sided_vlut(torch.tensor([2.0, 1.0]))  # same sum, another query: another table
    assert not torch.equal(a, c)
    y = torch.tensor([0.5, -1.0])
    first = manager.build_one_sided_vlut(y)
    assert manager.build_one_sided_vlut(y) is first
    y.mul_(3)  # changed in place: a new table, not the cached one
    assert torch.equal(manager.build_one_sided_vlut(y), manager.build_one_sided_vlut(torch.tensor([1.5, -3.0])))
    assert not torch.equal(manager.build_one_sided_vlut(y), first)
    assert torch.equal(build_vlut(lat, cfg), manager.build_two_sided_vlut())
    with pytest.raises(ValueError, match=r"^query_vector: expected a real vector of shape \(2,\)"):
        manager.build_one_sided_vlut(torch.randn(3))
    with pytest.raises(ValueError, match="^config: q\\^d = 5\\^8"):
        vLUTManager(E8Lattice(), QuantizationConfig(lattice_type="E8", q=5, M=1))


def test_lattice_vector_simulator():
    from coset.quant.sim import LatticeVectorSimulator, create_simulator

    sim = create_simulator("D4", q=3, M=2, device="cpu")
    assert isinstance(sim, LatticeVectorSimulator) and sim.lattice.name == "D4" and sim.device.type == "cpu"
    assert sim.config.disable_scaling and sim.config.disable_overload_protection and sim.config.beta == 1.0
    assert sim.encoding_space_size == 3 ** 8 and sim.single_level_size == 3 ** 4
    v = sim.generate_vectors(40)
    assert v.shape == (40, 4) and v.dtype == torch.float32
    assert torch.equal(quantize(v, sim.lattice, sim.config), v)  # already quantized
    report = sim.validate_reconstruction(v)
    assert report["exact_rate"] == 1.0 and report["max_error"] == 0.0 and report["exact_reconstructions"] == 40
    assert sim.generate_matrix(3, 10).shape == (3, 10)
    with pytest.raises(ValueError, match="^lattice_type:"):
        create_simulator("A2")

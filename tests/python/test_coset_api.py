"""Coset Python API: the seed's calls, shapes, dtypes, exactness, LUTs, packing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lowbit
from coset import (D4Config, D4Lattice, E8Config, E8Lattice, OneSidedLUT, QuantizationConfig, QuantizedMatrix,
                   TwoSidedLUT, Z2Lattice, decode, encode, pack, quantize, quantize_tensor, unpack)
from coset.lattices.e8 import E8Lattice as E8FromModule

LATTICES = [Z2Lattice(), D4Lattice(), E8Lattice()]


def test_seed_quick_start():
    lattice = D4Lattice()
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    x = torch.randn(4)
    b, T = encode(x, lattice, config)
    # One vector: the namesake's types (issue 16): float codes (so b @ G.T works) and a Python int T.
    assert b.shape == (2, 4) and b.dtype == torch.float32 and isinstance(T, int)
    x_rec = decode(b, lattice, config, T)
    assert isinstance(x_rec, torch.Tensor) and x_rec.shape == (4,)
    assert torch.norm(x - x_rec) < 2.0
    assert E8FromModule is E8Lattice


def test_lattice_objects():
    for lat, d in zip(LATTICES, (2, 4, 8)):
        assert lat.d == d
        g = lat.G
        assert tuple(g.shape) == (d, d)
        assert torch.allclose(g @ lat.G_inv, torch.eye(d))
    e8 = E8Lattice()
    # E8 points: all-integer or all-half-integer coordinates with an even sum.
    p = e8.Q(torch.randn(100, 8) * 3).double()
    frac = p - p.floor()
    assert bool(((frac == 0).all(1) | (frac == 0.5).all(1)).all())
    assert bool(((p.sum(1) % 2) == 0).all())


@pytest.mark.parametrize("lat", LATTICES, ids=lambda l: l.name)
@pytest.mark.parametrize("q,M", [(2, 3), (3, 2), (4, 2), (7, 1), (16, 1), (5, 4)])
def test_round_trip_exact(lat, q, M):
    config = QuantizationConfig(lattice_type=lat.name, q=q, M=M)
    rng = np.random.default_rng(q * 10 + M)
    x = (rng.standard_normal((3000, lat.d)) * (0.03 if q == 2 else 0.08) * q**M).astype(np.float32)
    b, T = encode(x, lat, config)
    assert b.dtype == np.uint8 and b.shape == (3000, M, lat.d) and T.shape == (3000,)
    assert b.max() < q
    xh = decode(b, lat, config, T)
    ok = T == 0
    assert ok.mean() > 0.3
    np.testing.assert_array_equal(xh[ok], lat.Q(x[ok]))


def test_scaling_options_and_dtypes():
    lat = E8Lattice()
    x = torch.randn(50, 7, 8, dtype=torch.float64)
    cfg = E8Config(q=3, M=2, beta=0.2, alpha=0.5, max_scaling_iterations=30)
    b, T = encode(x, lat, cfg)
    assert b.shape == (50, 7, 2, 8) and T.shape == (50, 7)
    xh = decode(b, lat, cfg, T, dtype=torch.float64)
    assert xh.dtype == torch.float64
    scale = 0.2 * 2.0 ** (0.5 * T.double())
    np.testing.assert_array_equal(xh.numpy(), (lat.Q(x / scale[..., None]) * scale[..., None]).numpy())
    # float16 in, float16 out
    h = quantize(torch.randn(10, 8).half(), lat, E8Config(q=4, M=2, beta=0.1))
    assert h.dtype == torch.float16
    # dither: unbiased-looking error, and encode/decode agree on the dither
    cfg_d = D4Config(q=8, M=1, beta=0.1, with_dither=True, dither_seed=5)
    y = np.random.default_rng(0).standard_normal((20000, 4)).astype(np.float32)
    yh = quantize(y, D4Lattice(), cfg_d)
    assert abs(float((yh - y).mean())) < 2e-3
    assert not np.array_equal(yh, quantize(y, D4Lattice(), cfg_d.replace(dither_seed=6)))


def test_quantize_tensor_blocks():
    lat = D4Lattice()
    cfg = D4Config(q=4, M=2, beta=0.05)
    torch.manual_seed(0)
    w = torch.randn(64, 102)  # 102 is not a multiple of 4: padded; 6528 values so the MSE concentrates
    wq = quantize_tensor(w, lat, cfg)
    assert wq.shape == w.shape and wq.dtype == w.dtype
    assert float(((w - wq) ** 2).mean()) < 0.01
    wq2 = quantize_tensor(w, lat, cfg, scale=w.abs().amax(1))
    assert wq2.shape == w.shape


def test_simd_levels_agree_from_python():
    lat = E8Lattice()
    cfg = E8Config(q=4, M=2, beta=0.1)
    x = np.random.default_rng(1).standard_normal((1001, 8)).astype(np.float32)
    results = []
    for level in lowbit.available_simd_levels():
        lowbit.set_simd_level(level)
        results.append(encode(x, lat, cfg))
    lowbit.set_simd_level(lowbit.available_simd_levels()[-1])
    for b, t in results[1:]:
        np.testing.assert_array_equal(b, results[0][0])
        np.testing.assert_array_equal(t, results[0][1])


def test_pack_unpack():
    lat = D4Lattice()
    cfg = D4Config(q=4, M=2, beta=0.05)
    x = np.random.default_rng(2).standard_normal((333, 4)).astype(np.float32)
    b, T = encode(x, lat, cfg)
    packed = pack(b, T, cfg)
    assert packed.nbytes == (333 * (8 * 2 + 4) + 7) // 8
    b2, T2 = unpack(packed, 333, cfg)
    np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(T, T2)


def test_luts_match_decode_then_dot():
    lat = D4Lattice()
    cfg = D4Config(q=4, M=2, beta=0.05)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 64)).astype(np.float32)
    y = rng.standard_normal(64).astype(np.float32)
    qm = QuantizedMatrix(lat, cfg, a)
    ref = qm.decode().astype(np.float64) @ y
    np.testing.assert_allclose(qm.matvec(y), ref, rtol=1e-4, atol=1e-4)
    b, T = encode(a[0].reshape(16, 4), lat, cfg)
    assert OneSidedLUT(lat, cfg, y).dot(b, T) == pytest.approx(ref[0], rel=1e-4, abs=1e-4)
    b2, T2 = encode(a[1].reshape(16, 4), lat, cfg)
    two = TwoSidedLUT(lat, cfg).dot(b, T, b2, T2)
    ref2 = float(decode(b, lat, cfg, T).ravel().astype(np.float64) @ decode(b2, lat, cfg, T2).ravel())
    assert two == pytest.approx(ref2, rel=1e-4, abs=1e-4)


def test_bad_input_raises_value_error_naming_the_argument():
    lat = D4Lattice()
    cfg = D4Config(q=4, M=2)
    with pytest.raises(ValueError, match="x: last dimension"):
        encode(torch.randn(3), lat, cfg)
    with pytest.raises(ValueError, match="NaN"):
        encode(torch.tensor([1.0, float("nan"), 0.0, 0.0]), lat, cfg)
    with pytest.raises(ValueError, match="Inf"):
        encode(np.array([[1.0, np.inf, 0.0, 0.0]]), lat, cfg)
    with pytest.raises(ValueError, match="^q:"):
        QuantizationConfig(q=17)
    with pytest.raises(ValueError, match="^q:"):
        QuantizationConfig(q=1)
    with pytest.raises(ValueError, match="^M:"):
        QuantizationConfig(M=0)
    with pytest.raises(ValueError, match="^M:"):
        QuantizationConfig(M=5)
    with pytest.raises(ValueError, match="^beta:"):
        QuantizationConfig(beta=-1.0)
    with pytest.raises(ValueError, match="lattice_type"):
        QuantizationConfig(lattice_type="A2")
    with pytest.raises(ValueError, match="^lattice:"):
        encode(torch.randn(8), E8Lattice(), cfg)
    b, T = encode(torch.randn(5, 4), lat, cfg)
    with pytest.raises(ValueError, match="^b:"):
        decode(b + 4, lat, cfg, T)
    with pytest.raises(ValueError, match="^b:"):
        decode(b.to(torch.int64) - 1, lat, cfg, T)
    with pytest.raises(ValueError, match="^b: trailing shape"):
        decode(b[..., :3], lat, cfg, T)
    with pytest.raises(ValueError, match="^T:"):
        decode(b, lat, cfg, T + 11)
    with pytest.raises(ValueError, match="^T:"):
        decode(b, lat, cfg, T[:2])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_meta_tensors_are_refused_with_a_clear_error(backend):
    import lowbit
    from coset import D4Lattice, QuantizationConfig, decode, encode, quantize

    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    lattice = D4Lattice()
    with lowbit.backend(backend):
        with pytest.raises(ValueError, match="encode: x is a meta tensor, which holds no data"):
            encode(torch.randn(3, 4, device="meta"), lattice, config)
        with pytest.raises(ValueError, match="encode: x is a meta tensor, which holds no data"):
            encode(torch.randn(3, 4), lattice, config, device="meta")
        with pytest.raises(ValueError, match="decode: b is a meta tensor, which holds no data"):
            decode(torch.zeros(3, 2, 4, dtype=torch.uint8, device="meta"), lattice, config)
        with pytest.raises(ValueError, match="quantize: x is a meta tensor, which holds no data"):
            quantize(torch.randn(3, 4, device="meta"), lattice, config)


def test_config_takes_numpy_scalars_and_checks_the_float32_scale_range_on_construction():
    # what np.arange / np.geomspace sweeps produce, as the namesake's plain dataclass takes them
    c = QuantizationConfig("D4", q=np.int64(4), M=np.int32(2), beta=np.float32(0.5), alpha=np.float64(0.25),
                           max_scaling_iterations=np.int64(10), with_dither=np.bool_(False), dither_seed=np.uint64(3))
    assert c == QuantizationConfig("D4", q=4, M=2, beta=0.5, alpha=0.25, max_scaling_iterations=10, dither_seed=3)
    assert type(c.q) is int and type(c.beta) is float and type(c.with_dither) is bool and type(c.dither_seed) is int
    with pytest.raises(ValueError, match="q: expected an integer"):
        QuantizationConfig("D4", q=np.bool_(True))
    # beta * 2^(alpha * max_scaling_iterations) past float32 (1e37 * 2^15): refused here, not at the first
    # encode (C++) or never (the PyTorch backend ran it)
    with pytest.raises(ValueError, match=r"overflows float"):
        QuantizationConfig("D4", beta=1e37, max_scaling_iterations=15)
    QuantizationConfig("D4", beta=1e37, max_scaling_iterations=0)  # 1e37 itself fits

"""Coset's pure-PyTorch backend: bit for bit the C++ kernels, on every device, touching neither
the native module nor numpy (issue 12)."""

from __future__ import annotations

import contextlib
import itertools
import warnings

import numpy as np
import pytest
import torch

import lowbit
from coset import (D4Lattice, E8Lattice, OneSidedLUT, QuantizationConfig, QuantizedMatrix, TwoSidedLUT,
                   Z2Lattice, decode, encode, pack, quantize, quantize_tensor, unpack)

from backend_helpers import forbid_native_and_numpy

LATTICES = {"Z2": Z2Lattice(), "D4": D4Lattice(), "E8": E8Lattice()}
DTYPES = [torch.float32, torch.float64]


def _both(fn):
    """fn() under the C++ backend (CPU tensors) and under the PyTorch backend."""
    with lowbit.backend("cpp"):
        ref = fn()
    with lowbit.backend("torch"):
        got = fn()
    return ref, got


def _hard_inputs(d: int, n: int, scale: float, dtype, seed: int) -> torch.Tensor:
    """Gaussian vectors plus exact ties (half-integers, multiples of 1/(2q)), the floats right
    next to them, and vectors far beyond the overload bound."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    k = n // 5
    x[:k] = torch.round(x[:k] * 2) / 2  # ties of the first closest point
    x[k:2 * k] = torch.round(x[k:2 * k] * 6) / 6  # ties of the hierarchy for q = 3, 6, ...
    x = x.to(dtype)
    x[2 * k:3 * k] = torch.nextafter(x[:k], torch.full_like(x[:k], float("inf")))  # near-ties
    x[3 * k:3 * k + 3] *= 1e4  # overloads
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", LATTICES)
def test_closest_point_bit_identical(name, dtype):
    lat = LATTICES[name]
    x = _hard_inputs(lat.d, 3000, 3.0, dtype, seed=1)
    for tie in (True, False):
        ref, got = _both(lambda: lat.Q(x, tie_dither=tie))
        assert ref.dtype == got.dtype == dtype
        assert torch.equal(ref, got), f"{name} tie_dither={tie}: {int((ref != got).any(1).sum())} vectors differ"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", LATTICES)
def test_encode_decode_bit_identical_every_q_and_M(name, dtype):
    lat = LATTICES[name]
    for q, m in itertools.product(range(2, 17), range(1, 5)):
        x = _hard_inputs(lat.d, 200, 1.0, dtype, seed=q * 10 + m)
        cfg = QuantizationConfig(lattice_type=name, q=q, M=m, beta=1.5 / q ** m, alpha=0.5,
                                 max_scaling_iterations=12)
        with _quiet():
            (b_ref, t_ref), (b, t) = _both(lambda: encode(x, lat, cfg))
        assert torch.equal(b_ref, b) and torch.equal(t_ref, t), f"{name} q={q} M={m}: codes differ"
        ref, got = _both(lambda: decode(b_ref, lat, cfg, t_ref, dtype=dtype))
        assert got.dtype == dtype and torch.equal(ref, got), f"{name} q={q} M={m}: decode differs"


@contextlib.contextmanager
def _quiet():
    """Overload warnings are expected here (the inputs include overloads on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("name", LATTICES)
def test_other_rules_dither_and_overload_options_bit_identical(name):
    lat = LATTICES[name]
    x = _hard_inputs(lat.d, 600, 1.0, torch.float32, seed=7)
    configs = [
        QuantizationConfig(lattice_type=name, q=3, M=2, beta=0.2, with_tie_dither=False),
        QuantizationConfig(lattice_type=name, q=4, M=2, beta=0.1, with_dither=True, dither_seed=2**63 + 11),
        QuantizationConfig(lattice_type=name, q=5, M=1, beta=0.3, disable_overload_protection=True),
        QuantizationConfig(lattice_type=name, q=4, M=3, beta=1.0, disable_scaling=True, max_scaling_iterations=3),
    ]
    for cfg in configs:
        with _quiet():
            (b_ref, t_ref), (b, t) = _both(lambda: encode(x, lat, cfg))
            assert torch.equal(b_ref, b) and torch.equal(t_ref, t), cfg
            ref, got = _both(lambda: decode(b_ref, lat, cfg, t_ref))
            assert torch.equal(ref, got), cfg
            ref, got = _both(lambda: quantize(x.half(), lat, cfg))
            assert got.dtype == torch.float16 and torch.equal(ref, got), cfg


@pytest.mark.parametrize("name,q", [("Z2", 16), ("Z2", 3), ("D4", 4), ("D4", 3), ("E8", 2), ("E8", 3)])
def test_luts_and_matvec_bit_identical(name, q):
    lat = LATTICES[name]
    d = lat.d
    g = torch.Generator().manual_seed(q)
    for m in (1, 2, 3):
        cfg = QuantizationConfig(lattice_type=name, q=q, M=m, beta=1.2 / q ** m, max_scaling_iterations=6)
        y = torch.randn(9 * d, generator=g)
        a = torch.randn(37, 9 * d, generator=g)
        with _quiet():
            bx, tx = encode(a[0].reshape(9, d), lat, cfg)
            by, ty = encode(a[1].reshape(9, d), lat, cfg)
        ref, got = _both(lambda: OneSidedLUT(lat, cfg, y).table)
        assert np.array_equal(ref, got.numpy())
        ref, got = _both(lambda: OneSidedLUT(lat, cfg, y).dot(bx, tx))
        assert ref == got  # the same float32 value
        ref, got = _both(lambda: QuantizedMatrix(lat, cfg, a).matvec(y))
        assert torch.equal(ref, got)
        ref, got = _both(lambda: QuantizedMatrix(lat, cfg, a).decode())
        assert torch.equal(ref, got)
        if q ** d <= 256:
            ref, got = _both(lambda: TwoSidedLUT(lat, cfg).dot(bx, tx, by, ty))
            assert ref == got


@pytest.mark.parametrize("name", LATTICES)
def test_pack_unpack_bit_identical(name):
    lat = LATTICES[name]
    for q, m, max_t in [(2, 4, 0), (3, 2, 5), (4, 2, 15), (16, 1, 255), (7, 3, 10)]:
        cfg = QuantizationConfig(lattice_type=name, q=q, M=m, beta=1.0 / q ** m, max_scaling_iterations=max_t,
                                 alpha=0.25, disable_overload_protection=max_t == 0)
        with _quiet():
            b, t = encode(torch.randn(333, lat.d), lat, cfg)
        ref, got = _both(lambda: pack(b, t, cfg))
        assert torch.equal(ref, got)
        (b1, t1), (b2, t2) = _both(lambda: unpack(got, 333, cfg))
        assert torch.equal(b1, b2) and torch.equal(t1, t2) and torch.equal(b2, b)


def test_torch_backend_touches_neither_native_nor_numpy():
    """Every op on CPU tensors under backend('torch'), with native and numpy forbidden."""
    from coset import QLinear
    from coset.quant import optimal_beta

    optimal_beta("D4", 4, 2)  # a cached host-side constant: computed before the fixture forbids numpy
    results = {}
    with lowbit.backend("torch"):
        with pytest.MonkeyPatch.context() as mp:
            forbid_native_and_numpy(mp, ("lowbit", "coset"))
            lat = D4Lattice()
            cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.1)
            x = torch.randn(64, 4)
            b, t = encode(x, lat, cfg)
            results["decode"] = decode(b, lat, cfg, t)
            results["quantize"] = quantize(x, lat, cfg)
            results["Q"] = lat.Q(x)
            results["qt"] = quantize_tensor(torch.randn(5, 10), lat, cfg, scale=torch.ones(5))
            packed = pack(b, t, cfg)
            results["unpack"] = unpack(packed, 64, cfg)[0]
            y = torch.randn(8)
            results["one"] = OneSidedLUT(lat, cfg, y).dot(b[:2], t[:2])
            results["two"] = TwoSidedLUT(lat, cfg).dot(b[:2], t[:2], b[2:4], t[2:4])
            qm = QuantizedMatrix(lat, cfg, torch.randn(5, 8))
            results["matvec"] = qm.matvec(y)
            layer = QLinear(8, 4, cfg)
            out = layer(torch.randn(3, 8))
            out.sum().backward()
            layer.eval()
            results["eval"] = layer(torch.randn(3, 8))
            cfg.replace(q=5).to_dict()
    assert layer.weight.grad is not None and len(results) == 9


def test_fixture_no_native_no_numpy(no_native_no_numpy):
    """The shared fixture: encode/decode/Q/LUT under backend('torch') with native and numpy gone."""
    with lowbit.backend("torch"):
        lat = E8Lattice()
        cfg = QuantizationConfig(lattice_type="E8", q=3, M=2, beta=0.3, with_dither=True, dither_seed=3)
        x = torch.randn(50, 8, dtype=torch.float64)
        b, t = encode(x, lat, cfg)
        xh = decode(b, lat, cfg, t, dtype=torch.float64)
        assert xh.dtype == torch.float64 and xh.shape == x.shape
        assert torch.equal(lat.Q(torch.tensor([[0.5] * 8])), torch.tensor([[0.5] * 8]))
        cfg2 = QuantizationConfig(lattice_type="E8", q=2, M=1)
        assert TwoSidedLUT(lat, cfg2).dot(*encode(x[:3].float(), lat, cfg2), *encode(x[3:6].float(), lat, cfg2)) is not None


# --- every device: same device out, same errors --------------------------------------------------

def test_results_stay_on_the_device(device, backend_name):
    lat = D4Lattice()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.1)
    x = torch.randn(20, 4, device=device)
    b, t = encode(x, lat, cfg)
    assert b.device == x.device and t.device == x.device and b.dtype == torch.uint8
    for out in (decode(b, lat, cfg, t), quantize(x, lat, cfg), lat.Q(x), pack(b, t, cfg),
                unpack(pack(b, t, cfg), 20, cfg)[0], quantize_tensor(torch.randn(3, 9, device=device), lat, cfg),
                QuantizedMatrix(lat, cfg, torch.randn(6, 8, device=device)).matvec(torch.randn(8, device=device))):
        assert out.device == x.device
    single_b, single_t = encode(x[0], lat, cfg)
    assert single_b.device == x.device and single_b.dtype == torch.float32 and isinstance(single_t, int)
    if x.device.type == "cpu":
        ref = decode(b.cpu(), lat, cfg, t.cpu())
    else:
        with lowbit.backend("cpp"):
            ref = decode(b.cpu(), lat, cfg, t.cpu())
    assert torch.equal(decode(b, lat, cfg, t).cpu(), ref)


def test_bad_input_same_errors_on_every_device(device, backend_name):
    lat = D4Lattice()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2)
    with pytest.raises(ValueError, match="x: last dimension"):
        encode(torch.randn(3, device=device), lat, cfg)
    with pytest.raises(ValueError, match=r"NaN or Inf \(vector 1\)"):
        encode(torch.tensor([[0.0] * 4, [1.0, float("nan"), 0.0, 0.0]], device=device), lat, cfg)
    with pytest.raises(ValueError, match="NaN or Inf"):
        lat.Q(torch.tensor([float("inf"), 0.0, 0.0, 0.0], device=device))
    b, t = encode(torch.randn(5, 4, device=device), lat, cfg)
    with pytest.raises(ValueError, match=r"^b: values must lie in \[0, 4\)"):
        decode(b + 4, lat, cfg, t)
    with pytest.raises(ValueError, match="^b: "):
        decode(b.to(torch.int64) - 1, lat, cfg, t)
    with pytest.raises(ValueError, match="^b: float codes must hold integers"):
        decode(b.float() + 0.5, lat, cfg, t)
    with pytest.raises(ValueError, match="^b: trailing shape"):
        decode(b[..., :3], lat, cfg, t)
    with pytest.raises(ValueError, match="^T:"):
        decode(b, lat, cfg, t + 11)
    with pytest.raises(ValueError, match="^T:"):
        decode(b, lat, cfg, t[:2])
    with pytest.raises(ValueError, match="^b: "):
        pack(b + 4, t, cfg)


def test_tensor_on_another_device_names_both_devices(device):
    from coset import QLinear

    if device.type == "cpu":
        other = torch.device("meta")
    else:
        other = torch.device("cpu")
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = QLinear(8, 4, cfg, device=device)
    with pytest.raises(ValueError, match=f"x is on device {other}.*layer's weight is on device {device}"):
        layer(torch.randn(2, 8, device=other))
    qm = QuantizedMatrix(D4Lattice(), cfg, torch.randn(4, 8, device=device))
    with pytest.raises(ValueError, match="y is on device .* but the matrix is on device"):
        qm.matvec(torch.randn(8, device=other))
    b, t = encode(torch.randn(3, 4, device=device), D4Lattice(), cfg)
    with pytest.raises(ValueError, match="T is on device .* but b is on device"):
        decode(b, D4Lattice(), cfg, t.to(other))

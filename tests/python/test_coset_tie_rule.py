"""One lattice, one tie rule (issue 15, kind 8): Algorithm 2 written with the public ``Lattice.Q``,
``x_m = G b_m - q Q(G b_m / q)``, reproduces ``decode`` for every lattice and every q.

``G b / q`` computed in float is a rounded rational: where it lies on a Voronoi boundary (always
possible for even q, and for D4 and E8 also for odd q) an exact float comparison would break the
tie by the rounding error. ``Q`` counts residuals within ``2**-20 * max(1, |v|)`` of a tie as the
tie (the tie snap, docs/coset.md), exactly as the codec's first step does.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import lowbit
from coset import D4Lattice, E8Lattice, QuantizationConfig, Z2Lattice, decode, encode, quantize

LATTICES = {"Z2": Z2Lattice(), "D4": D4Lattice(), "E8": E8Lattice()}
MAX_EXHAUSTIVE = 70000  # q**d codes beyond this are sampled (E8 q >= 5)
SAMPLED = 20000


def _all_codes(d: int, q: int) -> torch.Tensor:
    if q ** d <= MAX_EXHAUSTIVE:
        return torch.tensor(list(itertools.product(range(q), repeat=d)), dtype=torch.uint8)
    g = torch.Generator().manual_seed(q)
    return torch.randint(0, q, (SAMPLED, d), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", LATTICES)
def test_algorithm_2_with_public_q_equals_decode_every_q(name, backend_name):
    lat = LATTICES[name]
    mismatches = {}
    for q in range(2, 17):
        codes = _all_codes(lat.d, q)
        cfg = QuantizationConfig(lattice_type=name, q=q, M=1, disable_overload_protection=True)
        dec = decode(codes.reshape(-1, 1, lat.d), lat, cfg, torch.zeros(len(codes), dtype=torch.uint8))
        gb = codes.float() @ lat.G.T  # exactly as the field report writes it
        ref = gb - q * lat.Q(gb / q)
        bad = int((dec != ref).any(1).sum())
        if bad:
            mismatches[q] = bad
    assert not mismatches, f"{name}: codes whose decode differs from G b - q Q(G b / q): {mismatches}"


@pytest.mark.parametrize("name", LATTICES)
def test_algorithm_2_with_the_plain_rule_equals_decode_every_q(name, backend_name):
    """with_tie_dither=False (plain Conway & Sloane: half to even, lowest index, D8 first) is one
    rule too: Q(., tie_dither=False) on float G b / q (float32 and float64) breaks the ties decode
    breaks on exact integers (before, D4 and E8 disagreed for every q >= 3, odd included)."""
    lat = LATTICES[name]
    mismatches = {}
    for q in range(2, 17):
        codes = _all_codes(lat.d, q)
        cfg = QuantizationConfig(lattice_type=name, q=q, M=1, disable_overload_protection=True, with_tie_dither=False)
        dec = decode(codes.reshape(-1, 1, lat.d), lat, cfg, torch.zeros(len(codes), dtype=torch.uint8))
        for dtype in (torch.float32, torch.float64):
            gb = codes.to(dtype) @ lat.G.T.to(dtype)
            ref = (gb - q * lat.Q(gb / q, tie_dither=False)).float()
            bad = int((dec != ref).any(1).sum())
            if bad:
                mismatches[(q, str(dtype))] = bad
        gb = (codes.double() @ lat.G.T.double()).numpy()  # numpy in, the native path
        ref = torch.from_numpy(gb - q * lat.Q(gb / q, tie_dither=False)).float()
        bad = int((dec != ref).any(1).sum())
        if bad:
            mismatches[(q, "numpy")] = bad
    assert not mismatches, f"{name}: codes whose plain-rule decode differs from G b - q Q(G b / q): {mismatches}"


@pytest.mark.parametrize("name", LATTICES)
def test_two_levels_and_float64(name):
    """M = 2 (weights q^m) and float64 arithmetic give the same agreement."""
    lat = LATTICES[name]
    g = torch.Generator().manual_seed(5)
    for q in (3, 4, 5, 8):
        codes = torch.randint(0, q, (4000, 2, lat.d), generator=g, dtype=torch.uint8)
        cfg = QuantizationConfig(lattice_type=name, q=q, M=2, disable_overload_protection=True)
        dec = decode(codes, lat, cfg, dtype=torch.float64)
        gb = codes.double() @ lat.G.T.double()
        levels = gb - q * lat.Q(gb / q)
        assert torch.equal(dec, levels[:, 0] + q * levels[:, 1]), f"{name} q={q}"


def test_the_field_case_d4_q3():
    """The reported instance: D4, q = 3, b = (2, 0, 0, 1) (G b / 3 = (1, 1/3, 0, 1/3) rounded)."""
    lat = D4Lattice()
    cfg = QuantizationConfig(lattice_type="D4", q=3, M=1, disable_overload_protection=True)
    b = torch.tensor([[2, 0, 0, 1]], dtype=torch.uint8)
    gb = b.float() @ lat.G.T
    assert torch.equal(decode(b.reshape(1, 1, 4), lat, cfg, torch.zeros(1, dtype=torch.uint8)),
                       gb - 3 * lat.Q(gb / 3))


@pytest.mark.parametrize("name", LATTICES)
def test_quantize_still_equals_q_of_scaled_input(name):
    """The codec's first step uses the same snapped rule, so quantize(x) == s Q(x / s) still holds
    bit for bit, ties and near-ties included (both backends)."""
    lat = LATTICES[name]
    cfg = QuantizationConfig(lattice_type=name, q=5, M=2, beta=0.25)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(5000, lat.d, generator=g) * 1.5
    x[:1000] = torch.round(x[:1000] * 8) / 8 / 3  # rounded thirds: ties up to rounding
    for backend in ("auto", "torch"):
        with lowbit.backend(backend):
            _, t = encode(x, lat, cfg)
            ok = t == 0  # not overloaded: decode(encode(x)) = s Q(x / s)
            assert ok.float().mean() > 0.5
            assert torch.equal(quantize(x, lat, cfg)[ok], (lat.Q(x / 0.25) * 0.25)[ok])

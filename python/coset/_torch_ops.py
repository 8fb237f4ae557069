"""Pure-PyTorch twins of the Coset C++ kernels: same results bit for bit, on any device.

Every op here mirrors a scalar reference of ``src/coset`` (``lattice_step.h``, ``hnlq_ref.cpp``,
``hnlq.cpp``, ``lut.cpp``, ``lut_ref.cpp``, ``packing.cpp``) operation by operation: the same
float operations in the same order, each a separate PyTorch op (so nothing is contracted into
an FMA; an add with ``alpha = +-1`` is exact either way), sums over a vector's coordinates
written as explicit left-to-right adds, divisions by a per-vector scale done as tensor divisions
(a CUDA division by a host scalar is turned into a multiplication by its reciprocal by PyTorch).
Nothing here touches ``lowbit._native`` or numpy.

Ops (the names CUDA kernels register under in :mod:`lowbit._cuda_ops`, same signatures):

===========================  ==========================================================
``coset.closest_point``      ``closest_point(x, lattice, tie_dither=True) -> Tensor``
``coset.encode``             ``encode(x, config, dither=None) -> (b, T, still_overloaded)``
``coset.decode``             ``decode(b, T, config, dtype, dither=None) -> Tensor``
``coset.dither``             ``dither(config, n, dtype, device) -> Tensor (n, d)``
``coset.lut_tables``         ``lut_tables(y, config) -> Tensor (blocks, q**d) float32``
``coset.lut_dot``            ``lut_dot(tables, b, T, config) -> Tensor (...) float32``
``coset.lut_two_sided_table`` ``lut_two_sided_table(config, device) -> Tensor (q**d, q**d)``
``coset.lut_two_sided_dot``  ``lut_two_sided_dot(table, bx, Tx, by, Ty, config) -> Tensor (...)``
``coset.lut_matvec``         ``lut_matvec(index, T, y, config) -> Tensor (rows,) float32``
``coset.pack``               ``pack(b, T, config) -> Tensor uint8``
``coset.unpack``             ``unpack(packed, n, config) -> (b, T)``
===========================  ==========================================================

Validation (shapes, NaN/Inf, code ranges) is the caller's (:mod:`coset.quant`); these functions
assume valid input. Source: Kaplan & Ordentlich, arXiv 2505.13164, Algorithms 1 and 2 (section 3)
and the lookup tables of section 5; the tie rule is docs/coset.md.
"""

from __future__ import annotations

import math
import struct
from typing import List, Optional, Tuple

import torch

DIMS = {"Z2": 2, "D4": 4, "E8": 8}
COORD_SCALE = {"Z2": 1, "D4": 1, "E8": 2}


# --- generators ------------------------------------------------------------------------------

def generator_rows(lattice: str) -> List[List[float]]:
    """G as row lists (columns are the basis): Z2 I; D4 2e1, e2-e1, e3-e2, e4-e3; E8 adds (1/2,...)."""
    d = DIMS[lattice]
    g = [[0.0] * d for _ in range(d)]
    if lattice == "Z2":
        g[0][0] = g[1][1] = 1.0
        return g
    chain = 4 if lattice == "D4" else 7
    g[0][0] = 2.0
    for c in range(1, chain):
        g[c - 1][c] = -1.0
        g[c][c] = 1.0
    if lattice == "E8":
        for r in range(8):
            g[r][7] = 0.5
    return g


def inverse_generator_rows(lattice: str) -> List[List[float]]:
    """G^-1 by Gauss-Jordan on the dyadic G (exact: pivots are 2, 1 or 1/2), as lattice.cpp."""
    d = DIMS[lattice]
    g = generator_rows(lattice)
    inv = [[1.0 if i == j else 0.0 for j in range(d)] for i in range(d)]
    for col in range(d):
        pivot = col
        while g[pivot][col] == 0.0:
            pivot += 1
        g[col], g[pivot] = g[pivot], g[col]
        inv[col], inv[pivot] = inv[pivot], inv[col]
        p = g[col][col]
        g[col] = [v / p for v in g[col]]
        inv[col] = [v / p for v in inv[col]]
        for row in range(d):
            f = g[row][col]
            if row == col or f == 0.0:
                continue
            g[row] = [a - f * b for a, b in zip(g[row], g[col])]
            inv[row] = [a - f * b for a, b in zip(inv[row], inv[col])]
    return inv


def _float_of(value: float, dtype: torch.dtype) -> float:
    """``static_cast<T>(value)``: the double rounded to float32 (round to nearest) or kept."""
    if dtype == torch.float64:
        return float(value)
    return struct.unpack("f", struct.pack("f", value))[0]


def scale_values(config, dtype: torch.dtype) -> List[float]:
    """``config.scale<T>(t)`` for t = 0..max_t: ``(T)(beta_eff * exp2(alpha * t))`` (hnlq.cpp)."""
    base = 1.0 if config.disable_scaling else float(config.beta)
    return [_float_of(base * math.exp2(float(config.alpha) * t), dtype) for t in range(config.max_t() + 1)]


# --- one closest-point step (lattice_step.h) --------------------------------------------------

# Ties of the closest point of float data are ties up to this relative tolerance (lattice_step.h
# kTieSnap; docs/coset.md "the tie snap"): a float input is usually a rounded rational (G b / q).
TIE_SNAP = 2.0 ** -20


class _Step:
    __slots__ = ("div", "inv_div", "half", "nudge", "snap")

    def __init__(self, div: float, nudge: bool, dtype: torch.dtype, snap: bool = False) -> None:
        self.div = _float_of(div, dtype)
        self.inv_div = _float_of(1.0 / div, dtype)
        self.half = _float_of(div / 2, dtype)
        self.nudge = nudge
        self.snap = TIE_SNAP if snap else 0.0


def _tie_tolerance(v: torch.Tensor, p: _Step) -> Optional[torch.Tensor]:
    """snap * max(1, max_j |v_j|) per vector, shape (..., 1); None when the step is exact."""
    if p.snap == 0.0:
        return None
    m = torch.clamp(v.abs().amax(-1, keepdim=True), min=1.0)
    return m * p.snap


def _round_coord(v: torch.Tensor, p: _Step, tol: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    r = torch.round(v * p.inv_div)  # nearbyint: round half to even
    e = v - p.div * r
    if tol is None:
        up = e >= p.half
        down = (~up) & (e < -p.half)
    else:
        up = e >= p.half - tol
        down = (~up) & (e < -p.half - tol)
    r = torch.where(up, r + 1.0, torch.where(down, r - 1.0, r))
    e = torch.where(up, e - p.div, torch.where(down, e + p.div, e))
    if not p.nudge:  # a tie goes to the even integer (within tol of -div/2 counts as a tie)
        at_tie = (e == -p.half) if tol is None else ((e + p.half).abs() <= tol)
        odd = at_tie & ((r - 2.0 * torch.floor(r * 0.5)) != 0)
        r = torch.where(odd, r - 1.0, r)
        e = torch.where(odd, e + p.div, e)
    return r, e


def _left_sum(cols: List[torch.Tensor]) -> torch.Tensor:
    acc = cols[0]
    for c in cols[1:]:
        acc = acc + c
    return acc


def _sign_weight(e: torch.Tensor, w: float) -> torch.Tensor:
    """+w where e >= 0, else -w (the s_j 2^j of the tie rule)."""
    return torch.where(e >= 0, torch.full_like(e, w), torch.full_like(e, -w))


def _dn_fix(r: torch.Tensor, e: torch.Tensor, p: _Step,
            tol: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    d = r.shape[-1]
    total = _left_sum([r[..., j] for j in range(d)])
    odd = (total - 2.0 * torch.floor(total * 0.5)) != 0
    best = torch.zeros(r.shape[:-1], dtype=torch.int64, device=r.device)
    best_abs = e[..., 0].abs()
    best_sw = _sign_weight(e[..., 0], 1.0)
    t = None if tol is None else tol[..., 0]
    for j in range(1, d):
        a = e[..., j].abs()
        w = float(1 << j)
        sw = _sign_weight(e[..., j], w)
        if not p.nudge:
            take = a > best_abs if t is None else a > best_abs + t
        elif t is None:
            take = (a > best_abs) | ((a == best_abs) & (sw > best_sw))
        else:
            take = (a > best_abs + t) | ((a >= best_abs - t) & (sw > best_sw))
        best = torch.where(take, torch.full_like(best, j), best)
        best_abs = torch.where(take, a, best_abs)
        best_sw = torch.where(take, sw, best_sw)
    pick = (torch.arange(d, device=r.device) == best.unsqueeze(-1)) & odd.unsqueeze(-1)
    s = _sign_weight(e, 1.0)
    r = torch.where(pick, r + s, r)
    e = torch.where(pick, e - s * p.div, e)
    return r, e


def _squared_norm(e: torch.Tensor) -> torch.Tensor:
    acc = torch.zeros(e.shape[:-1], dtype=e.dtype, device=e.device)
    for j in range(e.shape[-1]):
        acc = acc + e[..., j] * e[..., j]
    return acc


def _nudge_dot(e: torch.Tensor) -> torch.Tensor:
    acc = torch.zeros(e.shape[:-1], dtype=e.dtype, device=e.device)
    for j in range(e.shape[-1]):
        acc = acc + float(1 << j) * e[..., j]
    return acc


def _lattice_step(lattice: str, v: torch.Tensor, p: _Step) -> Tuple[torch.Tensor, torch.Tensor]:
    """(point in C-scaled coordinates, residual e = v - div * point / C), as lattice_step.h."""
    tol = _tie_tolerance(v, p)
    if lattice != "E8":
        r, e = _round_coord(v, p, tol)
        if lattice == "D4":
            r, e = _dn_fix(r, e, p, tol)
        return r, e
    r0, e0 = _dn_fix(*_round_coord(v, p, tol), p, tol)
    r1, e1 = _dn_fix(*_round_coord(v - p.half, p, tol), p, tol)
    d0, d1 = _squared_norm(e0), _squared_norm(e1)
    if p.nudge and tol is not None:
        tol_d = 8.0 * tol[..., 0]  # |d error| <= 2 sum_j |e_j| |e_j error| < 8 tol
        keep0 = (d0 < d1 - tol_d) | ((d0 <= d1 + tol_d) & (_nudge_dot(e0) <= _nudge_dot(e1)))
    elif p.nudge:
        keep0 = (d0 < d1) | ((d0 == d1) & (_nudge_dot(e0) <= _nudge_dot(e1)))
    elif tol is not None:
        keep0 = d0 <= d1 + 8.0 * tol[..., 0]
    else:
        keep0 = d0 <= d1
    keep0 = keep0.unsqueeze(-1)
    point = torch.where(keep0, 2.0 * r0, 2.0 * r1 + 1.0)
    return point, torch.where(keep0, e0, e1)


def closest_point(x: torch.Tensor, lattice: str, tie_dither: bool = True) -> torch.Tensor:
    """The closest lattice point to each vector of ``x`` (..., d), float32/float64, finite.

    Mirrors ``closest_points`` of lattice.cpp: one step with div = 1, point / C.
    """
    point, _ = _lattice_step(lattice, x, _Step(1.0, tie_dither, x.dtype, snap=True))
    return point * _float_of(1.0 / COORD_SCALE[lattice], x.dtype)


# --- codes -----------------------------------------------------------------------------------

def _ginv_quarters(lattice: str, device) -> torch.Tensor:
    """4 * G^-1 / C as int64: b = (K @ point_c) / 4 exactly, for C-scaled integer points."""
    inv = inverse_generator_rows(lattice)
    c = COORD_SCALE[lattice]
    return torch.tensor([[round(4 * v / c) for v in row] for row in inv], dtype=torch.int64, device=device)


def _codes_of_point(lattice: str, q: int, point_c: torch.Tensor) -> torch.Tensor:
    """b = G^-1 (point / C) mod q (hnlq_ref.cpp codes_of_point), in exact integer arithmetic."""
    k = _ginv_quarters(lattice, point_c.device)
    p = point_c.to(torch.int64)
    b = (p.unsqueeze(-2) * k).sum(-1)  # integers: exact in any order
    return torch.remainder(torch.div(b, 4, rounding_mode="floor"), q).to(torch.uint8)


def overload_bound(q: int, levels: int) -> float:
    """2 q^M + 2 (hnlq_kernels.h): beyond it a vector overloads for sure."""
    return 2.0 * float(q) ** levels + 2.0


def _encode_levels(lattice: str, q: int, levels: int, nudge: bool, y: torch.Tensor):
    """encode_ref for already-scaled y (n, d): (codes (n, M, d) uint8, overloaded (n,) bool)."""
    bound = _float_of(overload_bound(q, levels), y.dtype)
    over = (y.abs() > bound).any(-1)
    v = torch.clamp(y, -bound, bound)
    lam, _ = _lattice_step(lattice, v, _Step(1.0, nudge, y.dtype, snap=True))
    # The hierarchy runs on exact integers below 2^24: any float type computes it exactly.
    level = _Step(float(COORD_SCALE[lattice] * q), nudge, y.dtype)
    codes = []
    for _ in range(levels):
        codes.append(_codes_of_point(lattice, q, lam))
        lam, _ = _lattice_step(lattice, lam, level)
    over = over | (lam != 0).any(-1)
    return torch.stack(codes, dim=-2), over


def _splitmix_stream(seed: torch.Tensor, count: int) -> List[torch.Tensor]:
    """``count`` splitmix64 outputs per state (int64 tensors wrap like uint64), logical shifts."""
    def signed(v: int) -> int:
        return v - (1 << 64) if v >= 1 << 63 else v

    def lsr(z: torch.Tensor, k: int) -> torch.Tensor:
        return torch.bitwise_and(torch.bitwise_right_shift(z, k), (1 << (64 - k)) - 1)

    state = seed
    out = []
    for _ in range(count):
        state = state + signed(0x9E3779B97F4A7C15)
        z = state
        z = torch.bitwise_xor(z, lsr(z, 30)) * signed(0xBF58476D1CE4E5B9)
        z = torch.bitwise_xor(z, lsr(z, 27)) * signed(0x94D049BB133111EB)
        out.append(torch.bitwise_xor(z, lsr(z, 31)))
    return out


def dither(config, n: int, dtype: torch.dtype, device, start: int = 0) -> torch.Tensor:
    """The subtractive dither of vectors ``start..start+n-1`` (n, d), as ``dither_vector`` (hnlq.cpp).

    ``u = z - Q(z)``, ``z = G t``, ``t`` from splitmix64 seeded with
    ``dither_seed ^ (i * 0xD1B54A32D192ED03)``. Needs float64 on the device (not MPS).
    """
    lattice, d = config.lattice_type, config.d
    seed_u = config.dither_seed
    seed = torch.tensor(seed_u - (1 << 64) if seed_u >= 1 << 63 else seed_u, dtype=torch.int64, device=device)
    idx = torch.arange(start, start + n, dtype=torch.int64, device=device)
    mult = 0xD1B54A32D192ED03 - (1 << 64)
    states = torch.bitwise_xor(seed, idx * mult)
    draws = _splitmix_stream(states, d)
    lsr11 = [torch.bitwise_and(torch.bitwise_right_shift(z, 11), (1 << 53) - 1) for z in draws]
    t = [v.to(torch.float64) * 2.0 ** -53 for v in lsr11]
    g = generator_rows(lattice)
    cols = []
    for r in range(d):
        s = torch.zeros(n, dtype=torch.float64, device=device)
        for k in range(d):
            s = s + g[r][k] * t[k]
        cols.append(s.to(dtype))
    z = torch.stack(cols, -1) if n else torch.zeros(0, d, dtype=dtype, device=device)
    point, _ = _lattice_step(lattice, z, _Step(1.0, True, dtype, snap=True))
    return z - point * _float_of(1.0 / COORD_SCALE[lattice], dtype)


def _scaled_input(x: torch.Tensor, s: torch.Tensor, s_is_one: bool, u: Optional[torch.Tensor]) -> torch.Tensor:
    y = x if s_is_one else x / s
    return y if u is None else y - u


def encode(x: torch.Tensor, config, dither_u: Optional[torch.Tensor] = None):
    """Algorithm 1 with overload retries (hnlq.cpp ``encode``): x (n, d) float32/float64, finite.

    Returns ``(b (n, M, d) uint8, T (n,) uint8, still_overloaded (n,) bool)``. ``dither_u`` (n, d)
    is the dither to subtract after scaling (``None``: the config's seeded dither if
    ``with_dither``, else none).
    """
    n = x.shape[0]
    if dither_u is None and config.with_dither:
        dither_u = dither(config, n, x.dtype, x.device)
    scales = scale_values(config, x.dtype)
    max_t = config.max_t()
    lattice, q, levels, nudge = config.lattice_type, config.q, config.M, config.with_tie_dither
    s0 = torch.full((1, 1), scales[0], dtype=x.dtype, device=x.device)
    codes, over = _encode_levels(lattice, q, levels, nudge, _scaled_input(x, s0, scales[0] == 1.0, dither_u))
    t = torch.zeros(n, dtype=torch.uint8, device=x.device)
    for k in range(1, max_t + 1):
        if n == 0 or not bool(over.any()):
            break
        rows = over.nonzero().squeeze(-1)
        sk = torch.full((1, 1), scales[k], dtype=x.dtype, device=x.device)
        u = None if dither_u is None else dither_u[rows]
        c_k, o_k = _encode_levels(lattice, q, levels, nudge, _scaled_input(x[rows], sk, scales[k] == 1.0, u))
        codes[rows] = c_k
        t[rows] = k
        over = over.clone()
        over[rows] = o_k
    return codes, t, over


def decode(b: torch.Tensor, T: torch.Tensor, config, dtype: torch.dtype,
           dither_u: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Algorithm 2 (hnlq_ref.cpp ``decode_ref`` and the scaling of hnlq.cpp): b (n, M, d) integer
    codes in [0, q), T (n,) integers <= max_t. Returns (n, d) of ``dtype`` (float32/float64)."""
    lattice, q = config.lattice_type, config.q
    out = level_decode(b, lattice, q, config.with_tie_dither, dtype)
    scales = torch.tensor(scale_values(config, dtype), dtype=dtype, device=b.device)
    s = scales[T.long()].unsqueeze(-1)
    if dither_u is None and config.with_dither:
        dither_u = dither(config, b.shape[0], dtype, b.device)
    if dither_u is not None:
        return (out + dither_u) * s
    return out * s


def level_decode(b: torch.Tensor, lattice: str, q: int, nudge: bool, dtype: torch.dtype) -> torch.Tensor:
    """sum_m q^m (G b_m - q Q(G b_m / q)) for codes b (..., M, d): exact (half-)integers."""
    c = COORD_SCALE[lattice]
    g = generator_rows(lattice)
    d = len(g)
    level = _Step(float(c * q), nudge, dtype)
    bf = b.to(dtype)
    acc = torch.zeros(b.shape[:-2] + (d,), dtype=dtype, device=b.device)
    weight = 1.0
    for m in range(b.shape[-2]):
        bm = bf[..., m, :]
        cols = []
        for r in range(d):  # v = C G b: small integers, exact in any order
            s = torch.zeros(b.shape[:-2], dtype=dtype, device=b.device)
            for k in range(d):
                if g[r][k] != 0.0:
                    s = s + g[r][k] * bm[..., k]
            cols.append(s * float(c))
        _, e = _lattice_step(lattice, torch.stack(cols, -1), level)
        acc = acc + weight * e
        weight *= q
    return acc / float(c)


# --- lookup tables (lut.cpp, lut_ref.cpp) ----------------------------------------------------

def level_index(b: torch.Tensor, q: int) -> torch.Tensor:
    """sum_j b_j q^j over the last axis (int64): the index of a level's codes."""
    w = torch.tensor([q ** j for j in range(b.shape[-1])], dtype=torch.int64, device=b.device)
    return (b.to(torch.int64) * w).sum(-1)


def level_codes(idx: torch.Tensor, d: int, q: int) -> torch.Tensor:
    """The base-q digits of ``idx`` (lowest first) as (..., d) uint8."""
    w = torch.tensor([q ** j for j in range(d)], dtype=torch.int64, device=idx.device)
    return torch.remainder(torch.div(idx.to(torch.int64).unsqueeze(-1), w, rounding_mode="floor"), q).to(torch.uint8)


def representatives(config, device) -> torch.Tensor:
    """rep(idx) for idx in [0, q^d): (q^d, d) float32 (``coset_representatives``)."""
    d, q = config.d, config.q
    idx = torch.arange(q ** d, dtype=torch.int64, device=device)
    codes = level_codes(idx, d, q).unsqueeze(-2)
    return level_decode(codes, config.lattice_type, q, config.with_tie_dither, torch.float32)


def lut_tables(y: torch.Tensor, config) -> torch.Tensor:
    """One-sided tables ``L[k, idx] = <y_k, rep(idx)>`` (blocks, q^d) float32, y (blocks, d) float32.

    Summed j = 0..d-1 from 0.0f, a multiply then an add (``build_tables_scalar``).
    """
    reps = representatives(config, y.device)
    acc = torch.zeros(y.shape[0], reps.shape[0], dtype=torch.float32, device=y.device)
    for j in range(config.d):
        acc = acc + reps[:, j].unsqueeze(0) * y[:, j].unsqueeze(1)
    return acc


def lut_scales(config, device) -> torch.Tensor:
    """The float32 scale of each T (``scale_table`` of lut.cpp)."""
    return torch.tensor(scale_values(config, torch.float32), dtype=torch.float32, device=device)


def lut_dot(tables: torch.Tensor, b: torch.Tensor, T: torch.Tensor, config) -> torch.Tensor:
    """<x^, y> for quantized vectors b (..., blocks, M, d), T (..., blocks): float32 (...).

    ``OneSidedLut::dot``: per block ``v = sum_m q^m L[idx_m]`` (v += w * L, w *= q), then
    ``acc += s_T * v`` over the blocks in ascending order (a loop: exact order, batched over ``...``).
    """
    idx = level_index(b, config.q)  # (..., blocks, M)
    scales = lut_scales(config, b.device)
    blocks = tables.shape[0]
    acc = torch.zeros(b.shape[:-3], dtype=torch.float32, device=b.device)
    q = float(config.q)
    for k in range(blocks):
        tab = tables[k]
        v = torch.zeros_like(acc)
        w = 1.0
        for m in range(config.M):
            v = v + w * tab[idx[..., k, m]]
            w *= q
        acc = acc + scales[T[..., k].long()] * v
    return acc


def lut_two_sided_table(config, device) -> torch.Tensor:
    """``<rep(i), rep(j)>`` (q^d, q^d) float32, summed k = 0..d-1 from 0 (``TwoSidedLut``)."""
    reps = representatives(config, device)
    acc = torch.zeros(reps.shape[0], reps.shape[0], dtype=torch.float32, device=device)
    for k in range(config.d):
        acc = acc + reps[:, k].unsqueeze(1) * reps[:, k].unsqueeze(0)
    return acc


def lut_two_sided_dot(table: torch.Tensor, bx: torch.Tensor, Tx: torch.Tensor, by: torch.Tensor,
                      Ty: torch.Tensor, config) -> torch.Tensor:
    """<x^, y^> for two quantized vectors (..., blocks, M, d) each: ``TwoSidedLut::dot`` order."""
    ix, iy = level_index(bx, config.q), level_index(by, config.q)
    scales = lut_scales(config, bx.device)
    entries = table.shape[0]
    flat = table.reshape(-1)
    q = float(config.q)
    acc = torch.zeros(bx.shape[:-3], dtype=torch.float32, device=bx.device)
    for k in range(bx.shape[-3]):
        v = torch.zeros_like(acc)
        wx = 1.0
        for m in range(config.M):
            wy = 1.0
            for n in range(config.M):
                v = v + (wx * wy) * flat[ix[..., k, m] * entries + iy[..., k, n]]
                wy *= q
            wx *= q
        sx, sy = scales[Tx[..., k].long()], scales[Ty[..., k].long()]
        acc = acc + (sx * sy) * v
    return acc


def lut_matvec(index: torch.Tensor, T: torch.Tensor, y: torch.Tensor, config) -> torch.Tensor:
    """``A^ y`` for a matrix stored as level indices ``index`` (rows, blocks, M) and T (rows, blocks).

    ``matvec_panels_scalar``: per row, blocks in ascending order; per block Horner over the
    levels from the top (``v = v * q + L[idx_m]``), then ``sum += s_T * v``. y: (cols,) float32.
    """
    rows, blocks = T.shape
    tables = lut_tables(y.reshape(blocks, config.d), config)
    scales = lut_scales(config, y.device)
    q = float(config.q)
    acc = torch.zeros(rows, dtype=torch.float32, device=y.device)
    for k in range(blocks):
        tab = tables[k]
        v = tab[index[:, k, config.M - 1]]
        for m in range(config.M - 2, -1, -1):
            v = v * q + tab[index[:, k, m]]
        acc = acc + scales[T[:, k].long()] * v
    return acc


# --- packing (packing.cpp) -------------------------------------------------------------------

def layout(config) -> Tuple[int, int, int]:
    """(t_bits, level_bits, record_bits) of the packed stream."""
    level_bits = (config.q ** config.d - 1).bit_length()
    t_bits = config.max_t().bit_length()
    return t_bits, level_bits, t_bits + config.M * level_bits


def packed_bytes(config, n: int) -> int:
    return (n * layout(config)[2] + 7) // 8


def _bits(values: torch.Tensor, width: int) -> torch.Tensor:
    shifts = torch.arange(width, dtype=torch.int64, device=values.device)
    return torch.bitwise_and(torch.bitwise_right_shift(values.unsqueeze(-1), shifts), 1).to(torch.uint8)


def pack(b: torch.Tensor, T: torch.Tensor, config) -> torch.Tensor:
    """Records ``[T][level 0]...[level M-1]`` back to back, LSB first (b (n, M, d), T (n,))."""
    t_bits, level_bits, record_bits = layout(config)
    n = T.shape[0]
    levels = _bits(level_index(b, config.q), level_bits).reshape(n, config.M * level_bits)  # n = 0 too
    parts = [_bits(T.to(torch.int64), t_bits), levels]
    stream = torch.cat(parts, dim=-1).reshape(-1)
    total = packed_bytes(config, n)
    padded = torch.zeros(total * 8, dtype=torch.uint8, device=b.device)
    padded[: stream.numel()] = stream
    weights = torch.tensor([1 << j for j in range(8)], dtype=torch.int64, device=b.device)
    return (padded.reshape(total, 8).to(torch.int64) * weights).sum(-1).to(torch.uint8)


def unpack_fields(packed: torch.Tensor, n: int, config) -> Tuple[torch.Tensor, torch.Tensor]:
    """(T (n,) int64, level indices (n, M) int64) of a packed stream of the exact size."""
    t_bits, level_bits, record_bits = layout(config)
    bits = _bits(packed.to(torch.int64), 8).reshape(-1)[: n * record_bits].reshape(n, record_bits).to(torch.int64)

    def field(lo: int, width: int) -> torch.Tensor:
        if width == 0:
            return torch.zeros(n, dtype=torch.int64, device=packed.device)
        w = torch.tensor([1 << j for j in range(width)], dtype=torch.int64, device=packed.device)
        return (bits[:, lo:lo + width] * w).sum(-1)

    t = field(0, t_bits)
    idx = torch.stack([field(t_bits + m * level_bits, level_bits) for m in range(config.M)], -1) if n else \
        torch.zeros(0, config.M, dtype=torch.int64, device=packed.device)
    return t, idx


def unpack(packed: torch.Tensor, n: int, config) -> Tuple[torch.Tensor, torch.Tensor]:
    t, idx = unpack_fields(packed, n, config)
    return level_codes(idx, config.d, config.q), t.to(torch.uint8)

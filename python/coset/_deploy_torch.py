"""The pure-PyTorch twin of the deployed-layer decode (src/coset/deploy.cpp), for any device.

Codes are unpacked with shifts and masks, each level is decoded as ``e = C G b - (C q) Q(G b / q)``
with the tie rule of docs/coset.md on exact integers (held in float32: every value is an integer
far below 2**24), and the levels are summed as ``w = sum_m q^m e_m``: the C-scaled integer weights,
identical to the C++ decode.
"""

from __future__ import annotations

import torch

from .config import QuantizationConfig


def code_bits(q: int) -> int:
    """Bits of one stored code: ceil(log2 q) (deploy_code_bits of include/lowbit/coset/deploy.h)."""
    return (int(q) - 1).bit_length()


def unpack_codes(codes: torch.Tensor, blocks: int, config: QuantizationConfig) -> torch.Tensor:
    """(rows, row_bytes) uint8 -> (rows, blocks, M, d) int64 codes: code i of a row at bit i * b, b =
    ceil(log2 q), LSB first (a 3-bit code may straddle two bytes). Values are not range-checked here."""
    bits = code_bits(config.q)
    n = blocks * config.M * config.d
    bit = torch.arange(n, device=codes.device, dtype=torch.int64) * bits
    padded = torch.nn.functional.pad(codes.to(torch.int32), (0, 1))  # a zero byte past the row end
    window = padded[:, bit // 8] | (padded[:, bit // 8 + 1] << 8)
    vals = (window >> (bit % 8).to(torch.int32)) & ((1 << bits) - 1)
    return vals.reshape(codes.shape[0], blocks, config.M, config.d).long()


def unpack_nibbles(nibbles: torch.Tensor, blocks: int) -> torch.Tensor:
    """(rows, ceil(blocks/2)) uint8 -> (rows, blocks) T values (low nibble first)."""
    n = nibbles.to(torch.int32)
    return torch.stack([n & 15, n >> 4], dim=-1).reshape(nibbles.shape[0], -1)[:, :blocks]


def unpack_t(t: torch.Tensor, bits: int, escapes: torch.Tensor, blocks: int) -> torch.Tensor:
    """The in-memory T of docs/coset.md -> (rows, blocks) int64 T values.

    ``t``: (rows, ceil(blocks * bits / 8)) uint8, ``bits`` per block LSB first (4: nibbles); for
    bits 1 and 2 the code ``2**bits - 1`` is an escape whose T is the next entry of ``escapes``
    (uint8, row-major block order, exactly one per escape code)."""
    shifts = torch.arange(0, 8, bits, device=t.device, dtype=torch.int32)
    vals = ((t.to(torch.int32)[..., None] >> shifts) & ((1 << bits) - 1)).reshape(t.shape[0], -1)[:, :blocks].long()
    if bits < 4:
        esc = vals == (1 << bits) - 1
        vals = vals.masked_scatter(esc, escapes.to(device=t.device, dtype=torch.int64))
    return vals


def _generator(lattice: str) -> list:
    """G of docs/coset.md (columns are the basis), written out so that this path needs no native call."""
    d = {"Z2": 2, "D4": 4, "E8": 8}[lattice]
    g = [[0.0] * d for _ in range(d)]
    if lattice == "Z2":
        g[0][0] = g[1][1] = 1.0
        return g
    g[0][0] = 2.0  # column 0: 2 e_0; column k: e_k - e_(k-1)
    last = d if lattice == "D4" else 7
    for k in range(1, last):
        g[k][k], g[k - 1][k] = 1.0, -1.0
    if lattice == "E8":
        for r in range(8):
            g[r][7] = 0.5  # the column (1/2, ..., 1/2)
    return g


def _scaled_generator(config: QuantizationConfig, device) -> torch.Tensor:
    c = 2.0 if config.lattice_type == "E8" else 1.0
    return torch.tensor(_generator(config.lattice_type), dtype=torch.float32, device=device) * c


def scale_table(config: QuantizationConfig, device) -> torch.Tensor:
    """scale(T) = beta * 2^(alpha T) for T = 0..15 (0 beyond max_t), rounded once to float32."""
    base = 1.0 if config.disable_scaling else config.beta
    vals = [base * 2.0 ** (config.alpha * t) if t <= config.max_t() else 0.0 for t in range(16)]
    return torch.tensor(vals, dtype=torch.float64, device=device).to(torch.float32)


def _round(v: torch.Tensor, div: float):
    # Ties up. Exact for any div: v is an integer (|v| < 2^21), so the true quotient is either an
    # integer (then float division returns it exactly) or at least 1 / (2 div) away from one.
    r = torch.floor((v + div / 2) / div)
    return r, v - div * r


def _dn_fix(r: torch.Tensor, e: torch.Tensor, div: float) -> torch.Tensor:
    d = e.shape[-1]
    odd = torch.remainder(r.sum(dim=-1), 2) == 1
    sign = torch.where(e >= 0, torch.ones_like(e), -torch.ones_like(e))
    weights = torch.tensor([2.0 ** j for j in range(d)], device=e.device)
    key = e.abs() * 1024.0 + (sign * weights + 512.0)  # lexicographic (|e|, s_j 2^j), d <= 8
    j = key.argmax(dim=-1, keepdim=True)
    s = sign.gather(-1, j)
    fix = torch.zeros_like(e).scatter(-1, j, s * div) * odd[..., None]
    return e - fix


def lattice_residual(v: torch.Tensor, lattice: str, div: float) -> torch.Tensor:
    """e = v - div * Q(v / div) in C-scaled integer coordinates (lattice_step of lattice_step.h)."""
    if lattice == "Z2":
        return _round(v, div)[1]
    if lattice == "D4":
        return _dn_fix(*_round(v, div), div)
    e0 = _dn_fix(*_round(v, div), div)
    e1 = _dn_fix(*_round(v - div / 2, div), div)
    w = torch.tensor([2.0 ** j for j in range(8)], device=v.device)
    d0, d1 = (e0 * e0).sum(-1), (e1 * e1).sum(-1)
    n0, n1 = (e0 * w).sum(-1), (e1 * w).sum(-1)
    keep0 = (d0 < d1) | ((d0 == d1) & (n0 <= n1))
    return torch.where(keep0[..., None], e0, e1)


def decode_scaled_ints(codes: torch.Tensor, config: QuantizationConfig) -> torch.Tensor:
    """(..., M, d) codes -> (..., d) float32 C-scaled integer weights sum_m q^m e_m."""
    g = _scaled_generator(config, codes.device)
    c = 2.0 if config.lattice_type == "E8" else 1.0
    out = None
    for m in range(config.M):
        v = (codes[..., m, None, :].to(torch.float32) * g).sum(-1)  # C G b, exact (no TF32 matmul)
        e = lattice_residual(v, config.lattice_type, c * config.q) * float(config.q) ** m
        out = e if out is None else out + e
    return out

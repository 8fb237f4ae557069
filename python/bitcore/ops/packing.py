"""Pure-PyTorch twins of the packed layouts (spec: docs/bitlab.md, include/lowbit/bitlab/packing.h).

I2_S256 (compute, 2 bits): code = trit + 1; row padded to Kp = ceil(K/256)*256 with code 1; byte
``64*b + j`` of a row, bits ``2s..2s+1``, holds weight ``256*b + 64*s + j``.
TQ1_B3 (storage, 1.6 bits): row-major trits 5 per byte, ``byte = sum code_i * 3**i``, last byte
completed with code 1.

Every function runs on its input's device and returns tensors there (no host copy).
"""

from __future__ import annotations

import torch

BLOCK_WEIGHTS = 256
TRITS_PER_STORAGE_BYTE = 5
_POW3 = (1, 3, 9, 27, 81)


def padded_cols(cols: int) -> int:
    return (cols + BLOCK_WEIGHTS - 1) // BLOCK_WEIGHTS * BLOCK_WEIGHTS


def packed_row_bytes(cols: int) -> int:
    return padded_cols(cols) // 4


def storage_bytes(rows: int, cols: int) -> int:
    return (rows * cols + TRITS_PER_STORAGE_BYTE - 1) // TRITS_PER_STORAGE_BYTE


def _pow3(device) -> torch.Tensor:
    """int32 ``[1, 3, 9, 27, 81]`` made on ``device`` (no host-to-device copy)."""
    return torch.full((5,), 3, dtype=torch.int32, device=device).pow(torch.arange(5, dtype=torch.int32, device=device))


def _check_trits(trits: torch.Tensor, what: str) -> None:
    if trits.dtype != torch.int8:
        raise ValueError(f"{what}: trits must be int8, got {trits.dtype}")
    if trits.numel() and (trits.min() < -1 or trits.max() > 1):
        raise ValueError(f"{what}: values must be -1, 0 or 1")


def pack_2bit(trits: torch.Tensor) -> torch.Tensor:
    """int8 trits ``[N, K]`` -> uint8 ``[N, Kp / 4]`` in the I2_S256 layout (ValueError on other values)."""
    _check_trits(trits, "pack_2bit")
    if trits.dim() != 2:
        raise ValueError(f"pack_2bit: trits must be 2-D, got shape {tuple(trits.shape)}")
    n, k = trits.shape
    kp = padded_cols(k)
    codes = torch.ones((n, kp), dtype=torch.int32, device=trits.device)
    codes[:, :k] = trits.to(torch.int32) + 1
    codes = codes.reshape(n, kp // 256, 4, 64)  # [row, block b, shift s, byte j]
    packed = codes[:, :, 0] | (codes[:, :, 1] << 2) | (codes[:, :, 2] << 4) | (codes[:, :, 3] << 6)
    return packed.reshape(n, kp // 4).to(torch.uint8)


def unpack_2bit(packed: torch.Tensor, cols: int) -> torch.Tensor:
    """uint8 ``[N, Kp / 4]`` (I2_S256) -> int8 trits ``[N, cols]``."""
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise ValueError(f"unpack_2bit: packed must be a 2-D uint8 tensor, got {packed.dtype} {tuple(packed.shape)}")
    n, rb = packed.shape
    if rb != packed_row_bytes(cols):
        raise ValueError(f"unpack_2bit: {cols} columns need {packed_row_bytes(cols)} bytes per row, got {rb}")
    v = packed.reshape(n, rb // 64, 1, 64)  # uint8 all the way: 1 byte per code temporary
    shifts = torch.arange(0, 8, 2, dtype=torch.uint8, device=packed.device).reshape(1, 1, 4, 1)
    codes = (v >> shifts) & 3
    if bool((codes == 3).any()):
        raise ValueError("unpack_2bit: invalid code 0b11 in packed weights")
    return codes.reshape(n, rb * 4)[:, :cols].to(torch.int8) - 1


def pack_base3(trits: torch.Tensor) -> torch.Tensor:
    """int8 trits (any shape, row-major) -> uint8 ``[ceil(numel / 5)]`` in the TQ1_B3 layout."""
    _check_trits(trits, "pack_base3")
    flat = trits.reshape(-1).to(torch.int32) + 1
    count = flat.numel()
    nbytes = (count + 4) // 5
    codes = torch.ones(nbytes * 5, dtype=torch.int32, device=trits.device)
    codes[:count] = flat
    codes = codes.reshape(nbytes, 5)
    return (codes * _pow3(trits.device)).sum(dim=1).to(torch.uint8)


def unpack_base3(data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """uint8 TQ1_B3 bytes -> int8 trits ``[rows, cols]``."""
    count = rows * cols
    if data.dtype != torch.uint8:
        raise ValueError(f"unpack_base3: data must be uint8, got {data.dtype}")
    if data.dim() != 1 or data.numel() != (count + 4) // 5:
        raise ValueError(
            f"unpack_base3: {rows} x {cols} trits need {(count + 4) // 5} bytes, got shape {tuple(data.shape)}"
        )
    v = data.to(torch.int32)
    if v.numel() and int(v.max()) > 242:
        raise ValueError("unpack_base3: byte value above 242 is not a 5-trit group")
    codes = (v.reshape(-1, 1) // _pow3(data.device)) % 3
    flat = codes.reshape(-1)
    if bool((flat[count:] != 1).any()):
        raise ValueError("unpack_base3: padding trits of the last byte must be 0")
    return (flat[:count] - 1).to(torch.int8).reshape(rows, cols)

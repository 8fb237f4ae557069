"""Pure-PyTorch Kuat decode: the device-generic twin of the C++ gather (src/kuat/gather*.cpp).

Every function here takes and returns torch tensors on one device and touches neither numpy nor
``lowbit._native``, so it runs on any torch device (CPU, CUDA, MPS, ...). On CPU tensors its output
is bit-identical to the C++ loader's:

* uint8: every output byte is a copy of a codebook byte (or 0 for padding), so equality is exact.
* float32: the value table is built exactly as ``GatherTable`` builds it, per channel c and byte v
  ``float32((v / 255.0 - double(mean[c])) / double(std[c]))`` evaluated in float64 (a division, a
  subtraction and a division: nothing an FMA could contract), then rounded once to float32. The
  decode only copies table entries, so the outputs are the C++ outputs bit for bit. The table is
  computed on the CPU (MPS has no float64) and moved to the device.

Ops (names for :mod:`lowbit._cuda_ops`; a CUDA kernel registered under a name takes exactly the
arguments of the function of that name and returns the same):

``kuat.unpack_indices``  :func:`unpack_indices`
``kuat.decode_indices``  :func:`decode_indices`
``kuat.decode_packed``   :func:`decode_packed`
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

OP_UNPACK = "kuat.unpack_indices"
OP_DECODE_INDICES = "kuat.decode_indices"
OP_DECODE_PACKED = "kuat.decode_packed"

LAYOUTS = ("NHWC", "NCHW")


def index_bits_for(codebook_size: int) -> int:
    """ceil(log2 K), at least 1 (codes.h); ValueError unless 2 <= K <= 65536."""
    if not 2 <= int(codebook_size) <= 65536:
        raise ValueError(f"codebook size must be between 2 and 65536, got {codebook_size}")
    return max(1, (int(codebook_size) - 1).bit_length())


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of one packed block of ``count`` indices of ``bits`` bits."""
    return (count * bits + 7) // 8


def unpack_indices(packed: torch.Tensor, count: int, bits: int) -> torch.Tensor:
    """Unpacks LSB-first bit-packed indices (docs/FORMAT.md, codes.h).

    ``packed``: (B, S) uint8, row b holds one sample's block (S >= ceil(count * bits / 8); extra
    bytes are ignored). Returns (B, count) int32 on the same device. Index j of a row occupies bits
    [j*bits, (j+1)*bits), bit k of byte n being bit 8n+k; with bits <= 16 it lies inside the 24-bit
    little-endian window starting at byte (j*bits)/8, so one window per byte offset (three shifted
    byte planes or'ed together) and one gather give every index.
    Raises ValueError for a wrong dtype, rank or a row too short for ``count`` indices.
    """
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise ValueError(f"packed indices must be a 2-D uint8 tensor (B, bytes), got {packed.dtype} "
                         f"{tuple(packed.shape)}")
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be between 1 and 16, got {bits}")
    need = packed_bytes(count, bits)
    if packed.shape[1] < need:
        raise ValueError(f"packed indices: rows hold {packed.shape[1]} bytes, {count} indices of {bits} bits "
                         f"need {need}")
    rows = torch.nn.functional.pad(packed[:, :need], (0, 2)).to(torch.int32)
    window = rows[:, :-2] | (rows[:, 1:-1] << 8) | (rows[:, 2:] << 16)  # (B, need): 24 bits from each byte
    bit = torch.arange(count, device=packed.device, dtype=torch.int64) * bits
    value = torch.index_select(window, 1, bit >> 3)
    return value.bitwise_right_shift_((bit & 7).to(torch.int32)).bitwise_and_((1 << bits) - 1)


def channel_values(values: Optional[Sequence[float]], channels: int, fallback: float, name: str) -> list:
    """mean/std as one float32 value per channel (empty -> fallback, one value -> every channel)."""
    if values is None:
        return [fallback] * channels
    if isinstance(values, torch.Tensor):
        vals = [float(v) for v in values.detach().to("cpu", torch.float64).reshape(-1).tolist()]
    else:  # a number of any kind (numpy float32 too), a list, tuple or numpy array (0-d included)
        plain = values.tolist() if hasattr(values, "tolist") else values  # numpy without importing it
        try:
            if isinstance(plain, (str, bytes)):
                raise TypeError("a string")
            vals = [float(plain)] if isinstance(plain, (int, float)) else [float(v) for v in plain]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be a number or a sequence of numbers, got {values!r}") from e
    if len(vals) == 0:
        return [fallback] * channels
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ValueError(f"{name} must have 1 or {channels} values (one per channel), got {len(vals)}")
    # The C++ core keeps mean/std as float32: round them the same way.
    rounded = torch.tensor(vals, dtype=torch.float32)
    if not bool(torch.isfinite(rounded).all()):
        raise ValueError(f"{name} must be finite, got {values!r}")
    return [float(v) for v in rounded.tolist()]


def make_table(codebook: torch.Tensor, dtype: str = "uint8", mean: Optional[Sequence[float]] = None,
               std: Optional[Sequence[float]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The codebook prepared for one output type: ``(table, pad)``.

    ``codebook``: (K, P, P, C) uint8 on any device. ``dtype`` ``"uint8"`` (mean/std not allowed) or
    ``"float32"`` (``(x / 255 - mean[c]) / std[c]``, evaluated as the C++ GatherTable does; mean 0 and
    std 1 when omitted). Returns ``table`` (K, P, P, C) of the output dtype and ``pad`` (C,), the value
    of a padding (zero) pixel, both on the codebook's device. ValueError for bad arguments.
    """
    if codebook.dtype != torch.uint8 or codebook.dim() != 4 or codebook.shape[1] != codebook.shape[2]:
        raise ValueError(f"codebook must be a (K, P, P, C) uint8 tensor, got {codebook.dtype} {tuple(codebook.shape)}")
    channels = int(codebook.shape[3])
    if dtype == "uint8":
        if mean is not None or std is not None:
            raise ValueError("mean/std normalisation needs dtype='float32'")
        return codebook, torch.zeros(channels, dtype=torch.uint8, device=codebook.device)
    if dtype != "float32":
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}")
    m = channel_values(mean, channels, 0.0, "mean")
    s = channel_values(std, channels, 1.0, "std")
    if any(v == 0.0 for v in s):
        raise ValueError(f"std must be non-zero, got {std!r}")
    v = torch.arange(256, dtype=torch.float64)
    lut = ((v[None, :] / 255.0 - torch.tensor(m, dtype=torch.float64)[:, None])
           / torch.tensor(s, dtype=torch.float64)[:, None]).to(torch.float32)  # (C, 256), on the CPU
    lut = lut.to(codebook.device)
    cb = codebook.to(torch.int64)
    chan = torch.arange(channels, device=codebook.device)
    table = lut[chan.view(1, 1, 1, -1).expand_as(cb), cb]
    return table.contiguous(), lut[:, 0].contiguous()


def _check_layout(layout: str) -> str:
    if not isinstance(layout, str) or layout.upper() not in LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    return layout.upper()


def decode_indices(indices: torch.Tensor, table: torch.Tensor, pad: torch.Tensor, height: int, width: int,
                   layout: str = "NHWC", shift_y: Optional[torch.Tensor] = None,
                   shift_x: Optional[torch.Tensor] = None, flip: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Images from unpacked indices: codebook gather, crop to HxW, optional shift/flip, layout.

    ``indices``: (B, grid_h * grid_w) int32/int64 tensor, every value in [0, K) (callers check: see
    :func:`first_bad_index`). ``table``/``pad``: from :func:`make_table`. ``height``/``width``: the
    image size (the grid is ceil(H/P) x ceil(W/P)). ``shift_y``/``shift_x`` (B,) int and ``flip`` (B,)
    bool (all three or none): output pixel (y, x) is source (y + shift_y, x' + shift_x) with
    x' = W-1-x when flipped, and ``pad`` where that falls outside the image (gather.h). Returns
    (B, H, W, C) for ``"NHWC"`` or (B, C, H, W) for ``"NCHW"``, contiguous, dtype of ``table``.
    """
    layout = _check_layout(layout)
    K, P, _, C = (int(v) for v in table.shape)
    B = int(indices.shape[0])
    gh, gw = -(-height // P), -(-width // P)
    if indices.dim() != 2 or indices.shape[1] != gh * gw:
        raise ValueError(f"indices must be (B, {gh * gw}) for {height}x{width} images of {P}x{P} patches, "
                         f"got {tuple(indices.shape)}")
    idx = indices if indices.dtype in (torch.int32, torch.int64) else indices.to(torch.int64)
    flat = table.reshape(K, P * P * C)
    if shift_y is None and shift_x is None and flip is None:
        if layout == "NHWC":
            patches = flat.index_select(0, idx.reshape(-1)).view(B, gh, gw, P, P, C)
            img = patches.permute(0, 1, 3, 2, 4, 5).reshape(B, gh * P, gw * P, C)
            return img[:, :height, :width].contiguous()
        planar = table.permute(0, 3, 1, 2).reshape(K, C * P * P)
        patches = planar.index_select(0, idx.reshape(-1)).view(B, gh, gw, C, P, P)
        img = patches.permute(0, 3, 1, 4, 2, 5).reshape(B, C, gh * P, gw * P)
        return img[:, :, :height, :width].contiguous()
    if shift_y is None or shift_x is None or flip is None:
        raise ValueError("shift_y, shift_x and flip go together (all three or none)")
    img = decode_indices(indices, table, pad, height, width, layout)
    return _shift_and_flip(img, pad, shift_y, shift_x, flip, layout)


def _shift_and_flip(img: torch.Tensor, pad: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor,
                    flip: torch.Tensor, layout: str) -> torch.Tensor:
    """Output (y, x) = source (y + shift_y, x' + shift_x), x' = W-1-x if flipped, ``pad`` outside.

    Separable: one pad row and one pad column are appended, every out-of-range source row/column
    points at them, then one gather picks rows and one picks columns (pure copies: exact).
    """
    B, dev = img.shape[0], img.device
    nhwc = layout == "NHWC"
    H, W = (img.shape[1], img.shape[2]) if nhwc else (img.shape[2], img.shape[3])
    C = pad.shape[0]
    pad = pad.to(dev)
    if nhwc:
        img = torch.cat([img, pad.view(1, 1, 1, C).expand(B, 1, W, C)], dim=1)
        img = torch.cat([img, pad.view(1, 1, 1, C).expand(B, H + 1, 1, C)], dim=2)
    else:
        img = torch.cat([img, pad.view(1, C, 1, 1).expand(B, C, 1, W)], dim=2)
        img = torch.cat([img, pad.view(1, C, 1, 1).expand(B, C, H + 1, 1)], dim=3)
    ys = torch.arange(H, device=dev)[None, :] + shift_y.to(dev, torch.int64)[:, None]  # (B, H)
    ys = torch.where((ys >= 0) & (ys < H), ys, H)
    xs = torch.arange(W, device=dev)[None, :].expand(B, W)
    xs = torch.where(flip.to(dev, torch.bool)[:, None], W - 1 - xs, xs) + shift_x.to(dev, torch.int64)[:, None]
    xs = torch.where((xs >= 0) & (xs < W), xs, W)
    if nhwc:
        rows = torch.gather(img, 1, ys.view(B, H, 1, 1).expand(B, H, W + 1, C))
        return torch.gather(rows, 2, xs.view(B, 1, W, 1).expand(B, H, W, C))
    rows = torch.gather(img, 2, ys.view(B, 1, H, 1).expand(B, C, H, W + 1))
    return torch.gather(rows, 3, xs.view(B, 1, 1, W).expand(B, C, H, W))


def decode_packed(packed: torch.Tensor, table: torch.Tensor, pad: torch.Tensor, height: int, width: int,
                  bits: int, layout: str = "NHWC", shift_y: Optional[torch.Tensor] = None,
                  shift_x: Optional[torch.Tensor] = None, flip: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`unpack_indices` then :func:`decode_indices`: packed (B, S) uint8 blocks to images.

    Indices must be < K (``table.shape[0]``): check with :func:`first_bad_index` when K < 2^bits.
    """
    P = int(table.shape[1])
    count = (-(-height // P)) * (-(-width // P))
    return decode_indices(unpack_indices(packed, count, bits), table, pad, height, width, layout,
                          shift_y, shift_x, flip)


def first_bad_index(indices: torch.Tensor, codebook_size: int) -> Optional[Tuple[int, int, int]]:
    """``(row, patch, value)`` of the first index >= codebook_size, or None (one device sync)."""
    bad = indices >= codebook_size
    if not bool(bad.any()):
        return None
    flat = int(torch.nonzero(bad.reshape(-1))[0, 0])
    row, patch = divmod(flat, int(indices.shape[1]))
    return row, patch, int(indices[row, patch])


def describe_bad_index(patch: int, value: int, grid_w: int, codebook_size: int) -> str:
    """The C++ gather's message for an out-of-range index (gather.cpp), word for word.

    A negative value (only possible in indices given from Python; the C++ unpacks unsigned ones)
    is called negative rather than compared with the codebook size.
    """
    where = f"patch ({patch // grid_w}, {patch % grid_w})"
    if value < 0:
        return f"{where} has index {value}, which is negative (valid indices are 0 to {codebook_size - 1})"
    return f"{where} has index {value} >= codebook size {codebook_size}"

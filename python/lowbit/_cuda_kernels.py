"""The CUDA kernels of ``lowbit._native.cuda`` as torch functions, registered in :mod:`lowbit._cuda_ops`.

Imported lazily (by :func:`lowbit._cuda_ops.get`) the first time an op runs on a CUDA tensor in a
build with ``LOWBIT_CUDA=ON``. Every function takes and returns CUDA tensors on one device,
launches on that device's *current* torch stream and returns without waiting for the GPU, except
where an input check needs a value from the device (said per function; each offers an
asynchronous form). Inputs are checked here (device, dtype, shape; non-contiguous tensors are
made contiguous, which copies) and again in C++; errors are ``ValueError`` and CUDA failures
``RuntimeError`` naming the failing call.

Ops registered under the names (and signatures) of the products' PyTorch twins:

* ``bitlab.linear_int8``: :func:`linear_int8` (``bitcore.ops.torch_ops.linear_int8``)
* ``kuat.decode_packed``: :func:`decode_packed` (``kuat._torch_decode.decode_packed``; uint8
  tables on the fused kernel, other tables on the twin)
* ``coset.encode`` / ``coset.decode``: :func:`encode` / :func:`decode` (``coset._torch_ops``;
  a caller-given dither goes to the twin)

The lower-level launchers (:func:`kuat_decode_batch`, :func:`bitlinear_int8`,
:func:`coset_encode`, :func:`coset_decode`) are public here for benchmarks and tests.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from typing import Any, Optional, Sequence, Tuple

import torch

_native = importlib.import_module("lowbit._native")  # the module itself, even where a test hides the attribute
_cuda = _native.cuda  # AttributeError in a build without CUDA: _cuda_ops.get never imports us then

__all__ = [
    "kuat_decode_batch",
    "decode_packed",
    "bitlinear_int8",
    "linear_int8",
    "coset_encode",
    "coset_decode",
    "coset_check",
    "coset_status",
    "encode",
    "decode",
    "OPS",
]


# ---- plumbing ------------------------------------------------------------------------------------
def _on_cuda(t: Any, name: str, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch tensor, got {type(t).__name__}")
    if t.device.type != "cuda":
        raise ValueError(f"{name}: expected a CUDA tensor, got device {t.device}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    return t.detach().contiguous()


def _same_device(device: torch.device, **tensors: Optional[torch.Tensor]) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != device:
            raise ValueError(f"{name} is on {t.device} but the input is on {device}; move one of them")


def _address(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None or t.numel() == 0 else t.data_ptr()


@contextlib.contextmanager
def _on_device(device: torch.device):
    """Make ``device`` current (the kernels launch on the current device) only when it is not."""
    if device.index is None or device.index == torch.cuda.current_device():
        yield
    else:
        with torch.cuda.device(device):
            yield


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


# ---- Kuat ----------------------------------------------------------------------------------------
def kuat_decode_batch(
    codebook: torch.Tensor,
    packed: torch.Tensor,
    *,
    height: int,
    width: int,
    channels: int,
    patch: int,
    index_bits: int,
    layout: str = "NHWC",
    dtype: torch.dtype = torch.uint8,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    crop_y: Optional[torch.Tensor] = None,
    crop_x: Optional[torch.Tensor] = None,
    flip: Optional[torch.Tensor] = None,
    out_size: Optional[Tuple[int, int]] = None,
    out: Optional[torch.Tensor] = None,
    error_flag: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Decode a batch of packed Kuat samples on the GPU (fused unpack, gather, crop, flip, layout, normalise).

    ``codebook``: uint8 ``(K, patch * patch * channels)``; ``packed``: uint8 ``(B, stride)``, one
    sample's packed indices per row (docs/FORMAT.md). Returns ``(B, H, W, C)`` (``layout="NHWC"``)
    or ``(B, C, H, W)`` (``"NCHW"``) as uint8, or float32 ``(v / 255 - mean[c]) / std[c]``
    (``dtype=torch.float32``; mean 0 and std 1 by default). ``out_size=(h, w)`` with per-sample
    int32 ``crop_y`` / ``crop_x`` offsets and uint8 ``flip`` flags takes a window of each sample
    (pixels outside are 0). ``error_flag``: an int32 CUDA tensor of one element that the kernel sets
    to 1 on an index >= K (a corrupted archive); without it the call waits for the GPU and raises
    ``ValueError`` itself.
    """
    codebook = _on_cuda(codebook, "codebook", torch.uint8)
    packed = _on_cuda(packed, "packed", torch.uint8)
    device = codebook.device
    if codebook.dim() != 2 or codebook.shape[1] != patch * patch * channels:
        raise ValueError(f"codebook: expected shape (K, {patch * patch * channels}), got {tuple(codebook.shape)}")
    if packed.dim() != 2:
        raise ValueError(f"packed: expected shape (batch, bytes per sample), got {tuple(packed.shape)}")
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout: expected 'NHWC' or 'NCHW', got {layout!r}")
    if dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"dtype: expected torch.uint8 or torch.float32, got {dtype}")
    grid = ((height + patch - 1) // patch) * ((width + patch - 1) // patch)
    need = (grid * index_bits + 7) // 8
    if packed.shape[1] < need:
        raise ValueError(f"packed: {grid} indices of {index_bits} bits need {need} bytes per sample, "
                         f"got {packed.shape[1]}")
    batch = packed.shape[0]
    oh, ow = (height, width) if out_size is None else (int(out_size[0]), int(out_size[1]))
    shape = (batch, oh, ow, channels) if layout == "NHWC" else (batch, channels, oh, ow)
    crop_y = None if crop_y is None else _on_cuda(crop_y, "crop_y", torch.int32)
    crop_x = None if crop_x is None else _on_cuda(crop_x, "crop_x", torch.int32)
    flip = None if flip is None else _on_cuda(flip, "flip", torch.uint8)
    for name, t in (("crop_y", crop_y), ("crop_x", crop_x), ("flip", flip)):
        if t is not None and t.shape != (batch,):
            raise ValueError(f"{name}: expected shape ({batch},), got {tuple(t.shape)}")
    if error_flag is not None:
        error_flag = _on_cuda(error_flag, "error_flag", torch.int32)
        if error_flag.numel() != 1:
            raise ValueError("error_flag: expected one int32 element")
    if out is None:
        out = torch.empty(shape, dtype=dtype, device=device)
    else:
        if not (isinstance(out, torch.Tensor) and out.is_contiguous() and out.dtype == dtype and tuple(out.shape) == shape):
            raise ValueError(f"out: expected a contiguous {dtype} tensor of shape {shape}")
    _same_device(device, packed=packed, crop_y=crop_y, crop_x=crop_x, flip=flip, out=out, error_flag=error_flag)
    mean = [0.0] * channels if mean is None else [float(v) for v in mean]
    std = [1.0] * channels if std is None else [float(v) for v in std]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std: expected {channels} values each")
    if batch == 0:
        return out
    with _on_device(device):
        _cuda.kuat_decode_batch(
            codebook.data_ptr(), packed.data_ptr(), batch, height, width, channels, patch, codebook.shape[0],
            index_bits, packed.stride(0), oh, ow, layout == "NCHW", dtype == torch.float32, mean, std,
            _address(crop_y), _address(crop_x), _address(flip), out.data_ptr(), _stream(device),
            _address(error_flag))
    return out


# ---- BitLab --------------------------------------------------------------------------------------
_PER_ROW = {"per_tensor": False, "per_channel": True, "per_row": True, "per_token": True}


def bitlinear_int8(
    x2d: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    weight_scale: torch.Tensor,
    bias: Optional[torch.Tensor],
    activation_granularity: str,
) -> torch.Tensor:
    """W2A8 layer: ``[M, K]`` float32 and I2_S256 weights ``[N, Kp / 4]`` -> ``[M, N]`` float32.

    Bit-identical to the C++ kernel of the same name (docs/bitlab.md). Asynchronous; NaN or Inf in
    ``x2d`` is not detected here (the PyTorch reference raises for it).
    """
    x2d = _on_cuda(x2d, "x", torch.float32)
    packed = _on_cuda(packed, "packed", torch.uint8)
    weight_scale = _on_cuda(weight_scale, "weight_scale", torch.float32)
    bias = None if bias is None else _on_cuda(bias, "bias", torch.float32)
    device = x2d.device
    _same_device(device, packed=packed, weight_scale=weight_scale, bias=bias)
    if activation_granularity not in _PER_ROW:
        raise ValueError(f"activation_granularity: expected one of {sorted(_PER_ROW)}, got {activation_granularity!r}")
    if x2d.dim() != 2 or x2d.shape[1] != in_features:
        raise ValueError(f"x: expected shape (M, {in_features}), got {tuple(x2d.shape)}")
    rows_out = packed.shape[0]
    row_bytes = (in_features + 255) // 256 * 64
    if packed.dim() != 2 or packed.shape[1] != row_bytes:
        raise ValueError(f"packed: {in_features} columns need {row_bytes} bytes per row, got shape {tuple(packed.shape)}")
    if weight_scale.shape != (rows_out,) or (bias is not None and bias.shape != (rows_out,)):
        raise ValueError(f"weight_scale/bias: expected shape ({rows_out},)")
    m = x2d.shape[0]
    y = torch.empty((m, rows_out), dtype=torch.float32, device=device)
    if m == 0:
        return y
    workspace = torch.empty(_cuda.bitlinear_int8_workspace_bytes(m, rows_out, in_features), dtype=torch.uint8,
                            device=device)
    with _on_device(device):
        _cuda.bitlinear_int8(x2d.data_ptr(), m, packed.data_ptr(), rows_out, in_features, weight_scale.data_ptr(),
                             _address(bias), _PER_ROW[activation_granularity], y.data_ptr(), _stream(device),
                             workspace.data_ptr())
    return y


# ---- Coset ---------------------------------------------------------------------------------------
_FLOAT_NAMES = {torch.float32: "float32", torch.float64: "float64"}


def _native_config(config: Any) -> Any:
    """A coset.QuantizationConfig (or the native config itself) as lowbit._native.coset.NativeConfig."""
    return config.native() if hasattr(config, "native") else config


def coset_status(device: Any) -> torch.Tensor:
    """A fresh status for the asynchronous forms of :func:`coset_encode` / :func:`coset_decode`."""
    return torch.empty(4, dtype=torch.int64, device=device)


def coset_check(status: torch.Tensor, config: Any, warn_overload: bool = True) -> Tuple[int, int]:
    """Wait for ``status`` and raise ``ValueError`` (the CPU's message) if the kernel rejected an input.

    Returns ``(retried, overloaded)``; warns as the CPU encode does when vectors still overload.
    """
    words = status.tolist()
    native = _native_config(config)
    _cuda.coset_check_status(native, words)
    retried, overloaded = int(words[0]), int(words[1])
    if warn_overload and overloaded and not native.disable_overload_protection:
        warnings.warn(f"encode: {overloaded} vector(s) still overload after max_scaling_iterations="
                      f"{native.max_scaling_iterations}; they will not decode to Q(x) (raise beta, alpha "
                      "or max_scaling_iterations)", RuntimeWarning, stacklevel=3)
    return retried, overloaded


def coset_encode(x: torch.Tensor, config: Any, *, status: Optional[torch.Tensor] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """HNLQ encode on the GPU: ``x`` ``(..., d)`` -> ``(b, T)``, ``b`` uint8 ``(..., M, d)``, ``T`` uint8 ``(...)``.

    Bit-identical to the C++ encode for float32 and float64 (other float dtypes are computed in
    float32). Without ``status`` the call waits for the GPU to check the input (``ValueError`` on
    NaN or Inf) and warns on vectors that still overload, as the CPU does; with ``status``
    (:func:`coset_status`) it returns at once and :func:`coset_check` does that later.
    """
    if not isinstance(x, torch.Tensor) or x.device.type != "cuda":
        raise ValueError("x: expected a CUDA tensor")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"x: expected a real tensor, got dtype {x.dtype}")
    if x.dtype not in _FLOAT_NAMES:
        x = x.float()
    x = _on_cuda(x, "x")
    native = _native_config(config)
    d = _native.coset.lattice_dim(native.lattice)
    if x.dim() == 0 or x.shape[-1] != d:
        raise ValueError(f"x: last dimension must be d={d} for {native.lattice}, got shape {tuple(x.shape)}")
    lead = tuple(x.shape[:-1])
    n = x.numel() // d
    b = torch.empty(lead + (native.M, d), dtype=torch.uint8, device=x.device)
    t = torch.empty(lead, dtype=torch.uint8, device=x.device)
    own = status is None
    if own:
        status = coset_status(x.device)
    elif status.dtype != torch.int64 or status.numel() != 4 or status.device != x.device:
        raise ValueError("status: expected coset_status(device), 4 int64 on the input's device")
    with _on_device(x.device):
        _cuda.coset_encode(native, x.data_ptr(), _FLOAT_NAMES[x.dtype], n, _address(b), _address(t),
                           _stream(x.device), status.data_ptr())
    if own:
        coset_check(status, native)
    return b, t


def coset_decode(b: torch.Tensor, T: Optional[torch.Tensor], config: Any, dtype: Any = None, *,
                 status: Optional[torch.Tensor] = None) -> torch.Tensor:
    """HNLQ decode on the GPU: ``b`` ``(..., M, d)`` and ``T`` ``(...)`` (None: zeros) -> ``(..., d)``.

    float32 unless ``dtype=torch.float64``; bit-identical to the C++ decode. Without ``status``
    the call waits for the GPU to check the codes (``ValueError`` for a code >= q or a T beyond
    the config's); with ``status`` it returns at once (:func:`coset_check` later).
    """
    native = _native_config(config)
    d = _native.coset.lattice_dim(native.lattice)
    if not isinstance(b, torch.Tensor) or b.device.type != "cuda":
        raise ValueError("b: expected a CUDA tensor")
    if b.dtype == torch.bool or b.is_floating_point() or b.is_complex():
        raise ValueError(f"b: expected an integer tensor, got dtype {b.dtype}")
    if b.dim() < 2 or tuple(b.shape[-2:]) != (native.M, d):
        raise ValueError(f"b: trailing shape must be (M, d)=({native.M}, {d}), got shape {tuple(b.shape)}")
    lead = tuple(b.shape[:-2])
    if b.dtype != torch.uint8:  # values outside [0, 256) would wrap: reject them before narrowing
        if b.numel() and bool(((b < 0) | (b >= native.q)).any()):
            raise ValueError(f"b: values must lie in [0, {native.q})")
        b = b.to(torch.uint8)
    b = _on_cuda(b, "b")
    if T is None:
        T = torch.zeros(lead, dtype=torch.uint8, device=b.device)
    else:
        if not isinstance(T, torch.Tensor) or T.device != b.device:
            raise ValueError(f"T: expected a tensor on {b.device}")
        if tuple(T.shape) != lead:
            raise ValueError(f"T: shape must be {lead} (b's leading shape), got {tuple(T.shape)}")
        if T.dtype != torch.uint8:
            if T.numel() and bool(((T < 0) | (T > 255)).any()):
                raise ValueError("T: values must lie in [0, 255]")
            T = T.to(torch.uint8)
        T = _on_cuda(T, "T")
    want = torch.float64 if dtype in (torch.float64, "float64") else torch.float32
    out = torch.empty(lead + (d,), dtype=want, device=b.device)
    n = out.numel() // d
    own = status is None
    if own:
        status = coset_status(b.device)
    with _on_device(b.device):
        _cuda.coset_decode(native, _address(b), _address(T), n, _address(out), _FLOAT_NAMES[want],
                           _stream(b.device), status.data_ptr())
    if own:
        coset_check(status, native, warn_overload=False)
    return out


# ---- the products' op names ---------------------------------------------------------------------
_checked_pad: Tuple[Any, ...] = ()


def _zero_pad(pad: torch.Tensor) -> bool:
    """Whether ``pad`` is all zeros; read from the device once per tensor (and version), not per batch."""
    global _checked_pad
    key = (pad.data_ptr(), pad._version, pad.device, pad.numel())
    if key == _checked_pad:
        return True
    if bool(pad.any()):
        return False
    _checked_pad = key
    return True


def decode_packed(packed: torch.Tensor, table: torch.Tensor, pad: torch.Tensor, height: int, width: int,
                  bits: int, layout: str = "NHWC", shift_y: Optional[torch.Tensor] = None,
                  shift_x: Optional[torch.Tensor] = None, flip: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``kuat.decode_packed``: packed (B, S) uint8 blocks to (B, H, W, C) / (B, C, H, W) images.

    A uint8 table with a zero pad is the codebook itself: the fused kernel gathers it, bit for bit
    the twin's result. Other tables (float32, normalised) run the twin
    (``kuat._torch_decode.decode_packed``), whose values are the C++ loader's to the bit.
    Indices must be < K (the caller checks, as for the twin); the kernel never waits.
    """
    K, P, P2, C = (int(v) for v in table.shape)
    if (table.dtype != torch.uint8 or P != P2 or P not in (2, 4) or C not in (1, 3) or not _zero_pad(pad)
            or packed.dtype != torch.uint8 or packed.dim() != 2):
        from kuat import _torch_decode

        return _torch_decode.decode_packed(packed, table, pad, height, width, bits, layout, shift_y, shift_x, flip)
    if (shift_y is None) != (shift_x is None) or (shift_y is None) != (flip is None):
        raise ValueError("shift_y, shift_x and flip go together (all three or none)")
    flag = torch.zeros(1, dtype=torch.int32, device=packed.device)  # async: indices are the caller's check
    return kuat_decode_batch(
        table.reshape(K, P * P * C), packed, height=height, width=width, channels=C, patch=P, index_bits=bits,
        layout=layout, crop_y=None if shift_y is None else shift_y.to(torch.int32),
        crop_x=None if shift_x is None else shift_x.to(torch.int32),
        flip=None if flip is None else flip.to(torch.uint8), error_flag=flag)


def linear_int8(x2d: torch.Tensor, packed: torch.Tensor, in_features: int, weight_scale: torch.Tensor,
                bias: Optional[torch.Tensor], activation_granularity: str) -> torch.Tensor:
    """``bitlab.linear_int8``: :func:`bitlinear_int8` plus the twin's NaN/Inf check (one device read)."""
    if not isinstance(x2d, torch.Tensor) or x2d.device.type != "cuda":
        raise ValueError("x: expected a CUDA tensor")
    if x2d.numel() and not bool(torch.isfinite(x2d).all()):
        raise ValueError("bitlinear: input contains NaN or Inf")
    return bitlinear_int8(x2d, packed, in_features, weight_scale, bias, activation_granularity)


def encode(x: torch.Tensor, config: Any, dither_u: Optional[torch.Tensor] = None):
    """``coset.encode``: x (n, d) float32/float64, finite -> ``(b (n, M, d) uint8, T (n,) uint8,
    still_overloaded (n,) bool)``; the caller validates, nothing waits. The config's own seeded dither
    runs in the kernel; a caller-given ``dither_u`` runs the twin (``coset._torch_ops.encode``)."""
    if dither_u is not None:
        from coset import _torch_ops

        return _torch_ops.encode(x, config, dither_u)
    native = _native_config(config)
    x = _on_cuda(x if x.dtype in _FLOAT_NAMES else x.float(), "x")
    d = _native.coset.lattice_dim(native.lattice)
    n = x.shape[0]
    b = torch.empty((n, native.M, d), dtype=torch.uint8, device=x.device)
    t = torch.empty(n, dtype=torch.uint8, device=x.device)
    over = torch.zeros(n, dtype=torch.uint8, device=x.device)
    status = coset_status(x.device)
    with _on_device(x.device):
        _cuda.coset_encode(native, _address(x), _FLOAT_NAMES[x.dtype], n, _address(b), _address(t),
                           _stream(x.device), status.data_ptr(), _address(over))
    return b, t, over.bool()


def decode(b: torch.Tensor, T: torch.Tensor, config: Any, dtype: torch.dtype,
           dither_u: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``coset.decode``: b (n, M, d) codes in [0, q), T (n,) -> (n, d) of ``dtype``; the caller
    validates, nothing waits. A caller-given ``dither_u`` runs the twin (``coset._torch_ops.decode``)."""
    if dither_u is not None or dtype not in _FLOAT_NAMES:
        from coset import _torch_ops

        return _torch_ops.decode(b, T, config, dtype, dither_u)
    native = _native_config(config)
    b = _on_cuda(b if b.dtype == torch.uint8 else b.to(torch.uint8), "b")
    T = _on_cuda(T if T.dtype == torch.uint8 else T.to(torch.uint8), "T")
    n = b.shape[0]
    d = _native.coset.lattice_dim(native.lattice)
    out = torch.empty((n, d), dtype=dtype, device=b.device)
    status = coset_status(b.device)
    with _on_device(b.device):
        _cuda.coset_decode(native, _address(b), _address(T), n, _address(out), _FLOAT_NAMES[dtype],
                           _stream(b.device), status.data_ptr())
    return out


OPS = {
    "bitlab.linear_int8": linear_int8,
    "kuat.decode_packed": decode_packed,
    "coset.encode": encode,
    "coset.decode": decode,
}


"""BitLab ops in pure PyTorch: one device-generic twin of every C++ op, bit-identical on CPU tensors.

These run on whatever device their inputs live on and return their results there; they never
touch ``lowbit._native`` or numpy. :mod:`bitcore.ops.dispatch` picks, per call, between the C++
core (CPU tensors), a CUDA kernel registered in :mod:`lowbit._cuda_ops` under the op name below,
and these functions. A CUDA kernel for an op takes exactly the arguments of its function here
and returns the same (shapes, dtypes, device).

==========================  ====================================================================
op name                     signature -> result
==========================  ====================================================================
``bitlab.quantize_weights``     ``(weight f32 [N, K], granularity) -> (trits i8 [N, K], scales f32 [N])``
``bitlab.quantize_activations`` ``(x f32 [M, K], granularity) -> (x_q i8 [M, K], act_scale f32 [M])``
``bitlab.pack_2bit``        ``(trits i8 [N, K]) -> packed u8 [N, Kp/4]`` (I2_S256)
``bitlab.unpack_2bit``      ``(packed u8 [N, Kp/4], cols) -> trits i8 [N, cols]``
``bitlab.pack_base3``       ``(trits i8 [...]) -> u8 [ceil(numel/5)]`` (TQ1_B3)
``bitlab.unpack_base3``     ``(data u8 [ceil(rows*cols/5)], rows, cols) -> trits i8 [rows, cols]``
``bitlab.gemm_int8``        ``(x_q i8 [M, K], packed u8 [N, Kp/4]) -> acc i32 [M, N]`` (exact)
``bitlab.linear_int8``      ``(x f32 [M, K], packed, in_features, weight_scale f32 [N], bias f32 [N] | None,
                            activation_granularity) -> y f32 [M, N]``
``bitlab.linear_f32``       ``(x f32 [M, K], packed, in_features, weight_scale f32 [N], bias f32 [N] | None)
                            -> y f32 [M, N]``
==========================  ====================================================================

Arithmetic (docs/bitlab.md, "Method and exact arithmetic"; C++ ``src/bitlab/gemm_ref.cpp``,
``quantize.cpp``, ``gemm.cpp``):

* int8 layer: ``acc = sum_k x_q[m, k] * t[n, k]`` exactly, then
  ``y = (float32(acc) * act_scale[m]) * weight_scale[n] + bias[n]``, each step one float32
  rounding, left to right, bias added only when present. PyTorch runs each elementwise op as its
  own kernel, so nothing is contracted into a fused multiply-add.
* The exact integer sum is a float32 matmul over chunks of at most :data:`EXACT_F32_TERMS` columns:
  every partial sum of such a chunk is an integer of magnitude <= 128 * 2^17 = 2^24, which float32
  holds exactly, so the result is exact whatever order or blocking the BLAS (or TF32 / bf16
  "reduced precision" matmul modes, whose inputs are int8 values and trits, both exact there) uses.
  Chunks are added in int32 (|acc| <= 128 * K < 2^31 for K < 2^24).
* float layer: 64 partial sums over ``k % 64`` in increasing ``k`` (``p + x * t`` with
  ``t in {-1, 0, 1}`` is exactly the C++ ``p + x`` / ``p - x`` / ``p``), then the halving tree
  ``p[i] += p[i + h]`` for h = 32 .. 1; ``y = sum * weight_scale[n] + bias[n]``.

Sources: BitNet b1.58 (Ma et al. 2024, arXiv:2402.17764) for the quantizers and the W1.58A8
layer; the packed layouts are specified in docs/bitlab.md.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from .packing import pack_2bit, pack_base3, packed_row_bytes, padded_cols, unpack_2bit, unpack_base3
from .quant import quantize_activations, quantize_weights

__all__ = [
    "OPS",
    "EXACT_F32_TERMS",
    "quantize_weights",
    "quantize_activations",
    "pack_2bit",
    "unpack_2bit",
    "pack_base3",
    "unpack_base3",
    "gemm_int8",
    "linear_int8",
    "linear_f32",
    "fixed_order_sums",
]

#: Columns per float32 matmul chunk of the exact int8 GEMM: 128 * 2^17 = 2^24.
EXACT_F32_TERMS = 1 << 17

# Elements of the [rows, cols, 64] partial-sum block of the float path (16 MiB of float32).
_F32_BLOCK_ELEMENTS = 1 << 22


def _check_tensor(what: str, t, dtype: torch.dtype, shape: Optional[tuple] = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise ValueError(f"{what}: expected dtype {dtype}, got {t.dtype}")
    if shape is not None and tuple(t.shape) != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(t.shape)}")


def _check_same_device(x: torch.Tensor, **others) -> None:
    for name, t in others.items():
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on device {t.device} but the input x is on device {x.device}")


def _check_layer(x2d, packed, in_features, weight_scale, bias) -> int:
    _check_tensor("x", x2d, torch.float32)
    if x2d.dim() != 2 or x2d.shape[1] != in_features:
        raise ValueError(f"x: expected shape (M, in_features={in_features}), got {tuple(x2d.shape)}")
    _check_tensor("packed", packed, torch.uint8)
    if packed.dim() != 2 or packed.shape[1] != packed_row_bytes(in_features):
        raise ValueError(f"packed: {in_features} in_features need {packed_row_bytes(in_features)} bytes per row, "
                         f"got shape {tuple(packed.shape)}")
    n = packed.shape[0]
    _check_tensor("weight_scale", weight_scale, torch.float32, (n,))
    if bias is not None:
        _check_tensor("bias", bias, torch.float32, (n,))
    _check_same_device(x2d, packed=packed, weight_scale=weight_scale, bias=bias)
    if not bool(torch.isfinite(x2d).all()):
        raise ValueError("bitlinear: input contains NaN or Inf")
    return n


def gemm_int8(xq: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """Exact ``x_q @ t^T``: int8 ``[M, K]`` times I2_S256 ``[N, Kp/4]`` -> int32 ``[M, N]``.

    Raises:
        ValueError: wrong dtypes, or ``packed`` rows not ``packed_row_bytes(K)`` bytes long.
    """
    _check_tensor("x_q", xq, torch.int8)
    if xq.dim() != 2:
        raise ValueError(f"x_q: expected a 2-D tensor, got shape {tuple(xq.shape)}")
    _check_same_device(xq, packed=packed)
    m, k = xq.shape
    trits = unpack_2bit(packed, k).to(torch.float32)
    x = xq.to(torch.float32)
    acc = torch.zeros((m, trits.shape[0]), dtype=torch.int32, device=xq.device)
    for start in range(0, k, EXACT_F32_TERMS):
        stop = min(k, start + EXACT_F32_TERMS)
        acc += (x[:, start:stop] @ trits[:, start:stop].t()).to(torch.int32)
    return acc


def _epilogue(values: torch.Tensor, weight_scale: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    y = values * weight_scale.reshape(1, -1)
    return y if bias is None else y + bias.reshape(1, -1)


def linear_int8(
    x2d: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    weight_scale: torch.Tensor,
    bias: Optional[torch.Tensor],
    activation_granularity: str,
) -> torch.Tensor:
    """W1.58A8 layer: float32 ``[M, K]`` -> float32 ``[M, N]`` on ``x2d``'s device.

    ``y = (float32(x_q @ t^T) * act_scale[m]) * weight_scale[n] + bias[n]``.

    Raises:
        ValueError: shapes, dtypes or devices that do not fit, NaN/Inf input, bad granularity.
    """
    _check_layer(x2d, packed, in_features, weight_scale, bias)
    xq, act_scale = quantize_activations(x2d, activation_granularity)
    y = gemm_int8(xq, packed).to(torch.float32) * act_scale.reshape(-1, 1)
    return _epilogue(y, weight_scale, bias)


def fixed_order_sums(x2d: torch.Tensor, trits: torch.Tensor) -> torch.Tensor:
    """Float path of gemm.h: 64 partial sums over ``k % 64`` in increasing ``k``, then a halving tree.

    float32 ``[M, K]`` and int8 trits ``[N, K]`` -> float32 ``[M, N]``; blocked over M and N so the
    ``[m, n, 64]`` partial sums stay under 16 MiB.
    """
    m, k = x2d.shape
    n = trits.shape[0]
    kp = padded_cols(k)
    chunks = kp // 64
    x = torch.zeros((m, kp), dtype=torch.float32, device=x2d.device)
    x[:, :k] = x2d
    t = torch.zeros((n, kp), dtype=torch.float32, device=x2d.device)
    t[:, :k] = trits.to(torch.float32)
    x = x.reshape(m, chunks, 64)
    t = t.reshape(n, chunks, 64)
    out = torch.empty((m, n), dtype=torch.float32, device=x2d.device)
    mb = max(1, min(m, 256))
    nb = max(1, _F32_BLOCK_ELEMENTS // (mb * 64))
    for m0 in range(0, m, mb):
        xs = x[m0:m0 + mb].unsqueeze(1)  # [mb, 1, C, 64]
        for n0 in range(0, n, nb):
            ts = t[n0:n0 + nb].unsqueeze(0)  # [1, nb, C, 64]
            p = torch.zeros((xs.shape[0], ts.shape[1], 64), dtype=torch.float32, device=x2d.device)
            for c in range(chunks):  # x * t is exactly +x, -x or a zero: p + x * t is p + x, p - x or p
                p = p + xs[:, :, c, :] * ts[:, :, c, :]
            h = 32
            while h >= 1:
                p = p[..., :h] + p[..., h:2 * h]
                h //= 2
            out[m0:m0 + mb, n0:n0 + nb] = p[..., 0]
    return out


def linear_f32(
    x2d: torch.Tensor,
    packed: torch.Tensor,
    in_features: int,
    weight_scale: torch.Tensor,
    bias: Optional[torch.Tensor],
) -> torch.Tensor:
    """Float-activation ternary layer: float32 ``[M, K]`` -> float32 ``[M, N]``, ``y = sum * s[n] + bias[n]``.

    Raises:
        ValueError: shapes, dtypes or devices that do not fit, NaN/Inf input.
    """
    _check_layer(x2d, packed, in_features, weight_scale, bias)
    sums = fixed_order_sums(x2d, unpack_2bit(packed, in_features))
    return _epilogue(sums, weight_scale, bias)


#: Op name -> pure-PyTorch implementation (the table CUDA kernels mirror in lowbit._cuda_ops).
OPS: Dict[str, Callable] = {
    "bitlab.quantize_weights": quantize_weights,
    "bitlab.quantize_activations": quantize_activations,
    "bitlab.pack_2bit": pack_2bit,
    "bitlab.unpack_2bit": unpack_2bit,
    "bitlab.pack_base3": pack_base3,
    "bitlab.unpack_base3": unpack_base3,
    "bitlab.gemm_int8": gemm_int8,
    "bitlab.linear_int8": linear_int8,
    "bitlab.linear_f32": linear_f32,
}

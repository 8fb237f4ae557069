"""encode (Algorithm 1), decode (Algorithm 2), quantize, and block-wise tensor quantization."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Optional, Tuple

import numpy as np

from lowbit._native import coset as _native

from ._arrays import _contig, back, code_array, float_array, is_tensor, is_tensor_dtype
from .config import QuantizationConfig

# Retries allowed to rate_optimal_config: with alpha = 1/8, 64 retries span a gain of 256.
MAX_TUNED_ITERATIONS = 64
from .lattices.base import Lattice


def _check_pair(lattice: Any, config: Any) -> None:
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
    if not isinstance(lattice, Lattice):
        raise ValueError(f"lattice: expected a Z2Lattice, D4Lattice or E8Lattice, got {type(lattice).__name__}")
    if lattice.name != config.lattice_type:
        raise ValueError(f"lattice: {type(lattice).__name__} does not match config.lattice_type={config.lattice_type!r}")


def encode(x: Any, lattice: Lattice, config: QuantizationConfig) -> Tuple[Any, Any]:
    """Hierarchical encoding of ``x`` (shape ``(..., d)``).

    Returns ``(b, T)``: ``b`` of shape ``(..., M, d)`` with codes in ``[0, q)`` (uint8) and ``T``
    of shape ``(...)``, the number of overload rescalings of each vector (uint8). A single
    vector gives ``b`` of shape ``(M, d)`` and a 0-d ``T``. Torch in, torch out (CPU).
    """
    _check_pair(lattice, config)
    arr, as_torch, _ = float_array(x, "x")
    d = config.d
    if arr.ndim == 0 or arr.shape[-1] != d:
        raise ValueError(f"x: last dimension must be d={d} for {config.lattice_type}, got shape {tuple(arr.shape)}")
    lead = arr.shape[:-1]
    codes = np.empty(lead + (config.M, d), dtype=np.uint8)
    t = np.empty(lead, dtype=np.uint8)
    _, overloaded = _native.encode(config.native(), arr, codes, t)
    if overloaded and not config.disable_overload_protection:
        warnings.warn(f"encode: {overloaded} vector(s) still overload after max_scaling_iterations="
                      f"{config.max_scaling_iterations}; they will not decode to Q(x) (raise beta, alpha "
                      "or max_scaling_iterations)", RuntimeWarning, stacklevel=2)
    return back(codes, as_torch), back(t, as_torch)


def decode(b: Any, lattice: Lattice, config: QuantizationConfig, T: Any = None, dtype: Any = None) -> Any:
    """Hierarchical decoding: ``b`` of shape ``(..., M, d)`` and ``T`` of shape ``(...)``.

    ``T=None`` means no rescaling (all zeros). Returns float32 (or ``dtype``: float32/float64,
    numpy or torch) of shape ``(..., d)``; torch when ``b`` is a tensor.
    """
    _check_pair(lattice, config)
    as_torch = is_tensor(b)
    codes = code_array(b, "b", config.q)
    d, m = config.d, config.M
    if codes.ndim < 2 or codes.shape[-2:] != (m, d):
        raise ValueError(f"b: trailing shape must be (M, d)=({m}, {d}), got shape {tuple(codes.shape)}")
    lead = codes.shape[:-2]
    if T is None:
        t = np.zeros(lead, dtype=np.uint8)
    else:
        t = code_array(T, "T", config.max_t() + 1)
        if t.shape != lead:
            raise ValueError(f"T: shape must be {tuple(lead)} (b's leading shape), got {tuple(t.shape)}")
    want64 = _is_float64(dtype)
    out = np.empty(lead + (d,), dtype=np.float64 if want64 else np.float32)
    _native.decode(config.native(), codes, t, out)
    return back(out, as_torch)


def _is_float64(dtype: Any) -> bool:
    if dtype is None:
        return False
    if is_tensor_dtype(dtype):
        import torch

        return dtype == torch.float64
    try:
        return np.dtype(dtype) == np.float64
    except TypeError as exc:
        raise ValueError(f"dtype: expected a float dtype, got {dtype!r}") from exc


def quantize(x: Any, lattice: Lattice, config: QuantizationConfig) -> Any:
    """decode(encode(x)): equals ``s * Q(x / s)`` exactly for vectors that did not overload."""
    _check_pair(lattice, config)
    arr, as_torch, original = float_array(x, "x")
    b, t = encode(arr, lattice, config)
    out = decode(b, lattice, config, t, dtype=arr.dtype)
    return back(out, as_torch, original)


@functools.lru_cache(maxsize=None)
def optimal_beta(lattice_type: str, q: int, M: int, use_rescaling: bool = False) -> float:
    """The beta minimising the MSE of unit-variance Gaussian data; scale it by the data's std.

    ``use_rescaling=False``: the best fixed scale (overload protection off in the search), so
    that T > 0 stays rare and T costs almost nothing. ``use_rescaling=True``: the best start
    scale when overloads retry (up to 10 times): smaller, most vectors then use T = 1..3, which
    acts as a per-vector gain and lowers the MSE at the price of T's side information.
    Grid search, deterministic (fixed seed).
    """
    from .lattices import lattice_for

    lattice = lattice_for(lattice_type)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((65536 // lattice.d, lattice.d)).astype(np.float32)
    base = 1.0 / float(q) ** M
    best = (float("inf"), base)
    for f in np.geomspace(0.25 if use_rescaling else 0.5, 16.0, 49):
        cfg = QuantizationConfig(lattice_type=lattice_type, q=q, M=M, beta=float(base * f),
                                 disable_overload_protection=not use_rescaling)
        err = float(np.mean((quantize(x, lattice, cfg) - x) ** 2))
        best = min(best, (err, float(base * f)))
    return best[1]


def side_information_rate(T: Any, config: QuantizationConfig) -> float:
    """Bits per dimension that the scaling counts ``T`` cost: their empirical entropy H(T) / d,
    what an entropy coder of T spends. Add it to ``config.rate`` for the total rate."""
    t = np.asarray(T.cpu().numpy() if is_tensor(T) else T).ravel()
    if t.size == 0:
        return 0.0
    p = np.bincount(t.astype(np.int64)) / t.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) / config.d


@functools.lru_cache(maxsize=None)
def rate_optimal_config(lattice_type: str, q: int, M: int) -> QuantizationConfig:
    """The (beta, alpha) that minimise the MSE of unit-variance Gaussian data at its total rate.

    Overloads retry at a scale ``2**alpha`` coarser, so T acts as a per-vector gain (gain-shape
    quantization); the rate counted is the codes' ``M log2 q`` plus T's entropy
    (:func:`side_information_rate`), and the objective is ``MSE * 2**(2 * total rate)``, i.e. the
    distance in dB from the Gaussian D(R) = 2**(-2R). Small alphas (fine gain steps) win: about
    1/4. Scale beta by the data's std. Grid search, deterministic (fixed seed).
    """
    from .lattices import lattice_for

    lattice = lattice_for(lattice_type)
    x = np.random.default_rng(0).standard_normal((65536 // lattice.d, lattice.d)).astype(np.float32)
    base = 1.0 / float(q) ** M
    best = (float("inf"), None)
    for alpha in (1.0, 0.5, 0.25, 0.125):
        for f in np.geomspace(0.5, 32.0, 49):
            cfg = QuantizationConfig(lattice_type=lattice_type, q=q, M=M, beta=float(base * f), alpha=alpha,
                                     max_scaling_iterations=MAX_TUNED_ITERATIONS)
            b, t = encode(x, lattice, cfg)
            mse = float(np.mean((decode(b, lattice, cfg, t) - x) ** 2))
            score = mse * 2.0 ** (2.0 * (cfg.rate + side_information_rate(t, cfg)))
            if score < best[0]:
                best = (score, cfg)
    return best[1]


def quantize_tensor(x: Any, lattice: Lattice, config: QuantizationConfig, scale: Optional[Any] = None) -> Any:
    """Quantizes any tensor in blocks of d along its last dimension (zero-padded to a multiple of d).

    ``scale`` (broadcast against ``x.shape[:-1]``) divides each row before quantization and
    multiplies it back after; by default rows are not rescaled (config.beta applies).
    """
    _check_pair(lattice, config)
    arr, as_torch, original = float_array(x, "x")
    if arr.ndim == 0:
        raise ValueError("x: expected at least one dimension")
    d = config.d
    n = arr.shape[-1]
    pad = (-n) % d
    work = arr
    if scale is not None:
        s, _, _ = float_array(scale, "scale")
        s = np.broadcast_to(s.astype(arr.dtype), arr.shape[:-1])[..., None]
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("scale: must be finite and positive")
        work = arr / s
    if pad:
        work = np.concatenate([work, np.zeros(work.shape[:-1] + (pad,), dtype=work.dtype)], axis=-1)
    blocks = _contig(work.reshape(-1, d))
    out = quantize(blocks, lattice, config).reshape(work.shape)[..., :n]
    if scale is not None:
        out = out * s
    return back(_contig(out, dtype=arr.dtype), as_torch, original)

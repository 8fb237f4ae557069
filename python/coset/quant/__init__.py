"""encode (Algorithm 1), decode (Algorithm 2), quantize, and block-wise tensor quantization."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np

from lowbit import _backend
from lowbit._native import coset as _native

from .._arrays import (_contig, as_tensor, back, code_array, float_array, is_tensor, is_tensor_dtype, reject_meta,
                      require_finite, torch_codes, torch_float)
from .._dispatch import op as _op, torch_path as _torch_path
from ..config import QuantizationConfig

# Retries allowed to rate_optimal_config: with alpha = 1/8, 64 retries span a gain of 256.
MAX_TUNED_ITERATIONS = 64
DEGENERATE_MSE = 0.95  # rate_optimal_config: the zero quantizer has MSE 1 on unit-variance data
from ..lattices.base import Lattice


def _check_pair(lattice: Any, config: Any) -> None:
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
    if not isinstance(lattice, Lattice):
        raise ValueError(f"lattice: expected a Z2Lattice, D4Lattice or E8Lattice, got {type(lattice).__name__}")
    if lattice.name != config.lattice_type:
        raise ValueError(f"lattice: {type(lattice).__name__} does not match config.lattice_type={config.lattice_type!r}")


def _on_device(x: Any, device: Any, name: str) -> Any:
    """``x`` moved to ``device`` when the caller asked for one (the namesake's ``device=``)."""
    if device is None:
        return x
    import torch

    dev = torch.device(device)
    if is_tensor(x):
        return x.to(dev)
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return as_tensor(arr, dev)




def _user_dither(dither: Any, config: QuantizationConfig, like: Any) -> Any:
    """The namesake's ``dither=`` vector, scaled to the input domain (``beta_eff * u``), or None.

    The namesake adds it only when ``config.with_dither`` (in the domain divided by beta); here
    it then replaces the seeded dither: encode ``x + beta_eff * u``, decode subtracts it again.
    """
    if dither is None or not config.with_dither:
        return None
    base = 1.0 if config.disable_scaling else config.beta
    if is_tensor(like):
        import torch

        u = as_tensor(dither, like.device)
        return u.to(like.dtype if like.is_floating_point() else torch.float32) * base
    arr = np.asarray(like)
    ftype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float32
    return (np.asarray(dither.cpu().numpy() if is_tensor(dither) else dither, dtype=np.float64) * base).astype(ftype)


def _host(u: Any) -> np.ndarray:
    """A dither (C++ path: the data is on the host) as a numpy array."""
    return u.detach().cpu().numpy() if is_tensor(u) else np.asarray(u)


def _encode_counted(x: Any, lattice: Lattice, config: QuantizationConfig) -> Tuple[Any, Any, int]:
    """(b, T, vectors still overloaded): :func:`encode` without the warning and the 1-D conversions."""
    d = config.d
    impl = _torch_path(x, "x")
    if impl is not None:
        t_x = torch_float(x, "x")
        if t_x.dim() == 0 or t_x.shape[-1] != d:
            raise ValueError(f"x: last dimension must be d={d} for {config.lattice_type}, got shape {tuple(t_x.shape)}")
        lead = t_x.shape[:-1]
        flat = t_x.reshape(-1, d)
        require_finite(flat, "encode", d)
        b, t, over = _op(impl, "coset.encode")(flat, config)
        return b.reshape(lead + (config.M, d)), t.reshape(lead), int(over.sum()) if flat.shape[0] else 0
    arr, as_torch, _ = float_array(x, "x")
    if arr.ndim == 0 or arr.shape[-1] != d:
        raise ValueError(f"x: last dimension must be d={d} for {config.lattice_type}, got shape {tuple(arr.shape)}")
    lead = arr.shape[:-1]
    codes = np.empty(lead + (config.M, d), dtype=np.uint8)
    t = np.empty(lead, dtype=np.uint8)
    _, overloaded = _native.encode(config.native(), arr, codes, t)
    return back(codes, as_torch), back(t, as_torch), int(overloaded)


def _warn_overload(overloaded: int, config: QuantizationConfig) -> None:
    if overloaded and not config.disable_overload_protection:
        warnings.warn(f"encode: {overloaded} vector(s) still overload after max_scaling_iterations="
                      f"{config.max_scaling_iterations}; they will not decode to Q(x) (raise beta, alpha "
                      "or max_scaling_iterations)", RuntimeWarning, stacklevel=3)


def encode(x: Any, lattice: Lattice, config: QuantizationConfig, dither: Any = None,
           device: Any = None) -> Tuple[Any, Any]:
    """Hierarchical encoding (Algorithm 1 of Kaplan & Ordentlich, arXiv 2505.13164, section 3).

    ``x``: shape ``(..., d)``, any real dtype (float64 stays float64, the rest runs in float32);
    numpy array or torch tensor on any device. Returns ``(b, T)``: ``b`` of shape ``(..., M, d)``
    with codes in ``[0, q)`` (uint8) and ``T`` of shape ``(...)``, each vector's number of overload
    rescalings (uint8), on x's device. A single vector (``x`` of shape ``(d,)``) gives what the
    namesake gives: ``b`` of shape ``(M, d)`` as float32 codes (so ``b @ lattice.G.T`` works) and
    ``T`` as a Python ``int``.

    ``dither``: the namesake's dither vector, used only when ``config.with_dither`` (then in place
    of the seeded dither; pass the same one to :func:`decode`). ``device``: move ``x`` there first.

    Raises ``ValueError`` for a lattice/config mismatch, a last dimension other than d, NaN or Inf
    in ``x``, a bool or complex ``x``; warns (``RuntimeWarning``) when vectors still overload after the last retry.
    CPU tensors and numpy run the C++ kernels; other devices (or ``lowbit.backend("torch")``) run
    the bit-identical PyTorch twin (:mod:`coset._torch_ops`) without leaving the device.
    """
    _check_pair(lattice, config)
    x = _on_device(x, device, "x")
    reject_meta(x, "x", "encode")
    u = _user_dither(dither, config, x)
    if u is not None:
        x = (torch_float(x, "x") + u) if is_tensor(x) else (np.asarray(x).astype(u.dtype) + u)
        config = config.replace(with_dither=False)
    b, t, overloaded = _encode_counted(x, lattice, config)
    _warn_overload(overloaded, config)
    if (x.dim() if is_tensor(x) else np.ndim(x)) == 1:  # one vector: the namesake's types
        return (b.float() if is_tensor(b) else b.astype(np.float32)), int(t)
    return b, t


def _t_for(T: Any, lead: Tuple[int, ...], config: QuantizationConfig, like: Any) -> Any:
    """T as uint8 codes of shape ``lead`` on ``like``'s device (None: zeros; an int: that T)."""
    import torch

    if T is None or isinstance(T, (int, np.integer)) and not isinstance(T, bool):
        value = 0 if T is None else int(T)
        if not 0 <= value <= config.max_t():
            raise ValueError(f"T: values must lie in [0, {config.max_t() + 1}), got [{value}, {value}]")
        return torch.full(lead, value, dtype=torch.uint8, device=like.device)
    if not is_tensor(T):
        T = as_tensor(T, like.device)
    _backend.check_same_device("T", T, "b", like.device)
    t = torch_codes(T, "T", config.max_t() + 1)
    if tuple(t.shape) != tuple(lead):
        raise ValueError(f"T: shape must be {tuple(lead)} (b's leading shape), got {tuple(t.shape)}")
    return t


def decode(b: Any, lattice: Lattice, config: QuantizationConfig, T: Any = None, dtype: Any = None,
           dither: Any = None, device: Any = None) -> Any:
    """Hierarchical decoding (Algorithm 2 of Kaplan & Ordentlich, arXiv 2505.13164, section 3).

    ``b``: codes of shape ``(..., M, d)`` in ``[0, q)``, integer or float holding integers (the
    namesake's codes); ``T``: shape ``(...)``, a Python int, or ``None`` (all zeros). Returns
    ``x^ = s_T * sum_m q^m (G b_m - q Q(G b_m / q))`` of shape ``(..., d)`` as float32 (or
    ``dtype=float64``), torch on b's device when ``b`` is a tensor, numpy otherwise. ``dither``
    and ``device`` as in :func:`encode`.

    The namesake's ``decode(b, lattice, config, T, dither)`` passes the dither fifth: a tensor or
    numpy array in the ``dtype`` position is taken as ``dither`` (a dtype is never an array).

    Raises ``ValueError`` for a wrong trailing shape, codes outside ``[0, q)`` or not integers,
    T beyond ``max_scaling_iterations`` or of the wrong shape, and T on another device than b.
    """
    _check_pair(lattice, config)
    if is_tensor(dtype) or isinstance(dtype, np.ndarray):  # the namesake's positional dither
        if dither is not None:
            raise ValueError("dtype: got an array as well as dither=; the namesake's fifth positional argument "
                             "is the dither, here pass dtype= and dither= by keyword")
        dtype, dither = None, dtype
    b = _on_device(b, device, "b")
    reject_meta(b, "b", "decode")
    d, m = config.d, config.M
    u = _user_dither(dither, config, b)
    if u is not None:
        config = config.replace(with_dither=False)
    impl = _torch_path(b, "b")
    if impl is not None:
        import torch

        codes = torch_codes(b, "b", config.q)
        if codes.dim() < 2 or tuple(codes.shape[-2:]) != (m, d):
            raise ValueError(f"b: trailing shape must be (M, d)=({m}, {d}), got shape {tuple(codes.shape)}")
        lead = tuple(codes.shape[:-2])
        t = _t_for(T, lead, config, codes)
        out_dtype = torch.float64 if _is_float64(dtype) else torch.float32
        out = _op(impl, "coset.decode")(codes.reshape(-1, m, d), t.reshape(-1), config, out_dtype)
        out = out.reshape(lead + (d,))
        return out if u is None else out - u.to(out.dtype)
    as_torch = is_tensor(b)
    if as_torch and is_tensor(T):
        _backend.check_same_device("T", T, "b", b.device)
    codes = code_array(b, "b", config.q)
    if codes.ndim < 2 or codes.shape[-2:] != (m, d):
        raise ValueError(f"b: trailing shape must be (M, d)=({m}, {d}), got shape {tuple(codes.shape)}")
    lead = codes.shape[:-2]
    if T is None:
        t = np.zeros(lead, dtype=np.uint8)
    elif isinstance(T, (int, np.integer)) and not isinstance(T, bool):  # one T for every vector
        t = np.full(lead, 0, dtype=np.uint8)
        t[...] = code_array(np.asarray(int(T)), "T", config.max_t() + 1)
    else:
        t = code_array(T, "T", config.max_t() + 1)
        if t.shape != lead:
            raise ValueError(f"T: shape must be {tuple(lead)} (b's leading shape), got {tuple(t.shape)}")
    want64 = _is_float64(dtype)
    out = np.empty(lead + (d,), dtype=np.float64 if want64 else np.float32)
    _native.decode(config.native(), codes, t, out)
    if u is not None:
        out = (out - _host(u)).astype(out.dtype)
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


def quantize(x: Any, lattice: Lattice, config: QuantizationConfig, dither: Any = None, device: Any = None) -> Any:
    """decode(encode(x)): equals ``s * Q(x / s)`` exactly for vectors that did not overload.

    Shape and dtype of ``x`` kept (float16/bfloat16 computed in float32), on x's device.
    Errors and warnings as :func:`encode`.
    """
    _check_pair(lattice, config)
    x = _on_device(x, device, "x")
    reject_meta(x, "x", "quantize")
    u = _user_dither(dither, config, x)
    if u is not None:
        config = config.replace(with_dither=False)
    if _torch_path(x, "x") is not None:
        t_x = torch_float(x, "x")
        b, t, overloaded = _encode_counted(t_x if u is None else t_x + u.to(t_x.dtype), lattice, config)
        _warn_overload(overloaded, config)
        out = decode(b, lattice, config, t, dtype=t_x.dtype)
        if u is not None:
            out = out - u.to(out.dtype)
        return out.to(x.dtype) if x.is_floating_point() else out
    arr, as_torch, original = float_array(x, "x")
    src = arr if u is None else (arr + _host(u)).astype(arr.dtype)
    b, t, overloaded = _encode_counted(src, lattice, config)
    _warn_overload(overloaded, config)
    out = decode(b, lattice, config, t, dtype=arr.dtype)
    if u is not None:
        out = (out - _host(u)).astype(out.dtype)
    return back(out, as_torch, original)


def batch_encode(X: Any, lattice: Lattice, config: QuantizationConfig, dither: Any = None,
                 device: Any = None) -> Tuple[Any, Any]:
    """The namesake's batch encode: ``X`` (n, d) (a single vector is one row) -> ``(b, T)``.

    ``b`` is (n, M, d) float32 codes and ``T`` (n,) int64, the namesake's types (torch tensors on
    X's device, or on ``device``; numpy arrays for numpy input). :func:`encode` on a batch gives
    the same values as compact uint8. Raises what :func:`encode` raises.
    """
    if (X.dim() if is_tensor(X) else np.ndim(X)) == 1:
        X = X.reshape(1, -1) if is_tensor(X) else np.reshape(X, (1, -1))
    b, t = encode(X, lattice, config, dither=dither, device=device)
    if is_tensor(b):
        import torch

        return b.float(), t.to(torch.int64)
    return b.astype(np.float32), t.astype(np.int64)


def batch_decode(encoded_vectors: Any, scaling_counts: Any, lattice: Lattice, config: QuantizationConfig,
                 dither: Any = None, device: Any = None) -> Any:
    """The namesake's batch decode: codes (n, M, d) (integer or float) and T (n,) -> (n, d) float32."""
    return decode(encoded_vectors, lattice, config, scaling_counts, dither=dither, device=device)


def batch_quantize(X: Any, lattice: Lattice, config: QuantizationConfig, dither: Any = None,
                   device: Any = None) -> Any:
    """The namesake's batch quantize: ``batch_decode(*batch_encode(X, ...))``, (n, d) -> (n, d) float32."""
    b, t = batch_encode(X, lattice, config, dither=dither, device=device)
    return batch_decode(b, t, lattice, config, dither=dither)


def mac_modq(x: Any, y: Any, q: int) -> Any:
    """``<x, y> mod q`` (the namesake's modular multiply-accumulate)."""
    return (x * y).sum() % q


def accumulate_modq(acc: Any, x: Any, q: int) -> Any:
    """``(acc + x) mod q``."""
    return (acc + x) % q


@functools.lru_cache(maxsize=None)
def optimal_beta(lattice_type: str, q: int, M: int, use_rescaling: bool = False) -> float:
    """The beta minimising the MSE of unit-variance Gaussian data; scale it by the data's std.

    ``use_rescaling=False``: the best fixed scale (overload protection off in the search), so
    that T > 0 stays rare and T costs almost nothing. ``use_rescaling=True``: the best start
    scale when overloads retry (up to 10 times): smaller, most vectors then use T = 1..3, which
    acts as a per-vector gain and lowers the MSE at the price of T's side information.
    Grid search, deterministic (fixed seed).
    """
    from ..lattices import lattice_for

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
    1/4. Scale beta by the data's std. Grid search, deterministic (fixed seed). Candidates whose MSE
    is not below ``DEGENERATE_MSE`` (0.95 of the variance) are left out: at low rates (D4 q=2) a beta so
    large that everything decodes to 0 (MSE 1, no T to code) would otherwise score best.
    """
    from ..lattices import lattice_for

    lattice = lattice_for(lattice_type)
    x = np.random.default_rng(0).standard_normal((65536 // lattice.d, lattice.d)).astype(np.float32)

    def measure(cfg: QuantizationConfig) -> Tuple[float, float]:
        b, t = encode(x, lattice, cfg)
        return float(np.mean((decode(b, lattice, cfg, t) - x) ** 2)), side_information_rate(t, cfg)

    return grid_search_config(lattice_type, q, M, (1.0, 0.5, 0.25, 0.125), MAX_TUNED_ITERATIONS, measure,
                              "rate_optimal_config")


def grid_search_config(lattice_type: str, q: int, M: int, alphas, max_t: int,
                       measure: Callable[[QuantizationConfig], Tuple[float, float]], who: str) -> QuantizationConfig:
    """The search of :func:`rate_optimal_config`: over ``alphas`` and 49 betas (geometric, 0.5 to 32 times
    ``q**-M``), the config with the lowest ``MSE * 2**(2 * (M log2 q + side rate))``, where
    ``measure(config)`` gives (MSE on unit-variance data, side-information bits per dimension);
    candidates whose MSE is not below ``DEGENERATE_MSE`` are left out. ValueError naming ``who`` when
    none is left."""
    base = 1.0 / float(q) ** M
    best = (float("inf"), None)
    for alpha in alphas:
        for f in np.geomspace(0.5, 32.0, 49):
            cfg = QuantizationConfig(lattice_type=lattice_type, q=q, M=M, beta=float(base * f), alpha=alpha,
                                     max_scaling_iterations=max_t)
            mse, side = measure(cfg)
            score = mse * 2.0 ** (2.0 * (cfg.rate + side))
            if score < best[0] and mse < DEGENERATE_MSE:
                best = (score, cfg)
    if best[1] is None:
        raise ValueError(f"{who}: no (beta, alpha) of the grid gives {lattice_type} q={q} M={M} an MSE below "
                         f"{DEGENERATE_MSE} on unit-variance data")
    return best[1]


def quantize_tensor(x: Any, lattice: Lattice, config: QuantizationConfig, scale: Optional[Any] = None) -> Any:
    """Quantizes any tensor in blocks of d along its last dimension (zero-padded to a multiple of d).

    ``scale`` (broadcast against ``x.shape[:-1]``) divides each row before quantization and
    multiplies it back after; by default rows are not rescaled (config.beta applies).
    """
    _check_pair(lattice, config)
    reject_meta(x, "x", "quantize")
    if _torch_path(x, "x") is not None:
        return _quantize_tensor_torch(x, lattice, config, scale)
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


def _quantize_tensor_torch(x: Any, lattice: Lattice, config: QuantizationConfig, scale: Optional[Any]) -> Any:
    """:func:`quantize_tensor` on x's device: the same divisions, padding and products as numpy's."""
    import torch

    t = torch_float(x, "x")
    if t.dim() == 0:
        raise ValueError("x: expected at least one dimension")
    d, n = config.d, t.shape[-1]
    pad = (-n) % d
    work = t
    if scale is not None:
        s = scale.detach() if is_tensor(scale) else as_tensor(scale, t.device)
        _backend.check_same_device("scale", s, "x", t.device)
        s = torch.broadcast_to(s.to(t.dtype), t.shape[:-1]).unsqueeze(-1)
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError("scale: must be finite and positive")
        work = t / s
    if pad:
        work = torch.cat([work, work.new_zeros(work.shape[:-1] + (pad,))], dim=-1)
    out = quantize(work.reshape(-1, d), lattice, config).reshape(work.shape)[..., :n]
    if scale is not None:
        out = out * s
    return out.to(x.dtype) if x.is_floating_point() else out


_SUBMODULE_NAMES = {  # the namesake's coset.quant names that live in submodules (loaded on first use)
    "batch_e8_quantize": "e8_gpu", "batch_encode_e8": "e8_gpu", "batch_decode_e8": "e8_gpu",
    "batch_quantize_e8": "e8_gpu", "vLUTManager": "vlut", "build_vlut": "vlut",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULE_NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_SUBMODULE_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

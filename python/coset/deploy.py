"""Deployed Coset layers: ``PackedLinear`` evaluates ``y = x W^T + b`` from packed lattice codes.

The packed form of a weight ``W`` (out x in) is documented in docs/coset.md ("Deployed layers"):
``in`` is zero-padded to ``blocks * d``; each block of d weights holds M levels of d codes of
``ceil(log2(q))`` bits (any q in [2, 16]; codes >= q are invalid); every block has a scaling count
T (its gain step, entropy-coded in the state dict, one nibble in memory); every row has a float32
scale. ``state_dict()`` holds exactly that (``codes``, ``t_code``, ``t_lengths``, ``row_scale``,
``bias`` and the config as extra state); loading it into a fresh ``PackedLinear`` of the same shape
reproduces the outputs bit for bit. The config, shape and bias flag travel as ``_extra_state``, a
30-byte binary record (:func:`layer_record`, format :data:`LAYOUT_VERSION`); state dicts saved with
the JSON-like dict of format 1 still load.

CPU tensors run the C++ kernels (lowbit._native.coset_deploy: AVX-512 / AVX2 / scalar, chosen at
run time, threads over rows; configs whose integer decode exceeds the int8 kernels' 63, such as
D4 q=4 M=4, take a slower int32 path with the same arithmetic). Other devices, or
``lowbit.backend("torch")``, run a pure-PyTorch twin that decodes the blocks with torch ops (same
closest-point rule, exact integers) and agrees with the kernels within :data:`TORCH_PATH_RTOL` of the
sum of magnitudes.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import struct
import warnings
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit import _backend
from lowbit._native import coset_deploy as _native

from ._deploy_torch import code_bits, unpack_codes
from .config import QuantizationConfig

LAYOUT_VERSION = 2  # the format byte of the ``_extra_state`` record; 1 (a dict) still loads
MAX_T = 15  # T is a nibble in memory
T_GROUP = 4  # t_group=4: one T per 4 D4 blocks (16 weights), docs/coset.md
# from_weight warns when clipped blocks leave a row's relative squared error above this: twice the worst
# of the deployed 4-bit formats on any data we measured (D4 with QLinear's scale, 0.026; the tuned
# formats 0.004-0.02, BENCHMARKS.md).
CLIPPED_ERROR_WARNING = 0.05
# ... or decode more than this fraction of a row's nonzero weights to 0 (a few huge weights took the
# row scale: a Gaussian row at 4 bits zeroes about a tenth of its weights).
ZEROED_ROW_WARNING = 0.9
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# The pure-PyTorch path sums the same exact integer block products in another order (BLAS):
# relative to sum_k |s_k I_k|, float32 reordering of up to in/d terms stays below this.
TORCH_PATH_RTOL = 2.0 ** -12

_STATE_KEYS = ("codes", "t_code", "t_lengths", "row_scale")


def _checked_t_group(t_group: Any, who: str) -> int:
    """t_group as an int: 1 or T_GROUP (an int, not a bool, float or string), else ValueError naming ``who``."""
    if isinstance(t_group, (bool, np.bool_)) or not isinstance(t_group, (int, np.integer)) or t_group not in (1, T_GROUP):
        raise ValueError(f"{who}: t_group must be 1 or {T_GROUP} (an int), got {t_group!r}")
    return int(t_group)


def deployable_config(lattice_type: str = "E8", q: int = 16, M: int = 1, t_group: int = 1) -> QuantizationConfig:
    """The rate-optimal (beta, alpha) of :func:`coset.rate_optimal_config` with T capped at 15.

    Use with ``row_scale="rms"``: the config's beta is then the whole start scale of a
    unit-rms row, and T (a per-block gain in steps of ``2**alpha``) is entropy-coded.

    ``t_group=4`` (D4 only): the config for layers built with ``t_group=4`` (one T per 4 blocks, 16
    weights: :meth:`PackedLinear.from_weight`), found by the same grid search with each group's T
    shared (``MSE * 2**(2 * (M log2 q + H(T) / 16))`` on N(0,1) data, alpha in 1, 1/2, 1/4, 1/6, 1/8,
    T <= 15): D4 q=4 M=2 gives alpha = 1/6 (a finer gain step than a T per block needs, since one T
    serves 16 weights). The search takes a few seconds on its first call per (q, M) and is cached.
    """
    from .quant import rate_optimal_config

    if lattice_type not in ("Z2", "D4", "E8"):
        raise ValueError(f"deployable_config: lattice_type must be 'Z2', 'D4' or 'E8', got {lattice_type!r}")
    if _checked_t_group(t_group, "deployable_config") != 1:
        if lattice_type != "D4":
            raise ValueError(f"deployable_config: t_group={T_GROUP} is for D4 configs, not {lattice_type}")
        cfg = QuantizationConfig(lattice_type="D4", q=q, M=M, max_scaling_iterations=MAX_T)
        _native.require_t_group(cfg.native(), T_GROUP, T_GROUP, "deployable_config")
        return _group_optimal_config(q, M)
    return rate_optimal_config(lattice_type, q, M).replace(max_scaling_iterations=MAX_T)


@functools.lru_cache(maxsize=16)
def _group_optimal_config(q: int, M: int) -> QuantizationConfig:
    """deployable_config("D4", q, M, t_group=4): grid search over (alpha, beta) with the shared-T encoder."""
    from lowbit._native import coset as _coset_native

    from .quant import grid_search_config, side_information_rate

    x = np.random.default_rng(0).standard_normal((64, 1024)).astype(np.float32)  # 64 rows of 64 groups
    rows, blocks = x.shape[0], x.shape[1] // 4

    def measure(cfg: QuantizationConfig):
        _native.require_deployable(cfg.native(), "deployable_config")
        codes = np.empty((rows * blocks, M, 4), np.uint8)
        t = np.empty(rows * blocks // T_GROUP, np.uint8)
        _native.encode(cfg.native(), x, rows, blocks, T_GROUP, codes, t)
        dec = np.empty((rows * blocks, 4), np.float32)
        _coset_native.decode(cfg.native(), codes, np.repeat(t, T_GROUP), dec)
        return float(np.mean((dec.reshape(x.shape) - x) ** 2)), side_information_rate(t, cfg) / T_GROUP

    return grid_search_config("D4", q, M, (1.0, 0.5, 0.25, 1.0 / 6.0, 0.125), MAX_T, measure,
                              f"deployable_config(t_group={T_GROUP})")


# ---- the ``_extra_state`` record (docs/coset.md, "Deployed layers") --------------------------------
# Format 2, little-endian: version (u8), lattice (u8: 0 Z2, 1 D4, 2 E8), q (u8), M (u8),
# max_scaling_iterations (u8), flags (u8, below), in_features (u32), out_features (u32), beta (f64),
# alpha (f64); then dither_seed (u64) only when _FLAG_SEED is set (a non-zero seed).
_RECORD = struct.Struct("<BBBBBBIIdd")
_SEED = struct.Struct("<Q")
_LATTICES = ("Z2", "D4", "E8")
_FLAG_TIE_DITHER, _FLAG_DITHER, _FLAG_NO_SCALING, _FLAG_NO_OVERLOAD, _FLAG_BIAS, _FLAG_SEED, _FLAG_T_GROUP = (
    1 << i for i in range(7))
_FLAG_FIELDS = ((_FLAG_TIE_DITHER, "with_tie_dither"), (_FLAG_DITHER, "with_dither"),
                (_FLAG_NO_SCALING, "disable_scaling"), (_FLAG_NO_OVERLOAD, "disable_overload_protection"))
_FLAGS_KNOWN = (1 << 7) - 1


class SavedLayer(NamedTuple):
    """What a ``PackedLinear`` state dict's ``_extra_state`` says about its layer (:func:`read_layer_record`)."""

    config: QuantizationConfig
    in_features: int
    out_features: int
    bias: bool
    t_group: int = 1


def layer_record(config: QuantizationConfig, in_features: int, out_features: int, bias: bool,
                 t_group: int = 1) -> torch.Tensor:
    """The ``_extra_state`` of a ``PackedLinear``: a 1-D uint8 CPU tensor of 30 bytes (38 with a non-zero
    ``dither_seed``) in format :data:`LAYOUT_VERSION` (layout in docs/coset.md); every config field is kept
    exactly (beta and alpha as float64), ``t_group=4`` as a flag bit. :func:`read_layer_record` inverts it.

    Raises:
        ValueError: ``config`` is not a QuantizationConfig, a feature count is outside [1, 2**32), or
        ``t_group`` is not 1 or 4.
    """
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"layer_record: config must be a QuantizationConfig, got {type(config).__name__}")
    for what, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**32:
            raise ValueError(f"layer_record: {what} must be an integer in [1, 2**32), got {v!r}")
    t_group = _checked_t_group(t_group, "layer_record")
    if t_group != 1 and config.lattice_type != "D4":
        raise ValueError(f"layer_record: t_group={t_group} is for D4 configs, not {config.lattice_type}")
    flags = sum(bit for bit, field in _FLAG_FIELDS if getattr(config, field)) | (_FLAG_BIAS if bias else 0)
    if t_group != 1:
        flags |= _FLAG_T_GROUP
    if config.dither_seed:
        flags |= _FLAG_SEED
    raw = _RECORD.pack(LAYOUT_VERSION, _LATTICES.index(config.lattice_type), config.q, config.M,
                       config.max_scaling_iterations, flags, in_features, out_features, float(config.beta),
                       float(config.alpha))
    if config.dither_seed:
        raw += _SEED.pack(config.dither_seed)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


def read_layer_record(extra: Any, name: str = "PackedLinear") -> SavedLayer:
    """Parses a ``PackedLinear`` state dict's ``_extra_state``: the binary record of :func:`layer_record`
    (a 1-D uint8 tensor, format 2) or the dict saved by format 1 (``version``, ``config``,
    ``in_features``, ``out_features``, ``bias``).

    Raises:
        ValueError: naming ``name`` and the reason: another type, an unknown format version, a
        record of the wrong length, an unknown lattice id or flag bit, or an invalid config.
    """
    if isinstance(extra, dict):
        return _read_dict_record(extra, name)
    if not isinstance(extra, torch.Tensor):
        raise ValueError(f"{name}: packed state dict's '_extra_state' must be a uint8 tensor (format "
                         f"{LAYOUT_VERSION}) or a dict (format 1), got {type(extra).__name__}")
    if extra.dtype != torch.uint8 or extra.dim() != 1:
        raise ValueError(f"{name}: packed state dict's '_extra_state' must be a 1-D uint8 tensor, got "
                         f"{extra.dtype} of shape {tuple(extra.shape)}")
    raw = extra.detach().cpu().numpy().tobytes()
    if not raw:
        raise ValueError(f"{name}: packed state dict's config record is empty")
    if raw[0] != LAYOUT_VERSION:
        raise ValueError(f"{name}: packed state dict's config record has format version {raw[0]}; this version "
                         f"reads format 1 (a dict) and {LAYOUT_VERSION}")
    flags = raw[5] if len(raw) > 5 else 0
    want = _RECORD.size + (_SEED.size if flags & _FLAG_SEED else 0)
    if len(raw) != want:
        raise ValueError(f"{name}: packed state dict's config record has {len(raw)} bytes, format "
                         f"{LAYOUT_VERSION} needs {want} (truncated or corrupt)")
    _, lattice, q, M, iters, flags, in_f, out_f, beta, alpha = _RECORD.unpack_from(raw)
    if lattice >= len(_LATTICES):
        raise ValueError(f"{name}: packed state dict's config record has lattice id {lattice} "
                         "(0: Z2, 1: D4, 2: E8; corrupt)")
    if flags & ~_FLAGS_KNOWN:
        raise ValueError(f"{name}: packed state dict's config record has unknown flag bits "
                         f"0x{flags & ~_FLAGS_KNOWN:02x} (corrupt or from a newer version)")
    seed = _SEED.unpack_from(raw, _RECORD.size)[0] if flags & _FLAG_SEED else 0
    if flags & _FLAG_SEED and seed == 0:
        raise ValueError(f"{name}: packed state dict's config record flags a dither seed of 0 (corrupt)")
    fields = {field: bool(flags & bit) for bit, field in _FLAG_FIELDS}
    try:
        if fields["disable_scaling"]:  # beta is unused then (records written before that was required)
            beta = 1.0
        config = QuantizationConfig(lattice_type=_LATTICES[lattice], q=q, M=M, beta=beta, alpha=alpha,
                                    max_scaling_iterations=iters, dither_seed=seed, **fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: packed state dict has an invalid config: {exc}") from None
    if flags & _FLAG_T_GROUP and config.lattice_type != "D4":
        raise ValueError(f"{name}: packed state dict's config record flags a T per group for a "
                         f"{config.lattice_type} config (only D4 has it; corrupt)")
    return SavedLayer(config, in_f, out_f, bool(flags & _FLAG_BIAS), T_GROUP if flags & _FLAG_T_GROUP else 1)


def _read_dict_record(extra: dict, name: str) -> SavedLayer:
    """Format 1: ``{"version": 1, "config": {every QuantizationConfig field}, "in_features", "out_features",
    "bias"}`` (what ``get_extra_state`` returned before the binary record)."""
    if extra.get("version") != 1:
        raise ValueError(f"{name}: packed state dict has layout version {extra.get('version')!r} in a dict "
                         f"record; this version reads format 1 (a dict) and {LAYOUT_VERSION}")
    shape = []
    for key in ("in_features", "out_features"):
        v = extra.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: packed state dict's '{key}' must be a positive integer, got {v!r}")
        shape.append(v)
    if not isinstance(extra.get("bias"), bool):
        raise ValueError(f"{name}: packed state dict's 'bias' must be a bool, got {extra.get('bias')!r}")
    if not isinstance(extra.get("config"), dict):
        raise ValueError(f"{name}: packed state dict has an invalid config: expected a dict, got "
                         f"{type(extra.get('config')).__name__}")
    fields = dict(extra["config"])
    if fields.get("disable_scaling") is True:  # beta is unused then (dicts saved before that was required)
        fields["beta"] = 1.0
    try:
        config = QuantizationConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: packed state dict has an invalid config: {exc}") from None
    return SavedLayer(config, shape[0], shape[1], extra["bias"])


def _config_repr(config: QuantizationConfig) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(config).items()) + ")"


@functools.lru_cache(maxsize=64)
def _native_config(config: QuantizationConfig):
    """config.native(), built once per config (frozen, hashable; kept out of the module so that it
    still pickles): it costs microseconds, a few % of a 4096 x 4096 batch-1 forward."""
    return config.native()


# Emptied at interpreter exit, before the native module goes: an autograd graph still alive then (the
# output of a forward with grad, kept in a global) holds this module's functions, and through them this
# cache; nanobind would report its native configs as leaked instances.
atexit.register(_native_config.cache_clear)


class PackedLinear(nn.Module):
    """A linear layer stored and evaluated as packed lattice codes (no trainable parameters; gradients
    still reach the input, ``grad_y @ W^``, like ``nn.Linear`` in eval mode).

    Build one with :meth:`from_weight`, :meth:`from_linear` or :meth:`from_qlinear`; a layer
    built with the constructor is empty (zero codes) until ``load_state_dict`` fills it.

    ``t_group``: blocks that share one scaling count T: 1 (each lattice block its own, Algorithm 1
    of Kaplan & Ordentlich) or 4 (D4 configs: one T per 16 weights, the input zero-padded to a
    multiple of 16; a quarter of the side information and the fastest batch-1 kernel, for a
    somewhat larger error: docs/coset.md, "A T per group").
    """

    def __init__(self, in_features: int, out_features: int, config: QuantizationConfig, bias: bool = True,
                 name: Optional[str] = None, device: Any = None, t_group: int = 1) -> None:
        super().__init__()
        self.layer_name = name or "PackedLinear"
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{self.layer_name}: {what} must be a positive integer, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.config = self._checked_config(config)
        self.t_group = _checked_t_group(t_group, self.layer_name)
        self.blocks = -(-in_features // (self.config.d * self.t_group)) * self.t_group
        try:
            _native.require_t_group(self.config.native(), self.blocks, self.t_group, self.layer_name)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        row_bytes = int(_native.code_row_bytes(self.config.native(), self.blocks))
        t_bytes = int(_native.t_row_bytes(self.t_units))
        target = torch.device("cpu") if device is None else torch.device(device)
        dev = torch.device("cpu")  # built on the CPU (the T stream is derived there), then moved
        self.register_buffer("codes", torch.zeros(out_features, row_bytes, dtype=torch.uint8, device=dev))
        self.register_buffer("t_code", torch.zeros(0, dtype=torch.uint8, device=dev))
        lengths = torch.zeros(16, dtype=torch.uint8, device=dev)
        lengths[0] = 1
        self.register_buffer("t_lengths", lengths)
        self.register_buffer("row_scale", torch.ones(out_features, dtype=torch.float32, device=dev))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=dev))
        else:
            self.bias = None
        # T in the kernels' in-memory form (docs/coset.md), derived from t_code, never saved:
        # t_bits per block (4: nibbles; 1 or 2: compact codes whose escapes are in t_escapes,
        # row n's from t_escape_start[n]).
        self.t_bits = 4
        self.register_buffer("t_packed", torch.zeros(out_features, t_bytes, dtype=torch.uint8, device=dev),
                             persistent=False)
        self.register_buffer("t_escapes", torch.zeros(0, dtype=torch.uint8, device=dev), persistent=False)
        self.register_buffer("t_escape_start", torch.zeros(out_features + 1, dtype=torch.int32, device=dev),
                             persistent=False)
        self._hold_t_code(self._entropy_code(np.zeros((out_features, self.t_units), np.uint8))[0])
        if target != dev:
            self.to(target)

    @property
    def t_units(self) -> int:
        """T values per row: ``blocks / t_group``."""
        return self.blocks // self.t_group

    # ---- construction -------------------------------------------------------------------

    def _checked_config(self, config: Any) -> QuantizationConfig:
        return self._checked_config_named(config, self.layer_name)

    @staticmethod
    def _checked_config_named(config: Any, name: str) -> QuantizationConfig:
        if not isinstance(config, QuantizationConfig):
            raise ValueError(f"{name}: config must be a QuantizationConfig, got {type(config).__name__}")
        try:
            _native.require_deployable(config.native(), name)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith(name) else f"{name}: {msg}") from None
        return config

    def _set_t(self, t: np.ndarray, units: int, dev, bits: int = 0) -> None:
        """Holds T (out_features * units values: one per block, or per group) in the kernels'
        in-memory form: ``bits`` per value (0: the narrowest whose escapes stay at most 1/64 of them,
        docs/coset.md)."""
        bits, packed, escapes, start = _native.t_compact(np.ascontiguousarray(t, dtype=np.uint8).reshape(-1),
                                                         self.out_features, units, bits)
        self.t_bits = int(bits)
        self.t_packed = torch.from_numpy(np.frombuffer(packed, np.uint8).copy().reshape(self.out_features, -1)).to(dev)
        self.t_escapes = torch.from_numpy(np.frombuffer(escapes, np.uint8).copy()).to(dev)
        self.t_escape_start = torch.from_numpy(np.frombuffer(start, np.int32).copy()).to(dev)

    def _derived_t_code(self) -> torch.Tensor:
        """The saved T stream (canonical Huffman code with ``t_lengths``) rebuilt from the in-memory T."""
        from ._deploy_torch import unpack_t

        t = unpack_t(self.t_packed.cpu(), self.t_bits, self.t_escapes.cpu(), self.t_units)
        flat = np.ascontiguousarray(t.numpy().astype(np.uint8).reshape(-1))
        try:
            stream = _native.t_encode(flat, self.t_lengths.cpu().numpy())
        except ValueError as exc:  # e.g. after to_empty() without load_state_dict: no valid T held
            raise ValueError(f"{self.layer_name}: the layer holds no valid T ({exc}); load a state dict "
                             "first (after to_empty(), load_state_dict)") from None
        return torch.from_numpy(np.frombuffer(stream, np.uint8).copy())

    def _hold_t_code(self, stream: torch.Tensor) -> None:
        """Keeps the saved T stream only where it cannot be rebuilt from the in-memory T (a stream
        whose unused last bits are not zero); otherwise ``state_dict()`` rebuilds it, so the layer
        does not hold T twice (docs/coset.md, "Deployed layers")."""
        if self.codes.is_meta:  # no values to compare: keep the (meta) stream as given
            self._t_code_bytes = int(stream.numel())
            self._t_code_derived = False
            self.t_code = stream.detach().to("meta")
            return
        stream = stream.detach().cpu()
        self._t_code_bytes = int(stream.numel())
        self._t_code_derived = torch.equal(self._derived_t_code(), stream)
        kept = torch.zeros(0, dtype=torch.uint8) if self._t_code_derived else stream
        self.t_code = kept.to(self.codes.device)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.codes.is_meta:  # shapes only, as every buffer of a meta module
            destination[prefix + "t_code"] = torch.empty(self._t_code_bytes, dtype=torch.uint8, device="meta")
        elif self._t_code_derived:
            destination[prefix + "t_code"] = self._derived_t_code().to(self.codes.device)

    def _t_args(self) -> tuple:
        return (self.t_packed.numpy(), self.t_bits, self.t_escapes.numpy(), self.t_escape_start.numpy(), self.t_group)

    def _native_config(self):
        return _native_config(self.config)

    def _entropy_code(self, t: np.ndarray):
        flat = np.ascontiguousarray(t, dtype=np.uint8).reshape(-1)
        lengths = np.frombuffer(_native.t_code_lengths(flat), dtype=np.uint8).copy()
        stream = np.frombuffer(_native.t_encode(flat, lengths), dtype=np.uint8).copy()
        self.t_lengths = torch.from_numpy(lengths).to(self.codes.device)
        return torch.from_numpy(stream), lengths

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: Optional[torch.Tensor], config: QuantizationConfig,
                    row_scale: Union[str, torch.Tensor] = "qlinear", name: Optional[str] = None,
                    t_group: int = 1) -> "PackedLinear":
        """Quantizes ``weight`` (out x in) and packs it.

        ``row_scale``: ``"qlinear"`` divides each row by ``rms * optimal_beta(lattice, q, M)``
        before encoding with ``config`` (exactly what ``QLinear`` does, so a QAT-trained layer
        deploys to the weights it was trained with); ``"rms"`` divides by the rms only (for
        tuned configs such as :func:`deployable_config`, whose beta is the whole scale); ``"auto"``
        is ``"rms"`` but rows with outliers or heavy tails (relative error above 1.5 times the
        layer's median, or a T at the config's largest) take the factor of the rms among
        ``AUTO_ROW_SCALE_FACTORS`` that gives them the lowest squared error (the T steps cover a
        range of ``2**(alpha * max_t)`` only; beyond it blocks are clipped); or a tensor of ``out``
        positive scales. A ``RuntimeWarning`` names the layer when clipped blocks leave a row's
        relative squared error above ``CLIPPED_ERROR_WARNING`` (weights far beyond the rest of their
        row, which a row scale and 16 T steps cannot represent: heavy tails in wide rows, "super
        weights"; E8 or ``t_group=1`` cover a wider range). ``t_group=4`` (D4 configs): one T per 4 blocks, each group
        at the smallest T where none of its blocks overloads (pair it with
        ``deployable_config("D4", 4, 2, t_group=4)`` and ``row_scale="auto"``).
        """
        label = name or "PackedLinear"
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            got = f"shape {tuple(weight.shape)}" if isinstance(weight, torch.Tensor) else type(weight).__name__
            raise ValueError(f"{label}: weight must be a 2-D tensor (out_features, in_features), got {got}")
        if weight.is_meta or (isinstance(bias, torch.Tensor) and bias.is_meta):
            raise ValueError(f"{label}: the weight is on the meta device (no values to quantize); "
                             "materialize it first (e.g. to_empty() and load the weights)")
        out_f, in_f = weight.shape
        layer = cls(in_f, out_f, config, bias=bias is not None, name=name, device=weight.device, t_group=t_group)
        w64 = weight.detach()
        if w64.dtype == torch.float64 and bool((torch.isfinite(w64) & (w64.abs() > _FLOAT32_MAX)).any()):
            raise ValueError(f"{layer.layer_name}: weight has finite float64 values beyond float32's range "
                             f"(max |w| = {float(w64.abs().max()):.3g}); the packed form is float32")
        w = w64.to(device="cpu", dtype=torch.float32)
        bad = ~torch.isfinite(w)
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0])
            raise ValueError(f"{layer.layer_name}: weight contains NaN or Inf (row {row}); cannot deploy")
        if bias is not None:
            if not isinstance(bias, torch.Tensor):
                raise ValueError(f"{label}: bias must be a 1-D tensor of out_features values or None, "
                                 f"got {type(bias).__name__}")
            b = bias.detach().to(device="cpu", dtype=torch.float32)
            if b.shape != (out_f,) or not bool(torch.isfinite(b).all()):
                raise ValueError(f"{layer.layer_name}: bias must be {out_f} finite values")
        from .nn import row_rms

        rms = row_rms(w)
        if isinstance(row_scale, str):
            if row_scale == "qlinear":
                from .quant import optimal_beta

                scale = rms * optimal_beta(config.lattice_type, config.q, config.M)
            elif row_scale in ("rms", "auto"):
                scale = rms
            else:
                raise ValueError(f"{layer.layer_name}: row_scale must be 'qlinear', 'rms', 'auto' or a tensor, "
                                 f"got {row_scale!r}")
        else:
            # any container: a tensor (any stride), a list, a numpy array (negative strides too)
            scale = _backend.as_tensor(row_scale).detach().to(device="cpu", dtype=torch.float32).reshape(-1).contiguous()
            if scale.shape != (out_f,) or not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
                raise ValueError(f"{layer.layer_name}: row_scale must be {out_f} finite positive values")
        scale = scale.to(torch.float32)  # finite: the rms of finite float32 values (taken in float64)
        codes, t, (_, overloaded, clipped) = layer._encode_rows(w, scale)
        if isinstance(row_scale, str) and row_scale == "auto":
            codes, t, scale = layer._search_row_scales(w, scale, codes, t)
        if overloaded:
            warnings.warn(f"{layer.layer_name}: {overloaded} block(s) still overload after T={config.max_t()}",
                          RuntimeWarning, stacklevel=2)
        if clipped:  # some blocks were clipped: rows that lost what the range cannot hold
            rel, zeroed = layer._row_damage(w, scale, codes, t)
            bad = int(((rel > CLIPPED_ERROR_WARNING) | (zeroed > ZEROED_ROW_WARNING)).sum())
            if bad:
                warnings.warn(f"{layer.layer_name}: {bad} row(s) keep a relative squared error above "
                              f"{CLIPPED_ERROR_WARNING} (worst {float(rel.max()):.3f}) or decode over {ZEROED_ROW_WARNING:.0%} of their "
                              f"nonzero weights to 0 (worst {float(zeroed.max()):.0%}): weights beyond the range "
                              f"of the row scale and T <= {config.max_t()} were clipped (heavy tails, a few very "
                              "large weights; row_scale='auto', t_group=1, a config with a larger alpha or E8 "
                              "widen it)", RuntimeWarning, stacklevel=2)
        packed = np.empty(tuple(layer.codes.shape), np.uint8)
        nibbles = np.empty((out_f, int(_native.t_row_bytes(layer.t_units))), np.uint8)
        _native.pack(config.native(), out_f, layer.blocks, codes, t, packed, nibbles, layer.t_group)  # checks codes, T
        stream, _ = layer._entropy_code(t)
        dev = weight.device
        layer.codes = torch.from_numpy(packed).to(dev)
        layer._set_t(t, layer.t_units, dev)
        layer.t_lengths = layer.t_lengths.to(dev)
        layer._hold_t_code(stream)
        layer.row_scale = scale.to(dev)
        if bias is not None:
            layer.bias = bias.detach().to(device=dev, dtype=torch.float32).clone()
        return layer

    # Row-scale factors row_scale="auto" tries in the rows it searches (besides 1).
    AUTO_ROW_SCALE_FACTORS = (0.5, 0.7, 0.85, 1.25, 1.5, 2.0, 2.5, 3.0)

    def _encode_rows(self, w: torch.Tensor, scale: torch.Tensor):
        """deploy_encode of the rows of ``w`` (float32, rows x in) divided by ``scale``: (codes
        (rows * blocks, M, d), T (rows * t_units), (units retried, blocks overloaded, blocks clipped))."""
        d, rows = self.config.d, w.shape[0]
        work = (w / scale[:, None]).numpy()
        pad = self.blocks * d - w.shape[1]
        if pad:
            work = np.concatenate([work, np.zeros((rows, pad), np.float32)], axis=1)
        codes = np.empty((rows * self.blocks, self.config.M, d), np.uint8)
        t = np.empty(rows * self.t_units, np.uint8)
        stats = _native.encode(self.config.native(), np.ascontiguousarray(work, dtype=np.float32), rows, self.blocks,
                               self.t_group, codes, t)
        return codes, t, tuple(int(v) for v in stats)

    def _row_errors(self, w: torch.Tensor, scale: torch.Tensor, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Squared error of each row's decode (codes and T of _encode_rows, times ``scale``) against ``w``."""
        from lowbit._native import coset as _coset_native

        d, rows = self.config.d, w.shape[0]
        out = np.empty((rows * self.blocks, d), np.float32)
        _coset_native.decode(self.config.native(), codes, np.ascontiguousarray(np.repeat(t, self.t_group)), out)
        dec = out.reshape(rows, -1)[:, : w.shape[1]].astype(np.float64) * scale.numpy()[:, None]
        return ((dec - w.numpy()) ** 2).sum(axis=1)

    def _row_damage(self, w, scale, codes, t):
        """Per row: the relative squared error of the decode, and the fraction of its nonzero weights
        that decode to 0."""
        from lowbit._native import coset as _coset_native

        d, rows = self.config.d, w.shape[0]
        out = np.empty((rows * self.blocks, d), np.float32)
        _coset_native.decode(self.config.native(), codes, np.ascontiguousarray(np.repeat(t, self.t_group)), out)
        dec = out.reshape(rows, -1)[:, : w.shape[1]].astype(np.float64) * scale.numpy()[:, None]
        ref = w.numpy().astype(np.float64)
        rel = ((dec - ref) ** 2).sum(axis=1) / np.maximum((ref ** 2).sum(axis=1), 1e-300)
        nonzero = ref != 0
        zeroed = (nonzero & (dec == 0)).sum(axis=1) / np.maximum(nonzero.sum(axis=1), 1)
        return rel, zeroed

    def _search_row_scales(self, w, scale, codes, t):
        """row_scale="auto": the rows whose relative squared error is above 1.5 times the layer's
        median, or where some T reaches the config's largest (rows with outliers or heavy tails, whose
        range the T steps do not cover at the rms), take the rms times the factor of
        AUTO_ROW_SCALE_FACTORS (or 1) that gives the row the lowest squared error. Returns (codes, T,
        scale)."""
        units, per_row = self.t_units, self.blocks * self.config.M * self.config.d
        err0 = self._row_errors(w, scale, codes, t)
        rel = err0 / np.maximum(w.double().pow(2).sum(dim=1).numpy(), 1e-300)
        hit = np.nonzero((t.reshape(-1, units).max(axis=1) >= self.config.max_t()) | (rel > 1.5 * np.median(rel)))[0]
        if hit.size == 0:
            return codes, t, scale
        idx = torch.from_numpy(hit)
        sub_w, base = w[idx], scale[idx]
        codes3 = codes.reshape(-1, per_row)
        t2 = t.reshape(-1, units)
        best_err = err0[hit]
        best_scale = base.clone()
        for f in self.AUTO_ROW_SCALE_FACTORS:
            s_f = base * f
            c_f, t_f, _ = self._encode_rows(sub_w, s_f)
            err = self._row_errors(sub_w, s_f, c_f, t_f)
            better = np.nonzero(err < best_err)[0]
            if better.size:
                best_err[better] = err[better]
                best_scale[torch.from_numpy(better)] = s_f[torch.from_numpy(better)]
                codes3[hit[better]] = c_f.reshape(-1, per_row)[better]
                t2[hit[better]] = t_f.reshape(-1, units)[better]
        scale = scale.clone()
        scale[idx] = best_scale
        return codes3.reshape(codes.shape), t2.reshape(-1), scale

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: QuantizationConfig, row_scale: Union[str, torch.Tensor] = "qlinear",
                    name: Optional[str] = None, t_group: int = 1) -> "PackedLinear":
        return cls.from_weight(linear.weight, linear.bias, config, row_scale=row_scale, name=name, t_group=t_group)

    @classmethod
    def from_qlinear(cls, qlinear: nn.Module, name: Optional[str] = None) -> "PackedLinear":
        """The deployed form of a ``coset.QLinear`` (what ``QLinear.deploy()`` returns): the same
        row scales and config as its forward."""
        return cls.from_weight(qlinear.weight, qlinear.bias, qlinear.config, row_scale="qlinear", name=name)

    # ---- state dict -----------------------------------------------------------------------

    def get_extra_state(self) -> torch.Tensor:
        """The config, shape and bias flag as the binary record of :func:`layer_record` (30 bytes)."""
        return layer_record(self.config, self.in_features, self.out_features, self.bias is not None, self.t_group)

    def set_extra_state(self, state: Any) -> None:  # handled in _load_from_state_dict
        pass

    @classmethod
    def from_state_dict(cls, state_dict: dict, name: Optional[str] = None, device: Any = None) -> "PackedLinear":
        """A layer of the shape, bias and config its state dict records (``_extra_state``, either format),
        loaded from it. Raises ``ValueError`` naming the layer for anything :meth:`load_state_dict` refuses."""
        label = name or "PackedLinear"
        if not isinstance(state_dict, dict) or "_extra_state" not in state_dict:
            raise ValueError(f"{label}: packed state dict lacks '_extra_state'")
        saved = read_layer_record(state_dict["_extra_state"], label)
        # The record's feature counts size the layer's buffers: check them against the saved codes
        # first, so that a corrupt record raises instead of allocating up to 2**32 rows.
        codes = state_dict.get("codes")
        if not isinstance(codes, torch.Tensor):
            raise ValueError(f"{label}: packed state dict lacks 'codes'")
        config = cls._checked_config_named(saved.config, label)
        blocks = -(-saved.in_features // (config.d * saved.t_group)) * saved.t_group
        want = (saved.out_features, int(_native.code_row_bytes(config.native(), blocks)))
        if tuple(codes.shape) != want:
            raise ValueError(f"{label}: 'codes' has shape {tuple(codes.shape)}, the record's {saved.in_features} -> "
                             f"{saved.out_features} layer needs {want}")
        if ("bias" in state_dict) != saved.bias:
            raise ValueError(f"{label}: packed state dict {'lacks' if saved.bias else 'has'} a 'bias', its config "
                             f"record says the layer has {'one' if saved.bias else 'none'} (corrupt)")
        layer = cls(saved.in_features, saved.out_features, saved.config, bias=saved.bias, name=name, device=device,
                    t_group=saved.t_group)
        layer.load_state_dict(state_dict)
        return layer

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Loading replaces the buffers: made as ordinary tensors even under torch.inference_mode(), as
        # nn.Linear's parameters stay ordinary when a state dict is copied into them there.
        with torch.inference_mode(False):
            self._load_packed_state(state_dict, prefix, missing_keys, unexpected_keys)

    def _load_packed_state(self, state_dict, prefix, missing_keys, unexpected_keys) -> None:
        name = self.layer_name
        keys = list(_STATE_KEYS) + (["bias"] if self.bias is not None else []) + ["_extra_state"]
        missing = [prefix + k for k in keys if prefix + k not in state_dict]
        if len(missing) == len(keys):
            # none of this layer's keys (a partial checkpoint): reported in missing_keys like any
            # module's, so load_state_dict raises its "Missing key(s)" error, or with strict=False
            # keeps the layer as it is (torch passes strict=True here whatever the caller's is)
            missing_keys.extend(missing)
            return
        if missing:  # a packed form only partly there, which cannot be loaded
            raise ValueError(f"{name}: packed state dict lacks '{missing[0]}'")
        saved = read_layer_record(state_dict[prefix + "_extra_state"], name)
        if (saved.in_features, saved.out_features) != (self.in_features, self.out_features):
            raise ValueError(f"{name}: packed state dict is for a {saved.in_features} -> "
                             f"{saved.out_features} layer, this one is {self.in_features} -> {self.out_features}")
        if (prefix + "bias" in state_dict) != saved.bias:
            raise ValueError(f"{name}: packed state dict {'lacks' if saved.bias else 'has'} a 'bias', its config "
                             f"record says the layer has {'one' if saved.bias else 'none'} (corrupt)")
        if saved.bias != (self.bias is not None):
            raise ValueError(f"{name}: packed state dict {'has' if saved.bias else 'lacks'} a bias, this layer "
                             f"{'does not' if self.bias is None else 'does'}")
        if saved.t_group != self.t_group:
            raise ValueError(f"{name}: packed state dict has t_group={saved.t_group}, this layer has "
                             f"t_group={self.t_group}; build the layer with the saved t_group to load it "
                             "(PackedLinear.from_state_dict)")
        config = self._checked_config(saved.config)
        if config != self.config:
            raise ValueError(f"{name}: packed state dict has config {_config_repr(config)}, this layer has "
                             f"{_config_repr(self.config)}; build the layer with the saved config to load it "
                             "(PackedLinear.from_state_dict)")
        blocks = self.blocks
        row_bytes = int(_native.code_row_bytes(config.native(), blocks))

        def tensor(key: str, dtype: torch.dtype, shape: Optional[tuple]) -> torch.Tensor:
            v = state_dict[prefix + key]
            if not isinstance(v, torch.Tensor) or v.dtype != dtype:
                raise ValueError(f"{name}: '{key}' must be a {dtype} tensor, got "
                                 f"{v.dtype if isinstance(v, torch.Tensor) else type(v).__name__}")
            if shape is not None and tuple(v.shape) != shape:
                raise ValueError(f"{name}: '{key}' has shape {tuple(v.shape)}, expected {shape}")
            return v.detach().cpu().contiguous()

        codes = tensor("codes", torch.uint8, (self.out_features, row_bytes))
        t_code = tensor("t_code", torch.uint8, None)
        if t_code.dim() != 1:
            raise ValueError(f"{name}: 't_code' must be 1-D, got shape {tuple(t_code.shape)}")
        lengths = tensor("t_lengths", torch.uint8, (16,))
        scale = tensor("row_scale", torch.float32, (self.out_features,))
        if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
            raise ValueError(f"{name}: 'row_scale' must be finite and positive")
        bias = None
        if self.bias is not None:
            bias = tensor("bias", torch.float32, (self.out_features,))
            if not bool(torch.isfinite(bias).all()):
                raise ValueError(f"{name}: 'bias' contains NaN or Inf")
        used_bits = blocks * config.M * config.d * code_bits(config.q)
        if used_bits % 8:
            tail = codes[:, -1].numpy() >> (used_bits % 8)
            if tail.any():
                raise ValueError(f"{name}: 'codes' has non-zero padding bits (codes out of range)")
        if config.q != 1 << code_bits(config.q):  # ceil(log2 q) bits also hold the invalid values q .. 2^b - 1
            bad = unpack_codes(codes, blocks, config) >= config.q
            if bool(bad.any()):
                row = int(bad.flatten(1).any(dim=1).nonzero()[0])
                raise ValueError(f"{name}: 'codes' holds a code >= q={config.q} (row {row}; codes out of range)")
        t = np.empty(self.out_features * self.t_units, np.uint8)
        try:
            _native.t_decode(t_code.numpy(), lengths.numpy(), config.max_t(), t)
        except ValueError as exc:
            raise ValueError(f"{name}: 't_code': {exc}") from None
        dev = self.codes.device
        self.config, self.blocks = config, blocks
        self.codes = codes.to(dev)
        self.t_lengths = lengths.to(dev)
        self.row_scale = scale.to(dev)
        self._set_t(t, self.t_units, dev)
        self._hold_t_code(t_code)
        if bias is not None:
            self.bias = bias.to(dev)
        for k in state_dict:
            if k.startswith(prefix) and k[len(prefix):] not in keys and "." not in k[len(prefix):]:
                unexpected_keys.append(k)

    def _apply(self, fn, *args, **kwargs):
        # .to(device) moves everything; .half() / .double() must not round the float32 row scales
        # and bias the packed form is defined with: keep those and only follow the device.
        kept = {k: self._buffers[k] for k in ("row_scale", "bias") if self._buffers.get(k) is not None}
        super()._apply(fn, *args, **kwargs)
        for k, v in kept.items():
            now = self._buffers[k]
            if now.dtype != torch.float32:  # a cast: the float32 values, on the new device
                self._buffers[k] = torch.empty_like(now, dtype=torch.float32) if v.is_meta else v.to(now.device)
        return self

    # ---- sizes ------------------------------------------------------------------------------

    def side_bytes(self) -> int:
        """Bytes besides the codes that ``state_dict()`` saves: T's code and lengths, the row scales and
        the config record (``_extra_state``; the bias is not counted)."""
        extra = self.get_extra_state().numel()
        return int(self._t_code_bytes + self.t_lengths.numel() + 4 * self.row_scale.numel() + extra)

    def bits_per_weight(self) -> float:
        """Stored bits per weight: codes, T, row scales and the config record (the bias is not a weight)."""
        return 8.0 * (self.codes.numel() + self.side_bytes()) / (self.out_features * self.in_features)

    def memory_bytes(self) -> int:
        """Bytes the kernels read: codes, T in its in-memory form (``t_bits`` per block, the escapes
        and their int32 row offsets), row scales (and bias)."""
        t = self.t_packed.numel() + self.t_escapes.numel() + (4 * self.t_escape_start.numel() if self.t_bits < 4 else 0)
        return int(self.codes.numel() + t + 4 * self.row_scale.numel()
                   + (4 * self.bias.numel() if self.bias is not None else 0))

    def resident_bytes(self) -> int:
        """Every byte the layer holds: :meth:`memory_bytes` plus T's 16 code lengths (and the saved T
        stream in the rare case it cannot be rebuilt from the in-memory T: ``state_dict()`` rebuilds
        it otherwise)."""
        return int(self.memory_bytes() + self.t_code.numel() + self.t_lengths.numel())

    # ---- evaluation ---------------------------------------------------------------------------

    def decoded_weight(self) -> torch.Tensor:
        """W^ (out x in) in float32, for inspection (never used by forward); on the meta device an
        empty meta tensor of that shape."""
        if self.codes.is_meta:
            return torch.empty(self.out_features, self.in_features, device="meta")
        if self.codes.device.type == "cpu" and not _backend.get_backend() == "torch":
            out = np.empty((self.out_features, self.blocks * self.config.d), np.float32)
            _native.decode(self._native_config(), self.blocks, self.codes.numpy(), *self._t_args(),
                           self.row_scale.numpy(), out)
            return torch.from_numpy(out[:, : self.in_features])
        w = self._torch_scaled_ints()  # (out, blocks*d): s_T * w
        c = 2.0 if self.config.lattice_type == "E8" else 1.0
        return (self.row_scale[:, None] * w / c)[:, : self.in_features]

    def _check_input(self, x: Any) -> None:
        name = self.layer_name
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: input must be a torch tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: input must be floating point, got {x.dtype}")
        if x.dim() == 0:
            raise ValueError(f"{name}: input must have at least one dimension (the {self.in_features} features), "
                             "got a 0-d tensor")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{name}: input has {x.shape[-1]} features, expected {self.in_features}")
        _backend.check_same_device("input", x, name, self.codes.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if torch.is_grad_enabled() and x.requires_grad:
            # Like nn.Linear in eval mode, gradients reach earlier layers: the output is the
            # packed forward's (bit for bit); the backward is grad_y @ W^ (the decoded weight),
            # treating the activations' int8 rounding as identity (straight-through).
            return _PackedLinearFn.apply(x, self)
        return self._forward_packed(x)

    def _forward_packed(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        if x.is_meta:  # shape propagation, as nn.Linear on the meta device
            return torch.empty(*lead, self.out_features, dtype=_backend.linear_output_dtype(x), device="meta")
        if x.dtype == torch.float64 and x.numel() and bool((torch.isfinite(x) & (x.abs() > _FLOAT32_MAX)).any()):
            raise ValueError(f"{self.layer_name}: input has finite float64 values beyond float32's range "
                             f"(max |x| = {float(x.abs().max()):.3g}); the kernels compute in float32")
        x2 = x.detach().reshape(-1, self.in_features).to(torch.float32)
        if _backend.select(x.device, self.layer_name) == "cpp":
            y = self._forward_native(x2)
        else:
            y = self._forward_torch(x2)
        return y.reshape(*lead, self.out_features).to(_backend.linear_output_dtype(x))

    def _padded(self, x2: torch.Tensor) -> torch.Tensor:
        pad = self.blocks * self.config.d - self.in_features
        return F.pad(x2, (0, pad)) if pad else x2

    def _forward_native(self, x2: torch.Tensor) -> torch.Tensor:
        xp = np.ascontiguousarray(self._padded(x2).numpy())
        out = np.empty((xp.shape[0], self.out_features), np.float32)
        bias = None if self.bias is None else np.ascontiguousarray(self.bias.numpy())
        _native.linear(self._native_config(), self.blocks, np.ascontiguousarray(self.codes.numpy()), *self._t_args(),
                       np.ascontiguousarray(self.row_scale.numpy()), bias, xp, out, self.layer_name)
        return torch.from_numpy(out)

    def _torch_scaled_ints(self) -> torch.Tensor:
        """s_T * w per weight (out x blocks*d): the C-scaled integer decode times the T gain."""
        from ._deploy_torch import decode_scaled_ints, scale_table, unpack_codes, unpack_t

        cfg = self.config
        codes = unpack_codes(self.codes, self.blocks, cfg)
        w = decode_scaled_ints(codes, cfg)  # (out, blocks, d) float32 integers
        t = unpack_t(self.t_packed, self.t_bits, self.t_escapes, self.t_units)
        if self.t_group != 1:  # a T per group: each of its blocks
            t = t.repeat_interleave(self.t_group, dim=1)
        return (scale_table(cfg, w.device)[t][..., None] * w).reshape(self.out_features, -1)

    def _forward_torch(self, x2: torch.Tensor) -> torch.Tensor:
        if not bool(torch.isfinite(x2).all()):
            raise ValueError(f"{self.layer_name}: input contains NaN or Inf")
        xp = self._padded(x2)
        amax = xp.abs().amax(dim=1, keepdim=True)
        xs = amax / 127.0
        # xs == 0 (a zero row, or max|x| / 127 rounding to 0 below about 1.8e-43): xq = 0, as in C++.
        xq = torch.where(xs > 0, torch.clamp(torch.round(xp / torch.where(xs > 0, xs, torch.ones_like(xs))),
                                               -127, 127), torch.zeros_like(xp))
        c = 2.0 if self.config.lattice_type == "E8" else 1.0
        y = F.linear(xq, self._torch_scaled_ints()) * xs
        y = y * self.row_scale / c
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        c = self.config
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"lattice={c.lattice_type}, q={c.q}, M={c.M}, "
                + (f"t_group={self.t_group}, " if self.t_group != 1 else "")
                + f"bits_per_weight={self.bits_per_weight():.3f}")


class _PackedLinearFn(torch.autograd.Function):
    """y = PackedLinear's packed forward; dL/dx = dL/dy @ W^ (straight-through for the int8
    activation rounding). The packed weights are buffers: no gradient flows to them."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: "PackedLinear") -> torch.Tensor:
        ctx.layer = layer
        ctx.x_dtype = x.dtype
        with torch.no_grad():
            return layer._forward_packed(x)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        layer = ctx.layer
        w = layer.decoded_weight().to(device=grad_y.device, dtype=torch.float32)
        grad_x = grad_y.to(torch.float32) @ w
        return grad_x.to(ctx.x_dtype), None

"""QLinear: a linear layer trained with HNLQ-quantized weights (straight-through estimator)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from lowbit._deps import require_torch

require_torch("coset.QLinear")

import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit import _backend

from .config import QuantizationConfig
from .lattices import Lattice, lattice_for
from .quant import optimal_beta, quantize_tensor

_BITS_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
              torch.float64: torch.int64}


def row_rms(w: torch.Tensor) -> torch.Tensor:
    """The rms of each row of ``w`` (..., n) as float32, taken in float64 (so that w**2 neither
    underflows for tiny weights nor overflows for huge ones); zero rows give 1. QLinear's row scales
    and PackedLinear's (``row_scale="qlinear"`` / ``"rms"``) both start from it, so they agree bit for bit."""
    rms = w.detach().double().pow(2).mean(dim=-1).sqrt().to(torch.float32)
    return torch.where(rms > 0, rms, torch.ones_like(rms))


def quantize_rows(t: torch.Tensor, config: QuantizationConfig) -> torch.Tensor:
    """``t`` (..., n) quantized in blocks of d along its last axis, one scale per row, on t's device.

    Row r is divided by ``rms_r * optimal_beta(...)``, the scale that minimises the MSE of a
    Gaussian row (overloads are then rare and handled by T), quantized with ``config`` (whose
    ``beta`` multiplies that scale), and multiplied back. Zero rows stay zero. No gradient flows
    through this. Same dtype and shape out. CPU tensors run the C++ kernels, other devices the
    bit-identical PyTorch twin (Kaplan & Ordentlich, arXiv 2505.13164, Algorithms 1 and 2).
    """
    with torch.no_grad():
        w = t.detach().to(torch.float32)
        row_scale = row_rms(w) * optimal_beta(config.lattice_type, config.q, config.M)  # weights are centred
        out = quantize_tensor(w, lattice_for(config.lattice_type), config, scale=row_scale)
    return out.to(dtype=t.dtype)


def quantize_weight_rows(weight: torch.Tensor, config: QuantizationConfig) -> torch.Tensor:
    """Weight (out, in) quantized in blocks of d along the input dimension, one scale per row
    (:func:`quantize_rows`), on the weight's device."""
    return quantize_rows(weight, config)


class _StraightThrough(torch.autograd.Function):
    """Forward: ``quantized`` exactly; backward: the gradient to ``weight`` unchanged (the
    straight-through estimator of ``w + (W^ - w).detach()``, without its float rounding)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return quantized.view_as(quantized)  # no copy

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


class QLinear(nn.Linear):
    """``nn.Linear`` whose forward pass uses HNLQ-quantized weights (and optionally activations).

    Signature and attributes follow the namesake (mlsquare/coset ``coset.nn.QLinear``)::

        QLinear(in_features, out_features, config, lattice=None, quantize_weights=True,
                quantize_activations=False, quantize_every=1, use_lut=False, bias=True,
                device=None, dtype=None)

    ``lattice`` defaults to the config's lattice (and must match it). Training: the forward uses
    ``W^ = Q(W)`` on every ``quantize_every``-th training forward (0: never; the others use W)
    and the backward passes the gradient straight through (``W + (W^ - W).detach()``); with
    ``quantize_activations`` the input rows are quantized the same way (straight through too).
    Evaluation: always ``W^``, cached until the weight really changes (see :meth:`quantized_weight`).
    ``use_lut`` is accepted for the namesake's code; the product is then still ``x @ W^.T``
    (what the lookup-table product computes, up to float summation order). Any ``in_features``
    works (rows are zero-padded to a multiple of d; the namesake requires multiples of d).

    Inputs must be on the weight's device (``ValueError`` naming both devices otherwise); every
    computation stays there. Raises ``ValueError`` for a config that is not a
    :class:`QuantizationConfig`, one with ``with_dither``, a lattice that is not a lattice object
    or does not match ``config.lattice_type``, and a negative ``quantize_every``.
    """

    def __init__(self, in_features: int, out_features: int, config: QuantizationConfig,
                 lattice: Optional[Lattice] = None, quantize_weights: bool = True,
                 quantize_activations: bool = False, quantize_every: int = 1, use_lut: bool = False,
                 bias: bool = True, device=None, dtype=None) -> None:
        if not isinstance(config, QuantizationConfig):
            raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
        if config.with_dither:
            raise ValueError("config: with_dither is not supported for weights (the dither would change every step)")
        if lattice is None:
            lattice = lattice_for(config.lattice_type)
        elif not isinstance(lattice, Lattice):
            raise ValueError(f"lattice: expected a Z2Lattice, D4Lattice or E8Lattice, got {type(lattice).__name__} "
                             "(the 4th positional argument is `lattice`, as in coset; pass quantize_weights= "
                             "by keyword)")
        elif lattice.name != config.lattice_type:
            raise ValueError(f"lattice: {type(lattice).__name__} does not match config.lattice_type="
                             f"{config.lattice_type!r}")
        if isinstance(quantize_every, bool) or not isinstance(quantize_every, int) or quantize_every < 0:
            raise ValueError(f"quantize_every: expected an integer >= 0, got {quantize_every!r}")
        factory = {}
        if device is not None:
            factory["device"] = device
        if dtype is not None:
            factory["dtype"] = dtype
        super().__init__(in_features, out_features, bias=bias, **factory)
        self.config = config
        self.lattice = lattice
        self.quantize_weights = bool(quantize_weights)
        self.quantize_activations = bool(quantize_activations)
        self.quantize_every = quantize_every
        self.use_lut = bool(use_lut)
        self._step_count = 0
        # (key, weight snapshot, W^) or None: ONE attribute, replaced whole, so a forward running in
        # another thread reads a consistent triple (never a new key with the previous W^).
        self._qcache: Optional[Tuple[tuple, torch.Tensor, torch.Tensor]] = None

    # --- the cached quantized weight (evaluation) ---------------------------------------------

    def _weight_key(self) -> tuple:
        w = self.weight
        return (w._version, w.data_ptr(), w.device, w.dtype, tuple(w.shape), self.config)

    def _cache_entry(self) -> Optional[Tuple[tuple, torch.Tensor, torch.Tensor]]:
        entry = self.__dict__.get("_qcache")
        return entry if isinstance(entry, tuple) else None  # None also for a layer pickled by an earlier release

    @property
    def _cache_snapshot(self) -> Optional[torch.Tensor]:
        """The copy of the weight the cached W^ was computed from (None when nothing is cached)."""
        entry = self._cache_entry()
        return None if entry is None else entry[1]

    def _snapshot_matches(self, snapshot: torch.Tensor) -> bool:
        """Bitwise equality with the weight the cache was computed from.

        ``_version`` misses in-place writes through ``weight.data`` (``.data`` has its own
        version counter), so the key alone cannot prove the weight unchanged: the cache also
        keeps a copy and compares bits (NaN-safe; one pass over the weight, far cheaper than
        quantizing it again).
        """
        w = self.weight.detach()
        view = _BITS_VIEW.get(w.dtype)
        if view is None:
            return bool(torch.equal(w, snapshot))
        return bool(torch.equal(w.view(view), snapshot.view(view)))

    def quantized_weight(self) -> torch.Tensor:
        """``W^``, the quantized weight (no gradient), on the weight's device and dtype.

        Cached: recomputed only when the weight changed (optimizer steps, ``copy_``,
        ``load_state_dict``, writes through ``.data``, ``.to()``; also a new config). The key is
        the weight's ``_version``, data pointer, device, dtype, shape and the config, plus a
        bitwise comparison with a copy of the weight the cache was made from.
        """
        key = self._weight_key()
        entry = self._cache_entry()  # read once: another thread may replace it meanwhile
        if entry is not None and entry[0] == key and self._snapshot_matches(entry[1]):
            return entry[2]
        # Built as ordinary tensors even under torch.inference_mode(): an inference tensor kept in the
        # cache would break every later forward with autograd ("Inference tensors cannot be saved
        # for backward"), which nn.Linear allows after an inference-mode pass.
        with torch.inference_mode(False):
            snapshot = self.weight.detach().clone()
            value = self._quantize_weight(self.weight)
        self._qcache = (key, snapshot, value)
        return value

    def _quantize_weight(self, w: torch.Tensor) -> torch.Tensor:
        """``quantize_weight_rows(w)``, refusing a meta or non-finite weight with a ValueError
        that names this layer's weight (not the encoder's vectors)."""
        if w.is_meta:
            raise ValueError("QLinear: the layer's weight is a meta tensor, which holds no data to quantize; "
                             "materialise it first (e.g. module.to_empty(device=...) and load the weights)")
        bad = ~torch.isfinite(w.detach())
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0, 0])
            raise ValueError(f"QLinear: the layer's weight contains NaN or Inf (row {row}); cannot quantize it")
        return quantize_weight_rows(w, self.config)

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"QLinear: input must be a torch tensor, got {type(x).__name__}")
        _backend.check_same_device("x", x, "the layer's weight", self.weight.device)
        if not x.is_floating_point():
            raise ValueError(f"QLinear: input must be floating point, got {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"QLinear: input has {x.shape[-1] if x.dim() else 0} features (shape {tuple(x.shape)}), "
                             f"expected in_features={self.in_features}")
        if not x.is_meta and not bool(torch.isfinite(x.detach()).all()):
            raise ValueError("QLinear: input contains NaN or Inf")

    def clear_cache(self) -> None:
        """Drop the cached quantized weight (and the weight copy kept to validate it)."""
        self._qcache = None

    def train(self, mode: bool = True) -> "QLinear":
        if mode:
            self.clear_cache()  # training changes the weight every step: keep no copy around
        return super().train(mode)

    # --- forward ----------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if x.is_meta and self.weight.is_meta:
            # Shape propagation (like nn.Linear on the meta device): there is no data to quantize.
            return F.linear(x, self.weight, self.bias)
        if self.training:
            quantize_now = self.quantize_every > 0 and self._step_count % self.quantize_every == 0
            if self.quantize_every > 0:
                self._step_count += 1
            if not quantize_now:
                return F.linear(x, self.weight, self.bias)
            w = self.weight
            if self.quantize_weights:
                w = w + (self._quantize_weight(w) - w).detach()  # straight-through estimator
        else:
            w = self.weight
            if self.quantize_weights:
                # The cached W^ (bit for bit); with grad enabled the gradient still reaches the
                # float weight straight through, as in training (eval() switches only the cache).
                cached = self.quantized_weight()
                w = _StraightThrough.apply(self.weight, cached) if torch.is_grad_enabled() and self.weight.requires_grad \
                    else cached
        if self.quantize_activations:
            x = x + (quantize_rows(x, self.config) - x).detach()
        return F.linear(x, w, self.bias)

    # --- deployment ---------------------------------------------------------------------------

    def deploy(self, name: Optional[str] = None, row_scale: str = "qlinear", t_group: int = 1) -> nn.Module:
        """The deployed layer: a :class:`coset.deploy.PackedLinear` that holds only the packed
        codes, T, row scales and bias, and runs the packed kernels (docs/coset.md).

        ``row_scale="qlinear"`` keeps this layer's row scales and config, so the deployed weights
        are exactly the ones its forward uses (up to float rounding); ``"rms"`` suits tuned
        configs (:func:`coset.deployable_config`); ``t_group=4`` (D4) shares one T per 16 weights
        (:meth:`coset.deploy.PackedLinear.from_weight`). The deployed layer quantizes its input rows to
        int8 (one scale per row): ``quantize_activations=True`` is not reproduced, and the weights
        are always quantized (``quantize_weights=False`` is not reproduced either); either switch
        warns (``UserWarning``), since the deployed outputs then differ from this layer's.
        ``ValueError`` (naming ``name``) for a config the kernels cannot run or NaN/Inf weights.
        """
        from .deploy import PackedLinear

        if self.quantize_activations or not self.quantize_weights:
            import warnings

            what = "quantize_activations=True" if self.quantize_activations else "quantize_weights=False"
            warnings.warn(f"{name or 'QLinear'}: deploy() does not reproduce {what}: the deployed layer quantizes "
                          "its weights with the config and its inputs to int8 per row, so its outputs differ from "
                          "this layer's", UserWarning, stacklevel=2)

        return PackedLinear.from_weight(self.weight, self.bias, self.config, row_scale=row_scale,
                                        name=name or "QLinear", t_group=t_group)

    # --- the namesake's helpers ---------------------------------------------------------------

    def get_quantization_stats(self) -> Dict[str, Any]:
        """Step count, switches, lattice and config (the namesake's keys)."""
        return {
            "step_count": self._step_count,
            "quantize_weights": self.quantize_weights,
            "quantize_activations": self.quantize_activations,
            "quantize_every": self.quantize_every,
            "use_lut": self.use_lut,
            "lattice_type": self.lattice.name,
            "config": self.config.to_dict(),
        }

    def reset_step_count(self) -> None:
        """Restart the ``quantize_every`` schedule."""
        self._step_count = 0

    def extra_repr(self) -> str:
        c = self.config
        return (f"{super().extra_repr()}, lattice={c.lattice_type}, q={c.q}, M={c.M}, "
                f"quantize_weights={self.quantize_weights}, quantize_activations={self.quantize_activations}, "
                f"quantize_every={self.quantize_every}")

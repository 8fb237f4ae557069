"""Shared machinery of BitLab layers: config and per-device kernel resolution, input checks, the
packed weight cache (rebuilt after any write to the weights), deployment, dtype casts, and packed
state dicts (lowbit's and the namesake's)."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Optional, Tuple

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitcore.kernels import KernelRegistry
from bitcore.kernels.base import normalize_qweight
from bitcore.ops import packing
from lowbit._backend import check_same_device

PACKED_WEIGHT_KEY = "packed_weight"  # TQ1_B3 bytes of a deployed layer's state dict
# Derived views the namesake keeps as buffers in eval mode; here non-persistent (the packed form is
# what is stored), and accepted when loading.
QWEIGHT_KEY = "qweight"
QWEIGHT_SCALE_KEY = "qweight_scale"
_LOCK_INIT = threading.Lock()
# Every layer that has a cache lock. A process forked while another thread held one of them (a
# forward in a thread pool, a DataLoader worker forked meanwhile) would inherit it locked by a
# thread that does not exist there: the child gets fresh locks instead.
_LOCKED_LAYERS: "weakref.WeakSet[BitLayerBase]" = weakref.WeakSet()


def _fresh_locks_after_fork() -> None:
    global _LOCK_INIT
    _LOCK_INIT = threading.Lock()
    for layer in list(_LOCKED_LAYERS):
        layer.__dict__["_cache_lock"] = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)
# Buffers kept in float32 whatever dtype the module is cast to (they are exact quantization scales).
_FLOAT32_BUFFERS = ("weight_scale", QWEIGHT_SCALE_KEY)


def resolve_config(quant_config: Optional[BitQuantConfig]) -> BitQuantConfig:
    if quant_config is None:
        return BitQuantConfig()
    if not isinstance(quant_config, BitQuantConfig):
        raise ValueError(f"quant_config must be a BitQuantConfig or None, got {type(quant_config).__name__}")
    return quant_config


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` (same dtype and shape) hold the same bytes.

    Compared as int64 words where the size allows (about 1.5x faster than ``torch.equal`` on
    floats); a -0.0 written over 0.0 then counts as a change, which only costs a rebuild.
    """
    if not (a.is_contiguous() and b.is_contiguous()):
        return torch.equal(a, b)
    nbytes = a.numel() * a.element_size()
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if nbytes % size == 0 and a.element_size() <= size:
            return torch.equal(a.reshape(-1).view(dtype), b.reshape(-1).view(dtype))
    return torch.equal(a, b)


class _PackedCache:
    """The packed form of the latent weights, and what it was built from.

    ``trits`` / ``scale_view`` are the tensors exposed as the eval-mode ``qweight`` /
    ``qweight_scale`` buffers; ``trits_snapshot`` / ``scale_snapshot`` are copies of what the packed
    form was built from, so writes to those buffers are seen and honoured (:meth:`BitLayerBase._sync_from_qweight`).
    """

    __slots__ = ("key", "snapshot", "packed", "scales", "trits", "scale_view", "trits_snapshot", "scale_snapshot")

    def __init__(self, key, snapshot, packed, scales, trits) -> None:
        self.key = key
        self.snapshot = snapshot
        self.packed = packed
        self.scales = scales
        self.trits = trits
        self.scale_view = None
        self.trits_snapshot = None
        self.scale_snapshot = None


def _shipped_attr_owner(kernel_cls: type, name: str) -> Optional[type]:
    """The class in ``kernel_cls``'s MRO that defines ``name``."""
    for klass in kernel_cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def kernel_overrides(kernel, name: str) -> bool:
    """True when ``name`` (``"forward"``, ``"quantize_weights"``, ``"linear"``) of ``kernel`` is
    defined by a class outside lowbit's shipped kernels (:mod:`bitcore.kernels`), i.e. a user
    kernel - possibly a subclass of a shipped one - overrides it."""
    owner = _shipped_attr_owner(type(kernel), name)
    return owner is not None and not owner.__module__.startswith("bitcore.kernels")


def kernel_ternarize(kernel, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(trits int8 ``[N, K]``, scales float32 ``[N]``) of ``weight`` through ``kernel``: its
    namesake ``quantize_weights`` when a user kernel overrides it, else the packed API's ``ternarize``."""
    if kernel_overrides(kernel, "quantize_weights") and not kernel_overrides(kernel, "ternarize"):
        scale, qweight = kernel.quantize_weights(weight.detach())
        return normalize_qweight(qweight.to(weight.device), scale)
    return kernel.ternarize(weight)


def kernel_linear(kernel, x2d: torch.Tensor, packed: torch.Tensor, in_features: int, scales: torch.Tensor,
                  bias: Optional[torch.Tensor], granularity: str, trits: Optional[torch.Tensor] = None
                  ) -> torch.Tensor:
    """float32 ``[M, N]`` = the kernel applied to float32 ``x2d`` ``[M, K]``.

    A user kernel that overrides the namesake's ``forward`` (and not the packed ``linear``) is
    called as the namesake's layers call it: ``forward(x, qweight_scale, qweight, bias)``;
    otherwise ``linear`` runs on the packed bytes.
    """
    if kernel_overrides(kernel, "forward") and not kernel_overrides(kernel, "linear"):
        if trits is None:
            trits = kernel.unpack(packed, in_features)
        scale = scales[0] if granularity == "per_tensor" else scales
        return kernel.forward(x2d, scale, trits, bias).to(torch.float32)
    return kernel.linear(x2d, packed, in_features, scales, bias)


class BitLayerBase(nn.Module):
    """A layer with an ``out_features x in_features`` ternary weight matrix.

    Subclasses own ``weight`` (float latent weights, ``None`` once deployed) and ``bias``. The
    packed form (I2_S256 bytes + one float32 scale per output row) is cached while the latent
    weights are unchanged, and becomes the layer's only weight state after :meth:`deploy`.

    Cache validity: the cache is rebuilt unless the weight is the same tensor (identity, version
    counter, storage address, device, dtype, shape, strides) AND holds the same bytes as the copy
    the cache was built from (:func:`_same_bits`). The byte check is what catches writes that bypass
    the version counter - ``weight.data.copy_(w)``, ``weight.data.normal_()``, numpy views - so a
    non-deployed layer in eval mode keeps one float copy of its weights and reads both once per
    forward. :meth:`deploy` drops both (inference then reads only the 2-bit weights).
    """

    def __init__(self, in_features: int, out_features: int, quant_config: Optional[BitQuantConfig]) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.quant_config = resolve_config(quant_config)
        self.register_buffer("packed_2bit", None, persistent=False)
        self.register_buffer("weight_scale", None)
        self._cache: Optional[_PackedCache] = None
        self._cache_lock = threading.RLock()
        _LOCKED_LAYERS.add(self)

    def _lock(self) -> threading.RLock:
        """The lock that serialises the cache's check-and-rebuild (and the eval buffers it feeds), so
        forwards from several threads at once never see a half-built cache (``nn.Linear``'s forward
        is safe to call from several threads; so is this one)."""
        lock = self.__dict__.get("_cache_lock")
        if lock is None:  # a module pickled by an earlier release, or an unusual __dict__ copy
            with _LOCK_INIT:
                lock = self.__dict__.get("_cache_lock")
                if lock is None:
                    lock = self.__dict__["_cache_lock"] = threading.RLock()
                    _LOCKED_LAYERS.add(self)
        return lock

    # ---------------------------------------------------------------- device and kernel
    def layer_device(self) -> torch.device:
        """The device of the layer's weights (latent or packed)."""
        for t in (self.weight, self.packed_2bit, self.bias):
            if t is not None:
                return t.device
        return torch.device("cpu")

    @property
    def kernel(self):
        """The kernel the registry picks for the layer's config on the layer's device under the
        backend in force (``kernel.has_cpp_backend`` is True only on the C++ path)."""
        return KernelRegistry.get_kernel_for_config(self.quant_config, self.layer_device())

    # ---------------------------------------------------------------- weights
    @property
    def deployed(self) -> bool:
        """True once :meth:`deploy` dropped the latent weights."""
        return self.packed_2bit is not None

    @property
    def is_deployed(self) -> bool:
        """The namesake's name for :attr:`deployed`."""
        return self.deployed

    def _weight_key(self, w: torch.Tensor) -> tuple:
        # the registry generation: registering a kernel (which may quantize differently) rebuilds
        return (id(w), w._version, w.data_ptr(), w.device, w.dtype, tuple(w.shape), tuple(w.stride()),
                self.quant_config, KernelRegistry._generation)

    def packed_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(I2_S256 uint8 ``[N, Kp / 4]``, scales float32 ``[N]``) of the current weights, on the layer's device.

        Raises:
            ValueError: the latent weights contain NaN or Inf.
        """
        return self._packed_state()[:2]

    def _packed_state(self) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(packed, scales, int8 trits of the eval cache or None) read together under the lock.

        The cache is built of ordinary tensors even under ``torch.inference_mode()`` (inference
        tensors kept in it, and exposed as the ``qweight`` buffers, would refuse later writes and
        autograd outside inference mode, which ``nn.Linear`` allows)."""
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                return self._packed_state()
        lock = self.__dict__.get("_cache_lock") or self._lock()
        with lock:
            return self._packed_state_locked()

    def _packed_state_locked(self) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        if self.deployed:
            return self.packed_2bit, self.weight_scale, None
        w = self.weight.detach()
        if w.is_meta:
            raise ValueError(f"{type(self).__name__}: the weights are on device 'meta' (no values to quantize); "
                             f"materialize them first (to_empty(device=...) and load_state_dict)")
        key = self._weight_key(self.weight)
        cache = self.__dict__.get("_cache")
        if not isinstance(cache, _PackedCache):  # None, or a module pickled by an earlier release
            cache = None
        if cache is None or cache.key != key or not _same_bits(w, cache.snapshot):
            kernel = self.kernel
            trits, scales = kernel_ternarize(kernel, w)
            cache = _PackedCache(key, w.clone(), kernel.pack(trits), scales, trits)
            self._cache = cache
            self._sync_eval_buffers()
        elif QWEIGHT_KEY in self._buffers:
            self._sync_from_qweight(cache)
        return cache.packed, cache.scales, cache.trits

    def _sync_from_qweight(self, cache: _PackedCache) -> None:
        """Eval mode: a write to the ``qweight`` / ``qweight_scale`` buffers (``qweight.data.zero_()``,
        ``copy_``, assigning a new tensor) repacks the weights from them, as the namesake's eval
        forward reads ``qweight``. They stay in force until the latent ``weight`` changes (then
        ``weight`` is requantized and the buffers follow it again)."""
        q = self._buffers.get(QWEIGHT_KEY)
        qs = self._buffers.get(QWEIGHT_SCALE_KEY)
        if q is None or qs is None or cache.trits_snapshot is None:
            return
        if (q is cache.trits and qs is cache.scale_view and q.shape == cache.trits_snapshot.shape
                and qs.shape == cache.scale_snapshot.shape and _same_bits(q, cache.trits_snapshot)
                and _same_bits(qs, cache.scale_snapshot)):
            return
        self._require_shape(QWEIGHT_KEY, q, (self.out_features, self.in_features))
        trits, scales = normalize_qweight(q.to(self.layer_device()), qs)
        cache.packed = self.kernel.pack(trits)
        cache.scales = scales
        cache.trits, cache.scale_view = q, qs
        cache.trits_snapshot, cache.scale_snapshot = q.detach().clone(), qs.detach().clone()

    @property
    def packed_weight(self) -> torch.Tensor:
        """Deployed layers: the TQ1_B3 bytes stored under the ``packed_weight`` state dict key (a
        copy computed from the ``packed_2bit`` buffer). The two names differ on purpose: the
        in-memory buffer ``packed_2bit`` is I2_S256 (2 bits per weight, what the kernels read, not
        saved), the state dict entry ``packed_weight`` is TQ1_B3 (1.6 bits per weight, not a buffer,
        so ``get_buffer("packed_weight")`` raises; use ``get_buffer("packed_2bit")``)."""
        if not self.deployed:
            raise AttributeError(f"'{type(self).__name__}' has no 'packed_weight' before deploy() "
                                 f"(see packed_weights() for the packed form of the latent weights)")
        return self.kernel.to_storage(self.packed_2bit, self.in_features)

    @property
    def scale(self) -> torch.Tensor:
        """The float32 weight scale of each output row, ``[out_features]`` (per tensor: all equal)."""
        return self.packed_weights()[1]

    def _scale_view(self, scales: torch.Tensor) -> torch.Tensor:
        """The namesake's ``qweight_scale``: 0-d per tensor, ``[N]`` per channel (float32, a copy)."""
        return scales[0].clone() if self.quant_config.weight_granularity == "per_tensor" else scales.clone()

    @property
    def qweight(self) -> torch.Tensor:
        """The ternary weights, int8 ``[out_features, in_features]`` with values in {-1, 0, 1}.

        Present in eval mode (a buffer, as in the namesake) and on deployed layers; in training
        mode the attribute does not exist (``AttributeError``), as upstream.
        """
        if self.deployed:
            return self.kernel.unpack(self.packed_2bit, self.in_features)
        if QWEIGHT_KEY not in self._buffers:
            raise AttributeError(f"'{type(self).__name__}' has no attribute 'qweight' in training mode "
                                 f"(call .eval(), or use packed_weights())")
        with self._lock():
            self.packed_weights()
            return self._buffers[QWEIGHT_KEY]

    @property
    def qweight_scale(self) -> torch.Tensor:
        """float32 weight scale: 0-d (``per_tensor``) or ``[out_features]`` (``per_channel``).

        Eval mode and deployed layers only (the namesake's buffer); see :attr:`scale` for ``[N]`` always.
        """
        if self.deployed:
            return self._scale_view(self.weight_scale)
        if QWEIGHT_SCALE_KEY not in self._buffers:
            raise AttributeError(f"'{type(self).__name__}' has no attribute 'qweight_scale' in training mode "
                                 f"(call .eval(), or use .scale)")
        with self._lock():
            self.packed_weights()
            return self._buffers[QWEIGHT_SCALE_KEY]

    def _sync_eval_buffers(self) -> None:
        cache = self._cache
        if QWEIGHT_KEY in self._buffers and cache is not None:
            if cache.scale_view is None:
                cache.scale_view = self._scale_view(cache.scales)
                cache.trits_snapshot = cache.trits.clone()
                cache.scale_snapshot = cache.scale_view.clone()
            self._buffers[QWEIGHT_KEY] = cache.trits
            self._buffers[QWEIGHT_SCALE_KEY] = cache.scale_view

    def _drop_eval_buffers(self) -> None:
        for name in (QWEIGHT_KEY, QWEIGHT_SCALE_KEY):
            self._buffers.pop(name, None)
            self._non_persistent_buffers_set.discard(name)

    # ---------------------------------------------------------------- modes (the namesake's hooks)
    def train(self, mode: bool = True):
        with self._lock():
            super().train(mode)
            if mode:
                self._on_enter_training_mode()
            else:
                self._on_enter_eval_mode()
        return self

    def _on_enter_training_mode(self) -> None:
        """Training mode: the eval-only ``qweight`` / ``qweight_scale`` buffers go away (a deployed
        layer keeps running its packed weights)."""
        self._drop_eval_buffers()

    def _on_enter_eval_mode(self) -> None:
        """Eval mode: quantize now and expose ``qweight`` / ``qweight_scale`` buffers (non-persistent)."""
        if self.deployed or (self.weight is not None and self.weight.is_meta):
            return  # meta weights: nothing to quantize (the forward explains)
        for name in (QWEIGHT_KEY, QWEIGHT_SCALE_KEY):
            self._buffers.setdefault(name, None)
            self._non_persistent_buffers_set.add(name)
        try:
            self.packed_weights()
        except ValueError:  # NaN/Inf latent weights: eval() still succeeds, forward raises
            self._drop_eval_buffers()
            return
        self._sync_eval_buffers()

    def deploy(self) -> "BitLayerBase":
        """Keep only packed weights (2 bits per weight in memory) and switch to eval; inference only
        from now on (``train()`` keeps running the packed kernel). Calling it again does nothing."""
        with self._lock(), torch.inference_mode(False):  # ordinary buffers (see _packed_state)
            self._deploy_locked()
        return self.eval()

    def _deploy_locked(self) -> None:
        if not self.deployed:
            if isinstance(self.__dict__.get("_cache"), _PackedCache):
                # eval mode built a cache: reuse it (it also honours writes to the qweight buffers)
                packed, scales = self.packed_weights()
            else:
                # No cache: quantize straight from the latent weights, without the float snapshot
                # and the int8 trits the eval-mode cache keeps (the peak of deploy() stays at the
                # latent weights plus this layer's packed bytes). Same kernel calls, same bytes.
                w = self.weight.detach()
                if w.is_meta:
                    self.packed_weights()  # raises its ValueError naming the meta device
                kernel = self.kernel
                trits, scales = kernel_ternarize(kernel, w)
                packed = kernel.pack(trits)
                del trits
            self._set_deployed(packed.clone(), scales.clone())

    def __getstate__(self):
        # Pickling a module (torch.save(model), deepcopy) stores parameters and buffers; the cache
        # (a float copy of the weights plus packed bytes) is rebuilt on first use.
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_cache"] = None
        state.pop("_cache_lock", None)  # a lock cannot be pickled; __setstate__ makes a new one
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__["_cache_lock"] = threading.RLock()
        _LOCKED_LAYERS.add(self)

    # ---------------------------------------------------------------- dtype and device casts
    def _apply(self, fn, *args, **kwargs):
        """``.to()``, ``.half()``, ``.cuda()``... move every tensor, but the float32 scales keep their
        dtype (a cast would round them and change every output); they follow the device only."""
        kept = {name: self._buffers[name] for name in _FLOAT32_BUFFERS if self._buffers.get(name) is not None}
        result = super()._apply(fn, *args, **kwargs)
        for name, before in kept.items():
            after = self._buffers.get(name)
            if after is not None and after.dtype != before.dtype:
                self._buffers[name] = before.to(after.device)
        return result

    # ---------------------------------------------------------------- inputs
    def _kernel_checks_finite(self, kernel, x: torch.Tensor) -> bool:
        """True when ``kernel``'s packed ``linear`` on ``x`` is the shipped C++ op, which rejects NaN/Inf
        inputs itself (``quantize_activations`` / ``bitlinear_f32`` raise ValueError): the forward
        then skips the separate PyTorch pass over the input and names the layer in the error."""
        return (isinstance(x, torch.Tensor) and getattr(kernel, "has_cpp_backend", False) and x.device.type == "cpu"
                and not kernel_overrides(kernel, "linear") and not kernel_overrides(kernel, "forward"))

    def _check_input(self, x: torch.Tensor, check_finite: bool = True) -> None:
        """Type, device, dtype and width of ``x``; NaN/Inf too unless ``check_finite`` is False (the
        caller's kernel checks them: :meth:`_kernel_checks_finite`)."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
        check_same_device("input", x, name, self.layer_device())
        if not x.is_floating_point():
            raise ValueError(f"{name}: input must be a floating-point tensor, got {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{name}: input of shape {tuple(x.shape)} must end with in_features={self.in_features}"
            )
        if x.is_meta:
            # shape propagation only (no values to check); the packed kernels need real data
            if not self.training or self.deployed:
                raise ValueError(f"{name}: eval-mode and deployed layers run packed kernels and cannot take "
                                 f"inputs on device 'meta' (train mode propagates shapes on 'meta', as nn.Linear)")
            return
        if check_finite and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: input contains NaN or Inf")

    # ---------------------------------------------------------------- state dicts
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.deployed:
            destination[prefix + PACKED_WEIGHT_KEY] = self.packed_weight

    def _require_shape(self, key: str, tensor, shape: tuple) -> None:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{type(self).__name__}: state dict entry '{key}' has shape {got}, expected {shape}")

    def _check_qweight_entries(self, state_dict, q_key: str, qs_key: str) -> None:
        n, k = self.out_features, self.in_features
        if q_key in state_dict:
            self._require_shape(q_key, state_dict[q_key], (n, k))
        if qs_key in state_dict:
            s = state_dict[qs_key]
            if not isinstance(s, torch.Tensor) or s.numel() not in (1, n):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{type(self).__name__}: state dict entry '{qs_key}' has shape {got}, "
                                 f"expected () or ({n},)")

    def _set_deployed(self, packed: torch.Tensor, scales: torch.Tensor) -> None:
        self.packed_2bit = packed
        self.weight_scale = scales
        self.weight = None
        self._cache = None
        self._drop_eval_buffers()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        with self._lock(), torch.inference_mode(False):  # ordinary buffers (see _packed_state)
            self._load_from_state_dict_locked(state_dict, prefix, local_metadata, strict, missing_keys,
                                              unexpected_keys, error_msgs)

    def _load_from_state_dict_locked(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                     unexpected_keys, error_msgs):
        name = type(self).__name__
        n, k = self.out_features, self.in_features
        packed_key, weight_key, scale_key = prefix + PACKED_WEIGHT_KEY, prefix + "weight", prefix + "weight_scale"
        q_key, qs_key, bias_key = prefix + QWEIGHT_KEY, prefix + QWEIGHT_SCALE_KEY, prefix + "bias"
        if not any(key in state_dict for key in (packed_key, weight_key, scale_key, q_key, qs_key, bias_key)):
            # none of this layer's entries (a partial checkpoint): nn.Module records them in
            # missing_keys, so load_state_dict(strict=False) keeps the layer as it is
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                          error_msgs)
            return
        device = self.layer_device()
        if device.type == "meta" and isinstance(state_dict.get(packed_key), torch.Tensor):
            # a skeleton with weights on 'meta' (e.g. BitLM(config, projection_device="meta")) takes
            # packed weights on the state dict's device: deployed without ever holding float weights
            device = state_dict[packed_key].device
        # A bias the layer lacks, or a missing one, goes to unexpected_keys / missing_keys (nn.Module
        # does it below), as for nn.Linear: load_state_dict(strict=True) raises naming the key,
        # strict=False reports it and the layer keeps its own bias.
        if bias_key in state_dict and self.bias is not None:
            self._require_shape(bias_key, state_dict[bias_key], (n,))
        self._check_qweight_entries(state_dict, q_key, qs_key)
        consumed = {q_key, qs_key}
        if packed_key in state_dict:
            data = state_dict[packed_key]
            self._require_shape(packed_key, data, (packing.storage_bytes(n, k),))
            if scale_key not in state_dict:
                raise ValueError(f"{name}: state dict has '{packed_key}' but no '{scale_key}'")
            scales = state_dict[scale_key]
            self._require_shape(scale_key, scales, (n,))
            # Any float dtype loads (a dict saved after a dtype cast); the buffer stays float32.
            if not scales.is_floating_point() or not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
                raise ValueError(f"{name}: '{scale_key}' must be finite, non-negative floats")
            try:
                packed = KernelRegistry.get_kernel_for_config(self.quant_config, device).from_storage(
                    data.detach().to(device).contiguous(), n, k)
            except ValueError as e:  # corrupt TQ1_B3 bytes: say which entry holds them
                raise ValueError(f"{name}: state dict entry '{packed_key}' holds invalid TQ1_B3 trits: {e}") from None
            self._set_deployed(packed, torch.empty(n, dtype=torch.float32, device=device))
            consumed.add(packed_key)
        elif weight_key in state_dict:
            # Latent weights are the truth; a namesake eval-mode dict's qweight/qweight_scale are
            # derived from them and recomputed here.
            self._require_shape(weight_key, state_dict[weight_key], (n, k))
            if self.deployed:  # back to a trainable layer
                self.packed_2bit = None
                self.weight_scale = None
                self.weight = nn.Parameter(torch.empty(n, k, device=device))
        elif q_key in state_dict:
            # A deployed namesake layer: qweight (trits, any dtype), qweight_scale, bias.
            if qs_key not in state_dict:
                raise ValueError(f"{name}: state dict has '{q_key}' but no '{qs_key}'")
            try:
                trits, scales = normalize_qweight(state_dict[q_key].detach().to(device), state_dict[qs_key])
            except ValueError as e:
                raise ValueError(f"{name}: state dict entries '{q_key}' / '{qs_key}': {e}") from None
            kernel = KernelRegistry.get_kernel_for_config(self.quant_config, device)
            self._set_deployed(kernel.pack(trits), scales.to(device))
        state_dict_rest = {key: v for key, v in state_dict.items() if key not in consumed}
        super()._load_from_state_dict(state_dict_rest, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if q_key in state_dict and packed_key not in state_dict and weight_key not in state_dict:
            # the namesake's deployed dict has no weight_scale entry: not missing here
            missing = prefix + "weight_scale"
            if missing in missing_keys:
                missing_keys.remove(missing)
        if not self.training and not self.deployed:
            self._on_enter_eval_mode()

"""Shared machinery of BitLab layers: config and kernel resolution, input checks, the packed
weight cache, deployment, and packed state dicts."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitcore.kernels import KernelRegistry
from bitcore.ops import packing

PACKED_WEIGHT_KEY = "packed_weight"  # TQ1_B3 bytes of a deployed layer's state dict


def resolve_config(quant_config: Optional[BitQuantConfig]) -> BitQuantConfig:
    if quant_config is None:
        return BitQuantConfig()
    if not isinstance(quant_config, BitQuantConfig):
        raise ValueError(f"quant_config must be a BitQuantConfig or None, got {type(quant_config).__name__}")
    return quant_config


class BitLayerBase(nn.Module):
    """A layer with an ``out_features x in_features`` ternary weight matrix.

    Subclasses own ``weight`` (float latent weights, ``None`` once deployed) and ``bias``. The
    packed form (I2_S256 bytes + one float scale per output row) is cached while the latent
    weights are unchanged, and becomes the layer's only weight state after :meth:`deploy`.
    """

    def __init__(self, in_features: int, out_features: int, quant_config: Optional[BitQuantConfig]) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.quant_config = resolve_config(quant_config)
        self.kernel = KernelRegistry.get_kernel_for_config(self.quant_config)
        self.register_buffer("packed_2bit", None, persistent=False)
        self.register_buffer("weight_scale", None)
        self._cache_key = None
        self._cache = None

    # ---------------------------------------------------------------- weights
    @property
    def deployed(self) -> bool:
        """True once :meth:`deploy` dropped the latent weights."""
        return self.packed_2bit is not None

    def packed_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(I2_S256 uint8 ``[N, Kp / 4]``, scales float32 ``[N]``) of the current weights."""
        if self.deployed:
            return self.packed_2bit, self.weight_scale
        w = self.weight
        key = (w._version, w.data_ptr(), w.dtype, tuple(w.shape), self.quant_config)
        if self._cache_key != key:
            trits, scales = self.kernel.quantize_weights(w.detach())
            self._cache = (self.kernel.pack(trits), scales)
            self._cache_key = key
        return self._cache

    @property
    def qweight(self) -> torch.Tensor:
        """The ternary weights, int8 ``[out_features, in_features]`` with values in {-1, 0, 1}."""
        return self.kernel.unpack(self.packed_weights()[0], self.in_features)

    @property
    def scale(self) -> torch.Tensor:
        """The float32 weight scale of each output row (per tensor: all equal)."""
        return self.packed_weights()[1]

    def deploy(self) -> "BitLayerBase":
        """Keep only packed weights (2 bits per weight in memory); inference only from now on."""
        if not self.deployed:
            packed, scales = self.packed_weights()
            self.packed_2bit = packed.clone()
            self.weight_scale = scales.clone()
            self.weight = None
            self._cache_key = self._cache = None
        return self

    # ---------------------------------------------------------------- inputs
    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: input must be a floating-point tensor, got {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{name}: input of shape {tuple(x.shape)} must end with in_features={self.in_features}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: input contains NaN or Inf")

    # ---------------------------------------------------------------- state dicts
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.deployed:
            destination[prefix + PACKED_WEIGHT_KEY] = self.kernel.to_storage(self.packed_2bit, self.in_features)

    def _require_shape(self, key: str, tensor, shape: tuple) -> None:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{type(self).__name__}: state dict entry '{key}' has shape {got}, expected {shape}")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        n, k = self.out_features, self.in_features
        packed_key, weight_key, scale_key = prefix + PACKED_WEIGHT_KEY, prefix + "weight", prefix + "weight_scale"
        bias_key = prefix + "bias"
        if (bias_key in state_dict) != (self.bias is not None):
            raise ValueError(
                f"{type(self).__name__}: state dict {'has' if bias_key in state_dict else 'lacks'} "
                f"'{bias_key}' but the layer was built with bias={self.bias is not None}"
            )
        if bias_key in state_dict:
            self._require_shape(bias_key, state_dict[bias_key], (n,))
        if packed_key in state_dict:
            data = state_dict[packed_key]
            self._require_shape(packed_key, data, (packing.storage_bytes(n, k),))
            if scale_key not in state_dict:
                raise ValueError(f"{type(self).__name__}: state dict has '{packed_key}' but no '{scale_key}'")
            scales = state_dict[scale_key]
            self._require_shape(scale_key, scales, (n,))
            if scales.dtype != torch.float32 or not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
                raise ValueError(f"{type(self).__name__}: '{scale_key}' must be finite, non-negative float32")
            self.packed_2bit = self.kernel.from_storage(data.detach().cpu().contiguous(), n, k)
            self.weight_scale = torch.empty(n, dtype=torch.float32)
            self.weight = None
            self._cache_key = self._cache = None
            state_dict = {key: v for key, v in state_dict.items() if key != packed_key}
        elif weight_key in state_dict:
            self._require_shape(weight_key, state_dict[weight_key], (n, k))
            if self.deployed:  # back to a trainable layer
                self.packed_2bit = None
                self.weight_scale = None
                self.weight = nn.Parameter(torch.empty(n, k))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

"""The interface every BitLab linear kernel implements.

A kernel turns float weights into ternary weights (one float32 scale per output row) packed in the
I2_S256 layout, and computes ``y = x @ W_q^T * scales + bias`` from them; which arithmetic it uses
(int8 or float activations, per-tensor or per-row activation scales) comes from its config, and
which implementation (C++, CUDA, pure PyTorch) from its ``backend``. The registry
(:class:`~bitcore.kernels.registry.KernelRegistry`) picks a kernel by config AND device.

Two API levels:

* namesake-compatible (OliverGrainge/BitLab): ``quantize_weights(w) -> (qweight_scale, qweight)``
  and ``forward(x, qweight_scale, qweight, bias)`` - or, as its earlier releases named them,
  ``prepare_weights`` and ``kernel(x, qweight_scale, qweight, bias, quant_config)``;
* packed: ``ternarize``, ``pack``/``unpack``, ``linear`` on I2_S256 bytes, ``to_storage``/``from_storage``
  (TQ1_B3), which layers use to keep 2 bits per weight.

Sources: BitNet b1.58 (Ma et al. 2024, "The Era of 1-bit LLMs", arXiv:2402.17764) for the absmean
ternary weights and absmax int8 activations; docs/bitlab.md for layouts and the exact arithmetic.
"""

from __future__ import annotations

import abc
from typing import Any, Optional, Tuple

import numpy as np
import torch

from lowbit._backend import linear_output_dtype

from ..config import BitQuantConfig
from ..ops import dispatch


def as_device(device: Any) -> torch.device:
    """``None`` -> ``cpu``; strings and devices -> ``torch.device``."""
    if device is None:
        return torch.device("cpu")
    return device if isinstance(device, torch.device) else torch.device(device)


class BitKernelBase(abc.ABC):
    """Base class of BitLab kernels; subclasses provide :meth:`linear` (packed weights) or, as
    kernels written for the namesake do, :meth:`forward` (``(x, qweight_scale, qweight, bias)``);
    each is defined from the other.

    Class attributes:
        has_cpp_backend: True when the kernel runs the native C++ core (``lowbit._native``) -
            only kernels chosen for CPU tensors with the extension built and backend ``auto``/``cpp``.
        has_cuda_backend: True when it runs compiled CUDA kernels (:mod:`lowbit._cuda_ops`).
        backend: ``"cpp"``, ``"cuda"`` or ``"torch"``: which implementation its ops use.
        device_types: device types it runs on (``("cpu",)``), or None for any device.
    """

    has_cpp_backend: bool = False
    has_cuda_backend: bool = False
    backend: str = "torch"
    device_types: Optional[Tuple[str, ...]] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Kernels written to the namesake's earlier interface - ``prepare_weights(weight, quant_config)``
        and ``__call__(x, qweight_scale, qweight, bias=None, quant_config=None)`` - get
        :meth:`quantize_weights` and :meth:`forward` that call them, so layers and the registry use
        them as they would a kernel defining the current names."""
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "prepare_weights" in own and "quantize_weights" not in own:
            def quantize_weights(self, weight, quant_config=None):
                return self.prepare_weights(weight, quant_config if quant_config is not None else self.config)

            quantize_weights.__doc__ = "The class's ``prepare_weights`` (the namesake's earlier name)."
            cls.quantize_weights = quantize_weights
        if "__call__" in own and "forward" not in own and "linear" not in own:
            def forward(self, x, qweight_scale, qweight, bias=None):
                return self(x, qweight_scale, qweight, bias, self.config)

            forward.__doc__ = "The class's ``__call__(x, qweight_scale, qweight, bias, quant_config)``."
            cls.forward = forward

    def __init__(self, config: Optional[BitQuantConfig] = None) -> None:
        cls = type(self)
        if cls.linear is BitKernelBase.linear and cls.forward is BitKernelBase.forward:
            raise TypeError(f"Can't instantiate abstract class {cls.__name__}: implement linear() or forward()")
        if config is None:
            config = BitQuantConfig()
        if not isinstance(config, BitQuantConfig):
            raise ValueError(f"{type(self).__name__}: config must be a BitQuantConfig, got {type(config).__name__}")
        self.config = config

    @property
    def quant_config(self) -> BitQuantConfig:
        """The config (the namesake's attribute name)."""
        return self.config

    @classmethod
    def is_available(cls, device: Any = None) -> bool:
        """Whether the kernel can run here for data on ``device`` (native kernels need the extension)."""
        return True

    @classmethod
    def supports_device(cls, device: Any) -> bool:
        return cls.device_types is None or as_device(device).type in cls.device_types

    @classmethod
    def is_suitable_for(cls, config: BitQuantConfig) -> bool:
        """Namesake hook: extra config test on top of the registry's criteria (default: any config)."""
        return True

    # ------------------------------------------------------------- implementation
    def _call(self, op: str, *args):
        return dispatch.call(op, *args, impl=self.backend)

    @staticmethod
    def _check_weight(weight: Any, op: str) -> None:
        """The same error on every backend for a weight that is not a 2-D tensor (the C++ binding
        would otherwise raise its own argument-type error)."""
        if not isinstance(weight, torch.Tensor):
            raise ValueError(f"{op}: weight must be a 2-D torch.Tensor [out_features, in_features], "
                             f"got {type(weight).__name__}")
        if weight.dim() != 2 or weight.numel() == 0:
            raise ValueError(f"{op}: weight must be a non-empty 2-D tensor, got shape {tuple(weight.shape)}")

    def _check_device(self, t: torch.Tensor, what: str) -> None:
        if not self.supports_device(t.device):
            raise ValueError(f"{type(self).__name__} runs on {'/'.join(self.device_types)} tensors but {what} is on "
                             f"device {t.device}; use KernelRegistry.get_kernel_for_config(config, device)")

    # ------------------------------------------------------------- packed API
    def ternarize(self, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Float ``[N, K]`` -> (trits int8 ``[N, K]``, scales float32 ``[N]``) on the weight's device.

        Raises:
            ValueError: NaN/Inf weights, an empty or non-2-D weight (or not a tensor).
        """
        self._check_weight(weight, "ternarize")
        self._check_device(weight, "the weight")
        return self._call("quantize_weights", weight.detach().to(torch.float32).contiguous(),
                          self.config.weight_granularity)

    def pack(self, trits: torch.Tensor) -> torch.Tensor:
        """int8 trits ``[N, K]`` -> I2_S256 uint8 ``[N, Kp / 4]``. ValueError for another type or dtype."""
        _require_tensor(trits, "trits", "pack")
        return self._call("pack_2bit", trits.contiguous())

    def unpack(self, packed: torch.Tensor, in_features: int) -> torch.Tensor:
        """I2_S256 ``[N, Kp / 4]`` -> int8 trits ``[N, in_features]``. ValueError for another type or dtype."""
        _require_tensor(packed, "packed", "unpack")
        return self._call("unpack_2bit", packed.contiguous(), in_features)

    def to_storage(self, packed: torch.Tensor, in_features: int) -> torch.Tensor:
        """I2_S256 ``[N, Kp / 4]`` -> TQ1_B3 bytes (1.6 bits per weight, for files and state dicts)."""
        return self._call("pack_base3", self.unpack(packed, in_features))

    def from_storage(self, data: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """TQ1_B3 bytes -> I2_S256 ``[rows, Kp / 4]`` on ``data``'s device; ValueError on corrupt bytes."""
        if not isinstance(data, torch.Tensor) or data.dim() != 1 or data.dtype != torch.uint8:
            got = f"{data.dtype} {tuple(data.shape)}" if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(f"packed_weight: expected a 1-D uint8 tensor, got {got}")
        return self.pack(self._call("unpack_base3", data.contiguous(), rows, cols))

    def linear(
        self,
        x2d: torch.Tensor,
        packed: torch.Tensor,
        in_features: int,
        scales: torch.Tensor,
        bias: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """float32 ``[M, K]`` contiguous, I2_S256 ``packed``, float32 ``scales [N]`` and ``bias [N]`` (or
        None), all on one device -> float32 ``[M, N]`` there.

        This default serves kernels that only define the namesake's :meth:`forward`: it unpacks the
        trits and calls ``forward(x2d, qweight_scale, trits, bias)`` (0-d scale per tensor).
        """
        trits = self.unpack(packed, in_features)
        scale = scales[0] if self.config.weight_granularity == "per_tensor" else scales
        return self.forward(x2d, scale, trits, bias).to(torch.float32)

    # ------------------------------------------------------------- namesake API
    def quantize_weights(
        self, weight: torch.Tensor, quant_config: Optional[BitQuantConfig] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Offline weight quantization, in the namesake's order: ``(qweight_scale, qweight)``.

        Args:
            weight: float ``[N, K]``, any device the kernel supports.
            quant_config: overrides the kernel's config for the weight granularity (namesake signature).

        Returns:
            ``qweight_scale``: float32, a 0-d tensor (``per_tensor``) or ``[N]`` (``per_channel``);
            ``qweight``: int8 ``[N, K]`` with values in {-1, 0, 1} (absmean quantizer of BitNet b1.58).

        Raises:
            ValueError: NaN/Inf weights, an empty or non-2-D weight, another device than the kernel's.
        """
        config = quant_config if quant_config is not None else self.config
        self._check_weight(weight, "quantize_weights")
        self._check_device(weight, "the weight")
        trits, scales = self._call("quantize_weights", weight.detach().to(torch.float32).contiguous(),
                                   config.weight_granularity)
        scale = scales[0].clone() if config.weight_granularity == "per_tensor" else scales
        return scale, trits

    def forward(
        self,
        x: torch.Tensor,
        qweight_scale: torch.Tensor,
        qweight: torch.Tensor,
        bias: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Inference from pre-quantized weights (namesake signature).

        Args:
            x: ``(..., K)`` floating tensor.
            qweight_scale: 0-d, ``[1]`` or ``[N]`` float scale(s), as returned by :meth:`quantize_weights`.
            qweight: ``[N, K]`` ternary weights (int8, or floats equal to -1, 0 or 1).
            bias: ``[N]`` or None.

        Returns:
            ``(..., N)`` in ``x``'s dtype (under ``torch.autocast``: the autocast dtype, as
            ``F.linear``), on ``x``'s device.

        Raises:
            ValueError: ``x`` not a floating tensor, shapes that do not fit, non-ternary ``qweight``, NaN/Inf input, tensors on
            different devices or on a device this kernel does not run on.
        """
        trits, scales = normalize_qweight(qweight, qweight_scale)
        n, k = trits.shape
        _require_tensor(x, "x", "forward")
        if not x.is_floating_point():  # as F.linear with float weights: no silent integer output
            raise ValueError(f"forward: x must be a floating-point tensor, got {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != k:
            raise ValueError(f"forward: input of shape {tuple(x.shape)} must end with in_features={k}")
        self._check_device(x, "the input")
        x2d = x.detach().reshape(-1, k).to(torch.float32).contiguous()
        b = None if bias is None else bias.detach().to(torch.float32).reshape(n).contiguous()
        if x2d.shape[0] == 0:
            y2d = torch.zeros((0, n), dtype=torch.float32, device=x.device)
        else:
            y2d = self.linear(x2d, self.pack(trits), k, scales, b)
        return y2d.reshape(*x.shape[:-1], n).to(linear_output_dtype(x))

    def prepare_weights(
        self, weight: torch.Tensor, quant_config: Optional[BitQuantConfig] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`quantize_weights` under the namesake's earlier name: ``(qweight_scale, qweight)``."""
        return self.quantize_weights(weight, quant_config)

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Two call forms, told apart by the arguments (a float weight is 2-D, a scale 0-d or 1-D):

        * the namesake's ``kernel(x, qweight_scale, qweight, bias=None, quant_config=None)``:
          :meth:`forward` on pre-quantized weights; a ``quant_config`` other than the kernel's
          runs the kernel the registry picks for that config (its activation arithmetic);
        * lowbit's ``kernel(x, weight, bias=None)``: quantize and pack float ``weight`` ``[N, K]``,
          then :meth:`forward`.

        Returns:
            ``(..., N)`` in ``x``'s dtype.

        Raises:
            TypeError: arguments that fit neither form, a ``quant_config`` that is not a
                :class:`BitQuantConfig`.
            ValueError: as :meth:`forward` / :meth:`quantize_weights`.
        """
        namesake_keys = {"qweight_scale", "qweight", "quant_config"}
        first = args[0] if args else kwargs.get("weight", kwargs.get("qweight_scale"))
        namesake = (bool(namesake_keys & set(kwargs)) or len(args) >= 3
                    or (first is not None and not (isinstance(first, torch.Tensor) and first.dim() == 2)))
        if not namesake:
            return self._functional(x, *args, **kwargs)
        return self._namesake_call(x, *args, **kwargs)

    def _functional(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        scale, trits = self.quantize_weights(weight)
        return self.forward(x, scale, trits, bias)

    def _namesake_call(
        self,
        x: torch.Tensor,
        qweight_scale: torch.Tensor,
        qweight: torch.Tensor,
        bias: Optional[torch.Tensor] = None,
        quant_config: Optional[BitQuantConfig] = None,
    ) -> torch.Tensor:
        if quant_config is None or quant_config == self.config:
            return self.forward(x, qweight_scale, qweight, bias)
        if not isinstance(quant_config, BitQuantConfig):
            raise TypeError(f"{type(self).__name__}(): quant_config must be a BitQuantConfig or None, "
                            f"got {type(quant_config).__name__}")
        from .registry import KernelRegistry  # the registry imports this module

        return KernelRegistry.get_kernel_for_config(quant_config, x.device).forward(x, qweight_scale, qweight, bias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def _require_tensor(t: Any, name: str, op: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")


def normalize_qweight(qweight: torch.Tensor, qweight_scale) -> Tuple[torch.Tensor, torch.Tensor]:
    """Namesake-style ``(qweight, qweight_scale)`` -> (int8 trits ``[N, K]``, float32 scales ``[N]``).

    ``qweight`` may be int8 or floating (the namesake's PyTorch path stores float trits);
    ``qweight_scale`` a number, a 0-d / ``[1]`` tensor (per tensor) or ``[N]`` (a list or numpy
    array of those values too).

    Raises:
        ValueError: ``qweight`` not 2-D or not in {-1, 0, 1}; a scale of another size, negative or NaN/Inf.
    """
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        got = tuple(qweight.shape) if isinstance(qweight, torch.Tensor) else type(qweight).__name__
        raise ValueError(f"qweight: expected a 2-D tensor [out_features, in_features], got {got}")
    q = qweight.detach()
    if q.is_floating_point():
        if not bool((q == torch.round(q)).all()):
            raise ValueError("qweight: values must be -1, 0 or 1")
        q = q.to(torch.int8) if bool((q.abs() <= 1).all()) else q.clamp(-2, 2).to(torch.int8)
    elif q.dtype != torch.int8:
        q = q.clamp(-2, 2).to(torch.int8)
    if q.numel() and bool(((q < -1) | (q > 1)).any()):
        raise ValueError("qweight: values must be -1, 0 or 1")
    n = q.shape[0]
    if isinstance(qweight_scale, torch.Tensor):
        s = qweight_scale.detach()
    else:  # a number, a numpy scalar or array, a list
        arr = np.asarray(qweight_scale)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"qweight_scale: expected a real number or array, got {type(qweight_scale).__name__} "
                             f"of dtype {arr.dtype}")
        s = torch.tensor(arr.astype(np.float32), device=q.device)
    shape = tuple(s.shape)
    s = s.to(device=q.device, dtype=torch.float32).reshape(-1)
    if s.numel() == 1:
        s = s.expand(n)
    if s.numel() != n:
        raise ValueError(f"qweight_scale: expected 1 or {n} values, got shape {shape}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError("qweight_scale: must be finite and non-negative")
    return q.contiguous(), s.contiguous()


def __getattr__(name: str):
    # The namesake defines ReferenceKernel in bitcore/kernels/base.py, and custom-kernel modules
    # import it from there; here it is TorchReferenceKernel (bitlinear_torch imports this module).
    if name == "ReferenceKernel":
        from .bitlinear_torch import ReferenceKernel

        return ReferenceKernel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

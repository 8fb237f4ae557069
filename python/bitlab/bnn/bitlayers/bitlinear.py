"""``bitlab.bnn.BitLinear``: lowbit's BitLinear behind the namesake's newer constructor."""

from __future__ import annotations

import contextlib
import math
from numbers import Real

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitcore.config import BitQuantConfig
from bitcore.ops.bitlinear import train_forward
from bitlayers.bitlinear import BitLinear as _LowbitBitLinear
from bitlayers.bitlinear import _check_linear, copy_linear_weights

from ..._quant_type import quant_config_for


def _autocast_state():
    """``{device_type: (enabled, dtype)}`` of the current autocast state (cpu, and cuda when present)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4 (the per-device getters are deprecated there)
        return {d: (torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in devices}
    state = {"cpu": (torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype())}
    if "cuda" in devices:
        state["cuda"] = (torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype())
    return state


def _autocast_like(state) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    for device_type, (enabled, dtype) in state.items():
        stack.enter_context(torch.autocast(device_type=device_type, enabled=enabled, dtype=dtype))
    return stack


class _EvalOutputTrainGrads(torch.autograd.Function):
    """Eval-mode forward of a lowbit BitLinear (the packed kernel, the same output as under
    ``torch.no_grad()``) whose backward gives the gradients of the quantization-aware training
    forward at the same input and latent weights: the namesake's layer computes the same thing in
    ``train()`` and ``eval()``, so a loss computed in eval mode still trains its weights."""

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        ctx.quant_config = layer.quant_config
        ctx.autocast = _autocast_state()  # the backward recomputes under the forward's autocast
        ctx.save_for_backward(x, weight, bias)
        return layer._eval_forward(x.detach())  # grad mode is off here: the plain kernel path

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, weight, bias = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        with torch.enable_grad(), _autocast_like(ctx.autocast):
            leaves = [None if t is None else t.detach().requires_grad_(need) for t, need in zip((x, weight, bias), needs)]
            y = train_forward(leaves[0], leaves[1], leaves[2], ctx.quant_config)
            wanted = [t for t, need in zip(leaves, needs) if need]
            grads = iter(torch.autograd.grad(y, wanted, grad_y))
        return tuple(next(grads) if need else None for need in needs) + (None,)


class TrainGradsInEval:
    """Mixin for a :class:`bitlayers.BitLinear` subclass: in ``eval()`` (not deployed), when grad is
    enabled and the latent ``weight`` or ``bias`` requires grad, the forward keeps the packed-kernel
    output and backpropagates the training-mode (straight-through) gradients into ``weight``,
    ``bias`` and the input, as the namesake's layer does (its ``eval()`` changes nothing).
    Otherwise the forward is lowbit's (no autograd graph under ``torch.no_grad()``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.training and not self.deployed and torch.is_grad_enabled()
                and isinstance(x, torch.Tensor)
                and (self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad))):
            kernel = self.kernel
            self._check_input(x, check_finite=not self._kernel_checks_finite(kernel, x))
            return _EvalOutputTrainGrads.apply(x, self.weight, self.bias, self)
        return super().forward(x)


class BitLinear(TrainGradsInEval, _LowbitBitLinear):
    """Ternary linear layer with the namesake's newer constructor (a :class:`bitlayers.BitLinear`).

    ``BitLinear(in_features, out_features, bias=True, eps=1e-6, quant_type="ai8pc_wpt", *,
    device=None, dtype=None)``.

    ``quant_type`` (``"<activation>_<weight>"``, case-insensitive) picks the lowbit
    :class:`~bitcore.config.BitQuantConfig` of the layer:

    ============================  ===========================================================
    ``ai8pc`` / ``ai8ptk``        int8 activations, one absmax scale per row (token) of the input
    ``ai8pt``                     int8 activations, one absmax scale for the whole input
    ``none`` (activation part)    float32 activations
    ``wpt`` / ``wpc``             ternary weights, one ``mean|W|`` scale per tensor / per output row
    ``None`` or ``"none"``        no quantization at all: a float ``nn.Linear`` (as upstream)
    ============================  ===========================================================

    The default ``"ai8pc_wpt"`` is the BitNet b1.58 W1.58A8 layer (lowbit's fastest kernels).
    Per-group (``ai8pg*``, ``wpg*``) and float16/bfloat16 schemes raise ``ValueError``.

    Behaviour (lowbit's layer): ``train()`` mode is quantization-aware training with a
    straight-through estimator; ``eval()`` runs the packed kernels (outputs equal the training
    forward's up to float rounding) and, as upstream, still trains: a loss computed in eval mode
    backpropagates the training-mode gradients into ``weight`` and ``bias``; ``deploy()`` (also callable as
    the namesake's hook ``_deploy()``, and called by :meth:`bitlab.bnn.Module.deploy`) drops the
    latent weights and keeps 2-bit packed ones. Initialisation is the namesake's: Xavier-uniform
    weights, zero bias. ``eps`` is stored (``layer.eps``) but lowbit's quantizers use no epsilon
    (all-zero weights quantize to zero rather than dividing by ``eps``); see docs/migrating.md.

    Shapes: input ``(..., in_features)`` floating point, output ``(..., out_features)`` in the
    input's dtype; ``weight`` is ``[out_features, in_features]``, ``bias`` ``[out_features]``.

    Raises:
        ValueError: bad sizes; ``eps`` not a finite number >= 0; an unsupported ``quant_type``;
            inputs of the wrong width, device or dtype (and NaN/Inf for quantized layers).
        TypeError: ``quant_type`` neither a str nor None.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-6,
                 quant_type="ai8pc_wpt", *, device=None, dtype=None) -> None:
        if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(float(eps)) or eps < 0:
            raise ValueError(f"BitLinear: eps must be a finite number >= 0, got {eps!r}")
        quant_config = quant_config_for(quant_type)
        super().__init__(in_features, out_features, bias, init_method="xavier_uniform",
                         quant_config=quant_config if quant_config is not None else BitQuantConfig(),
                         device=device, dtype=dtype)
        self.eps = float(eps)
        self.quant_type = quant_type
        self.is_float = quant_config is None  # quant_type None / "none": no quantization

    @classmethod
    def from_linear(cls, linear: nn.Linear, quant_type="ai8pc_wpt", eps: float = 1e-6) -> "BitLinear":
        """A layer with a float32 copy of ``linear``'s weight (and bias), on its device.

        Raises:
            ValueError: ``linear`` not an ``nn.Linear``; a bad ``quant_type`` or ``eps`` (as the constructor).
        """
        _check_linear(linear)
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, eps, quant_type,
                    device=linear.weight.device)
        return copy_linear_weights(layer, linear)

    # ------------------------------------------------------------ float layers (quant_type "none")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` -> ``(..., out_features)``; see the class docstring."""
        if self.__dict__.get("is_float", False):
            self._check_input(x, check_finite=False)
            return F.linear(x, self.weight, self.bias)
        return super().forward(x)

    def _on_enter_eval_mode(self) -> None:
        if self.__dict__.get("is_float", False):
            return  # nothing to quantize
        super()._on_enter_eval_mode()

    def _packed_state(self):
        if self.__dict__.get("is_float", False):
            raise ValueError(f"BitLinear(quant_type={self.quant_type!r}) is a float layer: it has no ternary "
                             f"or packed weights")
        return super()._packed_state()

    def deploy(self) -> "BitLinear":
        """Pack the weights (2 bits each) and drop the latent ones; a float layer (quant_type
        None / "none") keeps its float weights, as upstream. Switches to eval mode; returns self."""
        if self.__dict__.get("is_float", False):
            return self.eval()
        return super().deploy()

    def _deploy(self) -> None:
        """The namesake's per-layer deploy hook: :meth:`deploy`."""
        self.deploy()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"eps={self.eps}, quant_type={self.quant_type!r}, deployed={self.deployed}")


class BitConv2d(nn.Module):
    """Not provided: lowbit has no ternary convolution. Constructing one raises NotImplementedError."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "bitlab.bnn.BitConv2d is not provided by lowbit (no ternary convolution kernels). Available "
            "ternary layers: bitlab.bnn.BitLinear (= bitlayers.BitLinear); keep nn.Conv2d for convolutions.")

"""BitLinear: a drop-in ternary replacement for torch.nn.Linear (BitNet b1.58)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitcore.ops.bitlinear import train_forward

from lowbit._backend import linear_output_dtype

from .base import BitLayerBase, kernel_linear
from .registry import register_layer

#: ``init_method`` values: None (nn.Linear's initialisation, the default) and the namesake's two.
INIT_METHODS = (None, "kaiming_uniform", "xavier_uniform")


class _PackedLinearSTE(torch.autograd.Function):
    """The packed eval / deployed forward with a straight-through backward.

    Forward: ``run(x)`` (the packed kernel, exactly as without autograd). Backward: the gradient
    of ``x @ W_deq^T`` with ``W_deq = trits * scale`` (dequantized from the packed weights);
    activation quantization counts as the identity (BitNet's straight-through estimator). Only
    the input gets a gradient: no weight (and no bias) gradient in eval mode or once deployed.
    """

    @staticmethod
    def forward(ctx, x, run, dequantize):
        ctx.dequantize = dequantize
        ctx.x_dtype = x.dtype
        return run(x.detach())

    @staticmethod
    def backward(ctx, grad_y):
        w_deq = ctx.dequantize()  # float32 [N, K]
        g = grad_y.to(w_deq.dtype).reshape(-1, w_deq.shape[0]) @ w_deq
        return g.reshape(*grad_y.shape[:-1], w_deq.shape[1]).to(ctx.x_dtype), None, None


@register_layer("BitLinear")
class BitLinear(BitLayerBase):
    """``y = x W^T + b`` with ternary ``W`` (BitNet b1.58: Ma et al. 2024, arXiv:2402.17764).

    * ``train()``: quantization-aware training. The forward pass uses the quantized weights (and
      int8 activations), the backward pass updates the float latent ``weight`` (straight-through).
    * ``eval()``: the packed kernel for the layer's device (C++ on CPU, CUDA kernels when compiled,
      else pure PyTorch, bit-identical) on cached packed weights; ``qweight`` (int8 ``[N, K]``) and
      ``qweight_scale`` appear as buffers, as in the namesake. The cache follows every write to
      ``weight`` (optimizer steps, ``copy_``, ``load_state_dict``, ``.data`` writes, ``.to()``).
    * :meth:`deploy`: drop the latent weights; ``state_dict()`` then stores 1.6 bits per weight.
    * Gradients in eval / deployed mode: when grad is enabled and the input requires grad, the
      input gets the straight-through gradient ``grad_y @ W_deq`` (``W_deq = qweight * scale``,
      activation quantization as the identity), so layers before it still train; the layer's own
      weight and bias get no gradient there (use ``train()`` for QAT). The output is the same
      bit for bit with or without autograd.

    Args:
        in_features, out_features: positive ints.
        bias: whether the layer has a bias (``use_bias``).
        init_method: None (default: ``nn.Linear``'s kaiming-uniform weights and uniform bias),
            ``"kaiming_uniform"`` (U(±sqrt(3)·sqrt(2/in)), zero bias) or ``"xavier_uniform"``
            (U(±sqrt(6/(in+out))), zero bias) - the namesake's formulas.
        quant_config: a :class:`~bitcore.config.BitQuantConfig` (default ``BitQuantConfig()``:
            float32 activations). Passed as the 4th positional argument (lowbit's earlier order) it
            is still taken as the config.
        device, dtype: of the latent weights, as for ``nn.Linear``.

    Inputs: any leading shape ``(..., in_features)``, a floating dtype, the layer's device. Output:
    ``(..., out_features)`` in the input's dtype on the same device, in train and eval alike
    (under ``torch.autocast``: the autocast dtype for float32/half inputs, as ``nn.Linear``).

    Raises:
        ValueError: bad sizes, config or ``init_method`` ("Unknown initialization method"); inputs
        that are not floating tensors, of another width, with NaN/Inf, or on another device (the
        message names both devices).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init_method: Optional[str] = None,
        quant_config: Optional[BitQuantConfig] = None,
        device=None,
        dtype=None,
    ) -> None:
        if isinstance(init_method, BitQuantConfig) and quant_config is None:
            init_method, quant_config = None, init_method
        if init_method not in INIT_METHODS:
            raise ValueError(f"Unknown initialization method: {init_method!r} (choose from {INIT_METHODS})")
        super().__init__(in_features, out_features, quant_config)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.init_method = init_method
        self.reset_parameters()
        self._on_enter_training_mode()

    @property
    def use_bias(self) -> bool:
        """Whether the layer has a bias (the namesake's attribute)."""
        return self.bias is not None

    def reset_parameters(self) -> None:
        """Initialise per ``init_method`` (see the class docstring)."""
        if self.weight is None:
            raise ValueError("BitLinear.reset_parameters: the layer is deployed (no latent weights)")
        with torch.no_grad():
            if self.init_method is None:
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                if self.bias is not None:
                    bound = 1.0 / math.sqrt(self.in_features)
                    nn.init.uniform_(self.bias, -bound, bound)
                return
            if self.init_method == "kaiming_uniform":
                bound = math.sqrt(3.0) * math.sqrt(2.0 / self.in_features)
            else:
                bound = math.sqrt(6.0 / (self.in_features + self.out_features))
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.zero_()

    @classmethod
    def from_linear(cls, linear: nn.Linear, quant_config: Optional[BitQuantConfig] = None) -> "BitLinear":
        """A BitLinear with a copy of ``linear``'s weights (and bias) as float32 latent weights, on its device."""
        _check_linear(linear)
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, quant_config=quant_config,
                    device=linear.weight.device)
        return copy_linear_weights(layer, linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` -> ``(..., out_features)`` in ``x``'s dtype, on ``x``'s device."""
        if self.training and not self.deployed:
            self._check_input(x)
            return self._train_forward(x)
        kernel = self.kernel
        self._check_input(x, check_finite=not self._kernel_checks_finite(kernel, x))
        return self._eval_forward(x, kernel)

    def _train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """QAT forward (the namesake's hook name); ``x`` already checked."""
        if self.deployed:
            raise RuntimeError("Deployed layers cannot run the training forward (no latent weights)")
        return train_forward(x, self.weight, self.bias, self.quant_config)

    def _eval_forward(self, x: torch.Tensor, kernel=None) -> torch.Tensor:
        """Packed-kernel forward (the namesake's hook name); ``x`` already checked (NaN/Inf are left
        to the C++ op when :meth:`_kernel_checks_finite`; its error is reworded to name the layer).

        With grad enabled and ``x.requires_grad`` the input gets straight-through gradients
        (:class:`_PackedLinearSTE`); the output is the same either way."""
        packed, scales, trits = self._packed_state()  # one consistent snapshot, even with other threads
        kernel = self.kernel if kernel is None else kernel

        def run(xd: torch.Tensor) -> torch.Tensor:
            x2d = xd.reshape(-1, self.in_features).to(torch.float32).contiguous()
            if x2d.shape[0] == 0:
                y2d = torch.zeros((0, self.out_features), dtype=torch.float32, device=xd.device)
            else:
                bias = None if self.bias is None else self.bias.detach().to(torch.float32).contiguous()
                try:
                    y2d = kernel_linear(kernel, x2d, packed, self.in_features, scales.to(torch.float32), bias,
                                        self.quant_config.weight_granularity, trits)
                except ValueError as e:
                    if "NaN or Inf" in str(e):
                        raise ValueError(f"{type(self).__name__}: input contains NaN or Inf") from None
                    raise
            return y2d.reshape(*xd.shape[:-1], self.out_features).to(linear_output_dtype(xd))

        if not (torch.is_grad_enabled() and x.requires_grad):
            return run(x.detach())

        def dequantize() -> torch.Tensor:
            t = kernel.unpack(packed, self.in_features)
            return t.to(torch.float32) * scales.to(torch.float32).reshape(-1, 1)

        return _PackedLinearSTE.apply(x, run, dequantize)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"quant_config={self.quant_config!r}, deployed={self.deployed}"
        )


def _check_linear(linear) -> None:
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"BitLinear.from_linear: expected nn.Linear, got {type(linear).__name__}")


def copy_linear_weights(layer: "BitLinear", linear: nn.Linear) -> "BitLinear":
    """``layer`` (made with ``linear``'s shape and bias) with float32 copies of ``linear``'s weight and bias."""
    _check_linear(linear)
    with torch.no_grad():
        layer.weight.copy_(linear.weight.detach().float())
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach().float())
    return layer

"""BitLab operations: quantizers, packed layouts, the pure-PyTorch op table, the dispatcher and
the functional ternary linear.

* :mod:`.quant`, :mod:`.packing` - reference quantizers and packed layouts (device-generic)
* :mod:`.torch_ops` - every op in pure PyTorch, with its op name (``bitlab.linear_int8``, ...)
* :mod:`.dispatch` - runs an op on C++, CUDA or PyTorch by device and backend
* :mod:`.bitlinear` - ``train_forward``, ``eval_forward``, ``quantize_weights`` (the module is also
  callable as ``bitlinear(x, weight, bias, config)``)
"""

from . import packing, quant, torch_ops, dispatch  # noqa: I001  (order: dispatch needs torch_ops)
from . import bitlinear
from .bitlinear import bitlinear_qat

__all__ = ["packing", "quant", "torch_ops", "dispatch", "bitlinear", "bitlinear_qat"]

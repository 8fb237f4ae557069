"""BitLab core: 1.58-bit (ternary) quantization configs, kernels and ops.

* :mod:`bitcore.config`  - :class:`~bitcore.config.BitQuantConfig`
* :mod:`bitcore.ops`     - quantizers, packing, the PyTorch op table and the functional ``bitlinear``
* :mod:`bitcore.kernels` - :class:`~bitcore.kernels.KernelRegistry` and the kernels it dispatches to
"""

from lowbit._deps import require_torch

require_torch("bitcore")  # a clear ImportError, naming the fix, when PyTorch is missing

from .config import BitQuantConfig
from .ops import bitlinear

__all__ = ["BitQuantConfig", "bitlinear"]

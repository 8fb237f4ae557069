"""BitLab core: 1.58-bit (ternary) quantization configs, kernels and ops.

* :mod:`bitcore.config`  - :class:`~bitcore.config.BitQuantConfig`
* :mod:`bitcore.ops`     - quantizers, packing and the functional ``bitlinear``
* :mod:`bitcore.kernels` - :class:`~bitcore.kernels.KernelRegistry` and the kernels it dispatches to
"""

from .config import BitQuantConfig

__all__ = ["BitQuantConfig"]

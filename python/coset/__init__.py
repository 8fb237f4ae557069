"""Coset: hierarchical nested-lattice quantization (Kaplan & Ordentlich, arXiv 2505.13164).

Quick start::

    import torch
    from coset import D4Lattice, QuantizationConfig, encode, decode

    lattice = D4Lattice()
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    b, T = encode(torch.randn(4), lattice, config)
    x_hat = decode(b, lattice, config, T)

The native core (lowbit._native.coset) does the work on host data and CPU tensors: exact
closest points, bit-exact encode/decode at every SIMD level, bit-packed codes and lookup-table
inner products. Tensors on other devices stay there and run the bit-identical pure-PyTorch twin
(coset._torch_ops; ``lowbit.backend("torch")`` forces it everywhere). Users of the namesake
package: docs/migrating.md.
"""

from lowbit import __version__
from lowbit._deps import require_torch

require_torch("coset")  # its PyTorch twin of every op is part of the package: say so clearly


from .config import D4Config, E8Config, QuantizationConfig, Z2Config
from .lattices import D4Lattice, E8Lattice, Lattice, Z2Lattice
from .lut import OneSidedLUT, QuantizedMatrix, TwoSidedLUT
from .packing import pack, packed_size, unpack
from .quant import (decode, encode, optimal_beta, quantize, quantize_tensor, rate_optimal_config,
                    side_information_rate)

__all__ = [
    "__version__",
    "QuantizationConfig", "Z2Config", "D4Config", "E8Config",
    "Lattice", "Z2Lattice", "D4Lattice", "E8Lattice",
    "encode", "decode", "quantize", "quantize_tensor", "optimal_beta", "rate_optimal_config",
    "side_information_rate",
    "pack", "unpack", "packed_size",
    "OneSidedLUT", "TwoSidedLUT", "QuantizedMatrix",
    "QLinear", "PackedLinear", "quantize_model", "deploy_model", "deployable_config",
]


def __getattr__(name):  # these import torch.nn: load them on first use
    if name == "QLinear":
        from .nn import QLinear

        return QLinear
    if name in ("PackedLinear", "deployable_config"):
        from . import deploy

        return getattr(deploy, name)
    if name in ("quantize_model", "deploy_model"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'coset' has no attribute {name!r}")


def __dir__():  # the lazily loaded names too (tab completion, dir(coset))
    return sorted(set(globals()) | set(__all__))

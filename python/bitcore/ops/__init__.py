"""BitLab operations: quantizers, packed layouts and the functional ternary linear."""

from . import packing, quant
from .bitlinear import bitlinear, bitlinear_qat

__all__ = ["packing", "quant", "bitlinear", "bitlinear_qat"]

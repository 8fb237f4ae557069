"""``coset.quant.params``: the namesake's (mlsquare/coset) module path for :class:`QuantizationConfig`."""

from ..config import QuantizationConfig

__all__ = ["QuantizationConfig"]

"""``coset.quant.functional``: the namesake's (mlsquare/coset) module path for the codec functions.

The functions are those of :mod:`coset.quant` (same objects); this module only keeps
``from coset.quant.functional import encode, decode, quantize`` working.
"""

from . import (accumulate_modq, batch_decode, batch_encode, batch_quantize, decode, encode, mac_modq,
               quantize)

__all__ = ["encode", "decode", "quantize", "batch_encode", "batch_decode", "batch_quantize", "mac_modq",
           "accumulate_modq"]

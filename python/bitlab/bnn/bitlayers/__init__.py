"""The namesake's ``bitlab.bnn.bitlayers``: ``BitLinear`` (and the refused ``BitConv2d``)."""

from .bitlinear import BitConv2d, BitLinear

__all__ = ["BitLinear", "BitConv2d"]

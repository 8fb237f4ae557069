"""``bitlab.bnn``: the namesake's layer package on lowbit's layers.

* :class:`BitLinear` - a :class:`bitlayers.BitLinear` with the namesake's constructor
  ``BitLinear(in_features, out_features, bias=True, eps=1e-6, quant_type="ai8pc_wpt")``;
* :class:`Module` - ``nn.Module`` with ``deploy()`` (returns the model, every BitLab layer packed);
* ``BitConv2d`` - not provided (constructing one raises ``NotImplementedError``);
  ``bitlab.bnn.functional`` - not provided (importing it raises ``ImportError``).
"""

from .bitlayers import BitConv2d, BitLinear
from .module import Module

__all__ = ["Module", "BitLinear", "BitConv2d"]


def __getattr__(name: str):
    if name == "functional":
        import importlib

        return importlib.import_module(".functional", __name__)  # raises ImportError, saying what to use
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""``coset.legacy``: the module paths under which the namesake (mlsquare/coset) keeps its original API.

Its later versions moved ``coset.lattices``, ``coset.quant`` (with ``functional``, ``params``,
``sim``, ``vlut``, ``e8_gpu``) and ``coset.nn`` to ``coset.legacy.*``. Here those names are the
same modules as ``coset.lattices``, ``coset.quant`` and ``coset.nn`` (the same objects, so
``coset.legacy.lattices.E8Lattice is coset.E8Lattice``), registered under the legacy paths on
import.
"""

from __future__ import annotations

import importlib
import sys

_ALIASES = ("lattices", "lattices.base", "lattices.z2", "lattices.d4", "lattices.e8", "quant", "quant.functional",
            "quant.params", "quant.sim", "quant.vlut", "quant.e8_gpu", "nn")

for _name in _ALIASES:
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"coset.{_name}")

from coset import lattices, nn, quant  # noqa: E402  (the attributes of this package)

__all__ = ["lattices", "quant", "nn"]

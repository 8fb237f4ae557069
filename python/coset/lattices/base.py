"""Lattice objects of the seed API: ``Q(x)`` (closest point), ``G`` (generator), ``d``."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from lowbit._native import coset as _native

from .._arrays import back, float_array


class Lattice:
    """A lattice with a fast closest-point quantizer (Conway & Sloane, exact tie rule).

    ``G`` is the generator (lattice points are ``G @ b`` for integer ``b``), ``G_inv`` its
    inverse; both are exact (entries are multiples of 1/4).
    """

    name: str = ""

    def __init__(self) -> None:
        self.d: int = _native.lattice_dim(self.name)
        g = np.empty((self.d, self.d), dtype=np.float64)
        _native.generator_matrix(self.name, g)
        self._g = g
        self._g_inv = np.linalg.inv(g).round(6)  # exact: entries are multiples of 1/4

    @property
    def G(self):
        return back(self._g.astype(np.float32), _torch_default())

    @property
    def G_inv(self):
        return back(self._g_inv.astype(np.float32), _torch_default())

    def Q(self, x: Any, tie_dither: bool = True):
        """The closest lattice point to each vector of ``x`` (shape ``(..., d)``), same type out."""
        arr, as_torch, original = float_array(x, "x")
        if arr.ndim == 0 or arr.shape[-1] != self.d:
            raise ValueError(f"x: last dimension must be d={self.d} for {self.name}, got shape {tuple(arr.shape)}")
        out = np.empty_like(arr)
        _native.closest_points(self.name, arr, out, bool(tie_dither))
        return back(out, as_torch, original)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lattice) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def _torch_default() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def lattice_for(name: str) -> Lattice:
    """A shared instance of the named lattice (lattices are immutable)."""
    from . import LATTICES

    return LATTICES[name.upper()]()

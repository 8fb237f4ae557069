"""The lattices: Z2, D4, E8."""

from .base import Lattice, lattice_for
from .d4 import D4Lattice
from .e8 import E8Lattice
from .z2 import Z2Lattice

LATTICES = {"Z2": Z2Lattice, "D4": D4Lattice, "E8": E8Lattice}

__all__ = ["Lattice", "Z2Lattice", "D4Lattice", "E8Lattice", "LATTICES", "lattice_for"]

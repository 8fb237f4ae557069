"""Z2Lattice: the integer lattice Z^2 (baseline; NSM 1/12)."""

from .base import Lattice


class Z2Lattice(Lattice):
    """The integer lattice Z^2 (baseline; NSM 1/12)."""

    name = "Z2"

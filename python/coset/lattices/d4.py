"""D4Lattice: the checkerboard lattice D4 (NSM 0.0766)."""

from .base import Lattice


class D4Lattice(Lattice):
    """The checkerboard lattice D4 (NSM 0.0766)."""

    name = "D4"

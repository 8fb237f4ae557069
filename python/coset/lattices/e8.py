"""E8Lattice: the Gosset lattice E8 (NSM 0.0717)."""

from .base import Lattice


class E8Lattice(Lattice):
    """The Gosset lattice E8 (NSM 0.0717)."""

    name = "E8"

"""QuantizationConfig: the seed's configuration, validated on construction."""

from __future__ import annotations

import math
import numbers
import struct
from dataclasses import dataclass, fields
from typing import Any, Dict

from lowbit._native import coset as _native

LATTICE_DIMS = {"Z2": 2, "D4": 4, "E8": 8}
Q_RANGE = (2, 16)
M_RANGE = (1, 4)
MAX_SCALING_ITERATIONS = 255


def _plain_int(v: Any) -> Any:
    """numpy integers as Python ints (bools and everything else unchanged, for the checks to judge)."""
    if type(v).__module__ == "numpy" and isinstance(v, numbers.Integral) and type(v).__name__ != "bool_":
        return int(v)
    return v


@dataclass(frozen=True)
class QuantizationConfig:
    """Parameters of hierarchical nested-lattice quantization.

    ``q`` (2..16) is the alphabet per coordinate and level, ``M`` (1..4) the number of levels
    (integers; floats that hold one, such as the namesake's ``q=4.0``, are converted to ``int``):
    the rate is ``M * log2(q)`` bits per dimension plus the scaling count ``T`` of each vector.
    Encoding divides by ``beta`` and, on overload, by a further ``2**alpha`` per retry (up to
    ``max_scaling_iterations``). ``with_tie_dither`` selects the exact shift-invariant tie rule
    (keep it on: decoding is exact even where ``G b / q`` lies on a Voronoi boundary).
    ``with_dither`` adds a subtractive dither drawn from ``dither_seed`` and the vector's index.
    ``disable_scaling`` quantizes with ``beta = 1`` and so requires ``beta == 1`` (``ValueError``
    otherwise: the namesake applies beta whatever this flag says).

    Raises ``ValueError`` naming the field for any value out of range or of the wrong type.
    """

    lattice_type: str = "D4"
    q: int = 4
    M: int = 2
    beta: float = 1.0
    alpha: float = 1.0
    max_scaling_iterations: int = 10
    with_tie_dither: bool = True
    with_dither: bool = False
    disable_scaling: bool = False
    disable_overload_protection: bool = False
    dither_seed: int = 0

    def __post_init__(self) -> None:
        lt = self.lattice_type
        if not isinstance(lt, str) or lt.upper() not in LATTICE_DIMS:
            raise ValueError(f"lattice_type: expected one of 'Z2', 'D4', 'E8', got {lt!r}")
        object.__setattr__(self, "lattice_type", lt.upper())
        for name, (lo, hi) in (("q", Q_RANGE), ("M", M_RANGE),
                               ("max_scaling_iterations", (0, MAX_SCALING_ITERATIONS))):
            v = _plain_int(getattr(self, name))  # numpy integers (np.arange sweeps) as ints
            object.__setattr__(self, name, v)
            if isinstance(v, float) and not isinstance(v, bool):  # the namesake may pass q=4.0
                if not v.is_integer():
                    raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r} (a float must hold "
                                     "an integer, e.g. 4.0)")
                v = int(v)
                object.__setattr__(self, name, v)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r}")
        for name in ("beta", "alpha"):
            v = getattr(self, name)
            if isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)) and type(v).__module__ == "numpy":
                v = float(v)  # numpy floats (np.geomspace sweeps) as floats
                object.__setattr__(self, name, v)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")
        for name in ("with_tie_dither", "with_dither", "disable_scaling", "disable_overload_protection"):
            v = getattr(self, name)
            if type(v).__name__ == "bool_" and type(v).__module__ == "numpy":
                object.__setattr__(self, name, bool(v))
            elif not isinstance(v, bool):
                raise ValueError(f"{name}: expected a bool, got {v!r}")
        object.__setattr__(self, "dither_seed", _plain_int(self.dither_seed))
        if isinstance(self.dither_seed, bool) or not isinstance(self.dither_seed, int) or not 0 <= self.dither_seed < 2**64:
            raise ValueError(f"dither_seed: expected an integer in [0, 2**64), got {self.dither_seed!r}")
        if self.disable_scaling and self.beta != 1:
            # Here disable_scaling means beta = 1; the namesake (mlsquare/coset) ignores the flag and
            # divides by beta anyway, so the same call would quantize on another grid without a word.
            raise ValueError(f"beta: disable_scaling=True quantizes with beta = 1, so beta={self.beta!r} would be "
                             "ignored; pass disable_scaling=False to scale by beta (the namesake mlsquare/coset "
                             "applies beta whatever disable_scaling says), or beta=1.0")
        self._check_scale_range()  # the C++ validate() check, in Python (no native call here)

    def _check_scale_range(self) -> None:
        """``beta * 2**(alpha * max_scaling_iterations)`` must fit a float (QuantizationConfig::validate)."""
        base = 1.0 if self.disable_scaling else float(self.beta)
        try:  # "<f" (standard size) raises OverflowError past the float32 range; native "f" gives inf
            struct.pack("<f", base * math.exp2(float(self.alpha) * self.max_scaling_iterations))
        except OverflowError:
            raise ValueError("alpha: beta * 2^(alpha * max_scaling_iterations) overflows float") from None

    @property
    def d(self) -> int:
        return LATTICE_DIMS[self.lattice_type]

    @property
    def rate(self) -> float:
        """Bits per dimension, without the side information T."""
        import math

        return self.M * math.log2(self.q)

    def get_rate(self) -> float:
        """Bits per dimension of the codes, ``M * log2(q)`` (the namesake's name for :attr:`rate`)."""
        return self.rate

    def get_compression_ratio(self) -> float:
        """float32 bits over code bits per dimension: ``32 / (M * log2(q))`` (T not counted)."""
        return 32.0 / self.rate

    def to_dict(self) -> Dict[str, Any]:
        """Every field as a plain dict (JSON-serialisable); :meth:`from_dict` inverts it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, config_dict: Dict[str, Any]) -> "QuantizationConfig":
        """A config from :meth:`to_dict`'s output (unknown keys raise ``ValueError``)."""
        if not isinstance(config_dict, dict):
            raise ValueError(f"config_dict: expected a dict, got {type(config_dict).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config_dict) - known)
        if unknown:
            raise ValueError(f"config_dict: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**config_dict)

    def max_t(self) -> int:
        return 0 if self.disable_overload_protection else self.max_scaling_iterations

    def native(self) -> "_native.NativeConfig":
        c = _native.NativeConfig()
        c.lattice = self.lattice_type
        for f in fields(self):
            if f.name != "lattice_type":
                setattr(c, f.name, float(getattr(self, f.name)) if f.name in ("beta", "alpha") else getattr(self, f.name))
        c.validate()
        return c

    def replace(self, **changes) -> "QuantizationConfig":
        import dataclasses

        return dataclasses.replace(self, **changes)


def _fixed(lattice: str):
    def make(**kwargs) -> QuantizationConfig:
        if "lattice_type" in kwargs and str(kwargs["lattice_type"]).upper() != lattice:
            raise ValueError(f"lattice_type: {lattice}Config is for {lattice}, got {kwargs['lattice_type']!r}")
        kwargs["lattice_type"] = lattice
        return QuantizationConfig(**kwargs)

    make.__name__ = f"{lattice}Config"
    make.__doc__ = f"QuantizationConfig(lattice_type='{lattice}', ...)."
    return make


Z2Config = _fixed("Z2")
D4Config = _fixed("D4")
E8Config = _fixed("E8")

"""Lattice objects of the seed API: ``Q(x)`` (closest point), ``G`` (generator), ``d``."""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import numpy as np

from lowbit import _backend, _cuda_ops
from lowbit._native import coset as _native

from .. import _torch_ops
from .._arrays import back, float_array, is_tensor, require_finite, torch_float


class Lattice:
    """A lattice with an exact closest-point quantizer (Conway & Sloane, SPLAG ch. 20; the tie rule
    of docs/coset.md).

    ``G`` is the generator (lattice points are ``G @ b`` for integer ``b``; columns are the basis),
    ``G_inv`` its inverse; both exact (entries are multiples of 1/4), float32 tensors on
    ``device`` (default CPU). ``d`` is the dimension, ``name`` ``"Z2"``, ``"D4"`` or ``"E8"``.
    """

    name: str = ""

    def __init__(self, device: Any = None) -> None:
        self.d: int = _torch_ops.DIMS[self.name]
        self._device = device

    @property
    def _g(self) -> np.ndarray:
        return np.array(_torch_ops.generator_rows(self.name), dtype=np.float64)

    @property
    def _g_inv(self) -> np.ndarray:
        return np.array(_torch_ops.inverse_generator_rows(self.name), dtype=np.float64)

    @property
    def device(self):
        """Where ``G`` and ``G_inv`` live (the namesake's ``device=``); ``Q`` follows its input."""
        import torch

        return torch.device(self._device if self._device is not None else "cpu")

    def _matrix(self, rows):
        if not _torch_default():
            return np.asarray(rows, dtype=np.float32)
        import torch

        return torch.tensor(rows, dtype=torch.float32, device=self.device)

    @property
    def G(self):
        return self._matrix(_torch_ops.generator_rows(self.name))

    @property
    def G_inv(self):
        return self._matrix(_torch_ops.inverse_generator_rows(self.name))

    def Q(self, x: Any, tie_dither: bool = True):
        """The closest lattice point to each vector of ``x`` (shape ``(..., d)``), same type out.

        Ties follow the codec's rule (``tie_dither=True``), so ``G b - q Q(G b / q)`` (Algorithm 2
        written with this ``Q``) equals :func:`coset.decode`. float16/bfloat16 are computed in
        float32. Tensors stay on their device. Raises ``ValueError`` for a last dimension other
        than d and for NaN or Inf.
        """
        if is_tensor(x) and _backend.uses_torch(x, "x"):
            t = torch_float(x, "x")
            if t.dim() == 0 or t.shape[-1] != self.d:
                raise ValueError(f"x: last dimension must be d={self.d} for {self.name}, got shape {tuple(t.shape)}")
            require_finite(t, "closest_points", self.d)
            impl = _backend.select(x.device, "x")
            fn = (_cuda_ops.get("coset.closest_point") if impl == "cuda" else None) or _torch_ops.closest_point
            out = fn(t, self.name, bool(tie_dither))
            return out.to(x.dtype) if x.is_floating_point() else out
        arr, as_torch, original = float_array(x, "x")
        if arr.ndim == 0 or arr.shape[-1] != self.d:
            raise ValueError(f"x: last dimension must be d={self.d} for {self.name}, got shape {tuple(arr.shape)}")
        out = np.empty_like(arr)
        _native.closest_points(self.name, arr, out, bool(tie_dither))
        return back(out, as_torch, original)

    def encode_coords(self, x: Any, q: int):
        """``round(G^-1 x) mod q`` for lattice points ``x`` (..., d): float codes in [0, q) (the namesake's)."""
        if is_tensor(x):
            import torch

            g_inv = torch.tensor(_torch_ops.inverse_generator_rows(self.name), dtype=torch.float64, device=x.device)
            b = (x.detach().to(torch.float64).unsqueeze(-2) * g_inv).sum(-1)
            return torch.remainder(torch.round(b), q).to(x.dtype if x.is_floating_point() else torch.float32)
        b = np.asarray(x, dtype=np.float64) @ self._g_inv.T
        return np.mod(np.round(b), q).astype(np.float32)

    def decode_coords(self, b: Any, q: int):
        """``G b`` for codes ``b`` (..., d) (float or integer): the lattice point (float32, the namesake's)."""
        del q  # the namesake's signature; G b does not depend on q
        if is_tensor(b):
            import torch

            g = torch.tensor(_torch_ops.generator_rows(self.name), dtype=torch.float32, device=b.device)
            return (b.detach().to(torch.float32).unsqueeze(-2) * g).sum(-1)
        return (np.asarray(b, dtype=np.float64) @ self._g.T).astype(np.float32)

    def custom_round(self, x: Any, tiny: Optional[float] = None):
        """The namesake's rounding helper: halves round toward zero (``floor(x - sign(x) tiny + 1/2)``).

        Not what ``Q`` uses (``Q`` follows the codec's tie rule); kept for code written against it.
        """
        import torch

        if tiny is None:
            tiny = torch.finfo(x.dtype if x.is_floating_point() else torch.float32).eps
        return torch.floor(x - torch.sign(x) * tiny + 0.5)

    def g_x(self, x: Any):
        """The namesake's D_n helper: :meth:`custom_round`, then the coordinate farthest from an
        integer rounded the other way (Conway & Sloane's g(x)); over the last axis."""
        import torch

        f = self.custom_round(x)
        k = torch.argmax(torch.abs(x - f), dim=-1, keepdim=True)
        xk, fk = torch.gather(x, -1, k), torch.gather(f, -1, k)
        up = torch.where(xk >= 0, fk < xk, fk <= xk)
        return f.scatter(-1, k, torch.where(up, fk + 1, fk - 1))

    def generate_tie_dither(self, beta: float = 1.0, Rin: float = 0.5, magnitude: Any = "auto"):
        """The namesake's constant tie-breaking dither: a tiny vector along an irrational direction.

        Not needed here (the tie rule is exact); kept for code written against it. Shape (d,).
        """
        import torch

        primes = [2, 3, 5, 7, 11, 13, 17, 19][: self.d]
        irr = torch.tensor([math.sqrt(p) for p in primes], dtype=torch.float32)
        u = (irr - torch.floor(irr)) - 0.5
        u = u / torch.norm(u)
        delta = 2.0 ** -40 * beta * Rin if magnitude == "auto" else float(magnitude)
        return delta * u

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d})"

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

"""``coset.quant.vlut``: the namesake's (mlsquare/coset) value lookup tables (``vLUTManager``).

A level's code ``b`` (d digits in ``[0, q)``) stands for the point ``rep(b) = G b - q Q(G b / q)``,
the term that :func:`coset.decode` weights by ``q^m``. The namesake's tables are indexed by
:func:`_encoding_to_index` (``sum_j b_j q^(d-1-j)``: the first coordinate is the most
significant digit) and hold, for a query ``y`` of shape (d,), ``vlut[i] = <y, rep(b_i)>``. So for
codes ``b`` (M, d) and ``T`` from :func:`coset.encode`::

    <y, decode(b, lattice, config, T)> == beta * 2**(alpha*T) * sum_m q**m * vlut[index(b[m])]

(``beta`` is 1 under ``disable_scaling``; without ``with_dither``). The tables here use this
package's ``rep`` (the one :func:`coset.decode` uses), so that identity holds exactly up to float
rounding; the namesake builds them from ``b @ G`` without the reduction, which does not match its
own decoder. For tables indexed the other way round (lowest coordinate first), several blocks,
and the scale built in, use :class:`coset.OneSidedLUT` / :class:`coset.TwoSidedLUT`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from .._arrays import as_tensor
from ..config import QuantizationConfig
from ..lattices.base import Lattice
from . import _check_pair, decode

MAX_ENTRIES = 1 << 16  # q^d per table: E8 q=4, D4 q=16, Z2 q=16 at most


def _encoding_to_index(encoding: torch.Tensor, q: int) -> torch.Tensor:
    """Table index of each row of ``encoding`` (shape (n, d), digits in ``[0, q)``, any real dtype):
    ``sum_j encoding[:, j] * q^(d-1-j)`` as int64 of shape (n,), on the codes' device."""
    if not torch.is_tensor(encoding) or encoding.dim() != 2:
        raise ValueError(f"encoding: expected a tensor of shape (n, d), got "
                         f"{tuple(encoding.shape) if torch.is_tensor(encoding) else type(encoding).__name__}")
    d = encoding.shape[1]
    weights = torch.tensor([q ** (d - 1 - j) for j in range(d)], dtype=torch.int64, device=encoding.device)
    return (encoding.to(torch.int64) * weights).sum(dim=1)


class vLUTManager:  # noqa: N801 (the namesake's name)
    """Value lookup tables of one lattice and config (the namesake's ``vLUTManager``).

    ``build_one_sided_vlut(y)`` gives the (q^d,) float32 table ``<y, rep(b_i)>`` for a query ``y``
    of shape (d,); ``build_two_sided_vlut()`` the (q^d, q^d) table ``<rep(b_i), rep(b_j)>``. Both
    are cached (one-sided tables by the query's exact values and the device). ``device`` defaults
    to the CPU, as in the namesake. Raises ``ValueError`` for a lattice/config mismatch, more than
    65536 entries per table, and a query of another shape.
    """

    def __init__(self, lattice: Lattice, config: QuantizationConfig) -> None:
        _check_pair(lattice, config)
        if config.q ** lattice.d > MAX_ENTRIES:
            raise ValueError(f"config: q^d = {config.q}^{lattice.d} = {config.q ** lattice.d} table entries exceed "
                             f"{MAX_ENTRIES} (E8 allows q <= 4)")
        self.lattice, self.config = lattice, config
        self.q, self.d, self.M = config.q, lattice.d, config.M
        self._points: Dict[str, torch.Tensor] = {}
        self._one_sided_vluts: Dict[Tuple[str, Tuple[float, ...]], torch.Tensor] = {}
        self._two_sided_vlut: Optional[torch.Tensor] = None
        self._last: Optional[tuple] = None  # (query tensor, a copy of its values, device, table)

    def get_vlut_size(self) -> int:
        """Entries per table, ``q^d``."""
        return self.q ** self.d

    def lattice_points(self, device: Any = None) -> torch.Tensor:
        """``rep(b_i)`` for every index i, shape (q^d, d) float32 (row i: the digits of i, first most significant)."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        key = str(dev)
        if key not in self._points:
            digits = torch.cartesian_prod(*[torch.arange(self.q, dtype=torch.uint8)] * self.d)
            one_level = self.config.replace(M=1, beta=1.0, with_dither=False)
            reps = decode(digits.reshape(-1, 1, self.d), self.lattice, one_level, 0)
            self._points[key] = reps.to(dev)
        return self._points[key]

    def build_one_sided_vlut(self, query_vector: Any, device: Any = None) -> torch.Tensor:
        """(q^d,) float32 table ``<query_vector, rep(b_i)>`` on ``device`` (default CPU)."""
        last = self._last
        # The same tensor asked for again with the same values: its table, without computing the key.
        # The values are compared (d numbers), not only `_version`: writes through `.data` or a numpy
        # view of the tensor leave `_version` as it was.
        if last is not None and last[0] is query_vector and last[2] == device \
                and query_vector.dtype == last[1].dtype and torch.equal(query_vector, last[1]):
            return last[3]
        dev = torch.device(device) if device is not None else torch.device("cpu")
        y = as_tensor(query_vector)
        if tuple(y.shape) not in ((self.d,), (1, self.d)) or y.dtype == torch.bool or y.is_complex():
            raise ValueError(f"query_vector: expected a real vector of shape ({self.d},), got shape {tuple(y.shape)} "
                             f"dtype {y.dtype}")
        y = y.reshape(self.d).detach().to(dev, torch.float64)
        key = (str(dev), tuple(y.tolist()))
        if key not in self._one_sided_vluts:
            self._one_sided_vluts[key] = (self.lattice_points(dev).double() @ y).float()
        table = self._one_sided_vluts[key]
        if isinstance(query_vector, torch.Tensor) and not query_vector.is_meta:
            self._last = (query_vector, query_vector.detach().clone(), device, table)
        return table

    def build_two_sided_vlut(self, device: Any = None) -> torch.Tensor:
        """(q^d, q^d) float32 table ``<rep(b_i), rep(b_j)>`` on ``device`` (default CPU)."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if self._two_sided_vlut is None or self._two_sided_vlut.device != dev:
            p = self.lattice_points(dev).double()
            self._two_sided_vlut = (p @ p.T).float()
        return self._two_sided_vlut

    def clear_cache(self) -> None:
        """Forget every table built so far."""
        self._points.clear()
        self._one_sided_vluts.clear()
        self._last = None
        self._two_sided_vlut = None


def build_vlut(lattice: Lattice, config: QuantizationConfig, device: Any = None) -> torch.Tensor:
    """The two-sided table of :class:`vLUTManager` (``<rep(b_i), rep(b_j)>``, (q^d, q^d) float32)."""
    return vLUTManager(lattice, config).build_two_sided_vlut(device)


__all__ = ["vLUTManager", "build_vlut"]

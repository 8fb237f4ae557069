"""``coset.quant.sim``: the namesake's (mlsquare/coset) ``LatticeVectorSimulator``.

It makes test vectors that are already quantized (``quantize`` of small Gaussian vectors with
``beta = 1``, no overload retries), so that encoding them again must reproduce them exactly.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from .._arrays import as_tensor
from ..config import QuantizationConfig
from ..lattices import LATTICES
from . import quantize


class LatticeVectorSimulator:
    """Vectors in the quantized space of ``lattice_type`` (``"Z2"``, ``"D4"``, ``"E8"``) with ``q``, ``M``.

    Attributes as in the namesake: ``lattice``, ``config`` (``beta = alpha = 1``,
    ``disable_scaling`` and ``disable_overload_protection`` on), ``lattice_type``, ``q``, ``M``,
    ``device``, ``encoding_space_size`` (``q^(M d)``), ``single_level_size`` (``q^d``). Raises
    ``ValueError`` for an unknown lattice type or a q/M out of :class:`QuantizationConfig`'s range.
    """

    def __init__(self, lattice_type: str = "E8", q: int = 3, M: int = 2, device: Any = None) -> None:
        if not isinstance(lattice_type, str) or lattice_type.upper() not in ("Z2", "D4", "E8"):
            raise ValueError(f"lattice_type: expected 'Z2', 'D4' or 'E8', got {lattice_type!r}")
        self.config = QuantizationConfig(lattice_type=lattice_type, q=q, M=M, beta=1.0, alpha=1.0,
                                         max_scaling_iterations=10, with_tie_dither=True, with_dither=False,
                                         disable_scaling=True, disable_overload_protection=True)
        self.lattice_type, self.q, self.M = self.config.lattice_type, self.config.q, self.config.M
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.lattice = LATTICES[self.lattice_type]()
        self.encoding_space_size = self.q ** (self.M * self.lattice.d)
        self.single_level_size = self.q ** self.lattice.d

    def generate_vectors(self, batch_size: int) -> torch.Tensor:
        """(batch_size, d) float32 on ``device``: ``quantize(0.5 * randn)``, points of the codebook."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size: expected a non-negative integer, got {batch_size!r}")
        x = torch.randn(batch_size, self.lattice.d, device=self.device) * 0.5
        return quantize(x, self.lattice, self.config)

    def generate_matrix(self, rows: int, cols: int) -> torch.Tensor:
        """(rows, cols) float32: generated vectors laid end to end, row-major."""
        d = self.lattice.d
        vectors = self.generate_vectors((rows * cols + d - 1) // d)
        return vectors.reshape(-1)[: rows * cols].reshape(rows, cols)

    def validate_reconstruction(self, simulated_vectors: torch.Tensor, tolerance: float = 1e-6) -> Dict[str, float]:
        """Quantize ``simulated_vectors`` (n, d) again and measure the distance to themselves.

        Returns ``max_error``, ``mean_error``, ``std_error`` (Euclidean norms per vector),
        ``exact_reconstructions`` (count below ``tolerance``), ``exact_rate`` and ``tolerance``.
        """
        v = as_tensor(simulated_vectors).to(self.device, torch.float32)
        if v.dim() != 2 or v.shape[1] != self.lattice.d or v.shape[0] == 0:
            raise ValueError(f"simulated_vectors: expected shape (n, {self.lattice.d}) with n > 0, got {tuple(v.shape)}")
        errors = torch.linalg.norm(v - quantize(v, self.lattice, self.config), dim=1)
        exact = int((errors < tolerance).sum())
        return {
            "max_error": float(errors.max()),
            "mean_error": float(errors.mean()),
            "std_error": float(errors.std()) if errors.numel() > 1 else 0.0,
            "exact_reconstructions": exact,
            "exact_rate": exact / v.shape[0],
            "tolerance": tolerance,
        }


def create_simulator(lattice_type: str = "E8", q: int = 3, M: int = 2, device: Any = None) -> LatticeVectorSimulator:
    """``LatticeVectorSimulator(lattice_type, q, M, device)`` (device: CUDA when available, else CPU)."""
    return LatticeVectorSimulator(lattice_type, q, M, device)


__all__ = ["LatticeVectorSimulator", "create_simulator"]

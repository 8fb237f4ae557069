"""``coset.quant.e8_gpu``: the namesake's (mlsquare/coset) batched E8 helpers.

Here every codec function is batched and runs where its input lives (the C++ kernels for CPU
tensors, the PyTorch twin on other devices), so these are thin wrappers with the namesake's
signatures and result types: float32 codes and int64 T, like :func:`coset.quant.batch_encode`.
Unlike the namesake's ``batch_encode_e8``, an overloaded vector is rescaled and its real ``T``
returned (the namesake records ``max_scaling_iterations`` without rescaling).
"""

from __future__ import annotations

from typing import Any, Tuple

from .._arrays import as_tensor
from ..lattices import E8Lattice
from . import batch_decode, batch_encode
from ..config import QuantizationConfig


def _require_e8(lattice: Any, config: Any) -> None:
    if not isinstance(config, QuantizationConfig) or config.lattice_type != "E8":
        got = config.lattice_type if isinstance(config, QuantizationConfig) else type(config).__name__
        raise ValueError(f"config: the *_e8 functions need an E8 config (QuantizationConfig(lattice_type='E8')), "
                         f"got {got!r}; coset.quant.batch_encode / batch_decode take any lattice")
    if not isinstance(lattice, E8Lattice):
        raise ValueError(f"lattice: the *_e8 functions need an E8Lattice, got {type(lattice).__name__}")


def batch_e8_quantize(X: Any, device: Any = None) -> Any:
    """Closest E8 points of the rows of ``X`` (shape (..., 8), float) -> same shape, float32.

    Runs on ``device`` when given (``X`` is moved there), else on X's device. Raises
    ``ValueError`` when the last dimension is not 8 or ``X`` holds NaN or Inf.
    """
    import torch

    if device is not None:
        X = as_tensor(X, torch.device(device))
    shape = tuple(X.shape) if hasattr(X, "shape") else None
    if not shape or shape[-1] != 8:
        raise ValueError(f"X: expected shape (..., 8) for E8, got {shape}")
    return E8Lattice().Q(X)


def batch_encode_e8(X: Any, lattice: E8Lattice, config: QuantizationConfig, dither: Any = None,
                    device: Any = None) -> Tuple[Any, Any]:
    """``X`` (n, 8) -> ``(encodings (n, M, 8) float32, T (n,) int64)`` on ``device`` (default X's).

    Raises ``ValueError`` for a lattice or config other than E8 and whatever :func:`coset.encode`
    raises."""
    _require_e8(lattice, config)
    return batch_encode(X, lattice, config, dither=dither, device=device)


def batch_decode_e8(encodings: Any, T_values: Any, lattice: E8Lattice, config: QuantizationConfig,
                    dither: Any = None, device: Any = None) -> Any:
    """``encodings`` (n, M, 8) and ``T_values`` (n,) -> (n, 8) float32 on ``device`` (default the codes')."""
    _require_e8(lattice, config)
    if device is not None and hasattr(T_values, "to"):
        import torch

        T_values = T_values.to(torch.device(device))
    return batch_decode(encodings, T_values, lattice, config, dither=dither, device=device)


def batch_quantize_e8(X: Any, lattice: E8Lattice, config: QuantizationConfig, dither: Any = None,
                      device: Any = None) -> Any:
    """``batch_decode_e8(*batch_encode_e8(X, ...))``: (n, 8) -> (n, 8) float32."""
    b, t = batch_encode_e8(X, lattice, config, dither=dither, device=device)
    return batch_decode_e8(b, t, lattice, config, dither=dither, device=device)


__all__ = ["batch_e8_quantize", "batch_encode_e8", "batch_decode_e8", "batch_quantize_e8"]

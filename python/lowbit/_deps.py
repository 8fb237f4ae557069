"""Optional dependencies: a clear ImportError when a package needs PyTorch and it is missing.

``kuat`` (archives, conversion, ``KuatDataset``) needs only numpy; ``coset`` works on numpy arrays
too. ``bitcore``, ``bitlayers``, ``bitmodels``, ``kuat.torch`` and Coset's ``QLinear`` are PyTorch
modules.
"""

from __future__ import annotations


def require_torch(package: str):
    """Import and return ``torch``; raise ``ImportError`` naming ``package`` and the fix if absent."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{package} needs PyTorch, which is not installed: install it with `pip install torch` "
            f"(1.13 or 2.x, CPU or CUDA build). kuat (archives, conversion, KuatDataset) and coset's "
            f"numpy functions work without it.") from e
    return torch

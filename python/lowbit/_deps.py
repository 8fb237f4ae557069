"""Optional dependencies: a clear ImportError when a package needs PyTorch and it is missing.

``kuat`` (archives, conversion, ``KuatDataset`` with numpy output) needs only numpy.
``coset`` (whose every op has a PyTorch twin), ``bitcore``, ``bitlayers``, ``bitmodels``, ``bitlab``,
``kuat.torch`` and ``kuat.gpu`` need PyTorch.
"""

from __future__ import annotations


def require_torch(package: str):
    """Import and return ``torch``; raise ``ImportError`` naming ``package`` and the fix if absent."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{package} needs PyTorch, which is not installed: install it with `pip install torch` "
            f"(1.13 or 2.x, CPU or CUDA build). kuat (archives, conversion, KuatDataset) works without it.") from e
    return torch

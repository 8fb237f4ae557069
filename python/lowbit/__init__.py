"""lowbit: low-bit compression for machine learning.

Three products share one native core (``lowbit._native``):

* ``kuat``  - image datasets compressed by vector quantization, decoded by a codebook gather;
* ``coset`` - hierarchical nested-lattice quantization (Z2, D4, E8);
* ``bitcore`` / ``bitlayers`` / ``bitmodels`` - 1.58-bit (ternary) weights with packed kernels.

``python -m lowbit`` prints :func:`build_info`. Which implementation runs an op on a torch tensor
(C++, CUDA or pure PyTorch) is chosen by ``LOWBIT_BACKEND`` or ``with lowbit.backend("torch"):``
(rules in :mod:`lowbit._backend`).
"""

from __future__ import annotations

from . import _native
from ._backend import backend, get_backend, set_backend

__version__: str = _native.__version__

__all__ = [
    "__version__",
    "build_info",
    "simd_level",
    "set_simd_level",
    "available_simd_levels",
    "num_threads",
    "backend",
    "get_backend",
    "set_backend",
]

simd_level = _native.simd_level
set_simd_level = _native.set_simd_level
available_simd_levels = _native.available_simd_levels
num_threads = _native.num_threads


def _torch_sees_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver must not break build_info()
        return False


def build_info() -> dict:
    """What this build contains and what it selected at run time.

    Keys: ``version``, ``compiler``, ``simd_compiled``, ``simd_available``, ``simd_selected``,
    ``cuda_compiled``, ``cuda_devices``, ``gpu_visible``, ``image_codecs`` (Kuat reads JPEG/PNG/WebP
    files; False in a ``LOWBIT_IMAGE_CODECS=OFF`` build), ``gzip`` (gzip-compressed IDX files; False
    when zlib was missing at build time), ``num_threads``.
    """
    info = dict(_native.build_info())
    info["gpu_visible"] = info["cuda_devices"] > 0 or _torch_sees_gpu()
    return info

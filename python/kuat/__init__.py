"""Kuat: image datasets compressed by vector quantization of pixel patches.

* :class:`KuatArchive` - random access to a ``.kuat`` file (``archive[i]``, ``get_batch``, and
  Kuat-Beta's ``decode``/``label``/``get_indices_batch``/... accessors).
* :class:`KuatDataset` - shuffled batches from the C++ loader (numpy), or torch tensors decoded on
  any torch device with ``device=``; :class:`KuatEpochIterator` is what ``epoch(n)`` returns.
* :func:`convert_dataset` - convert MNIST-style IDX files, CIFAR pickles, image folders or
  ImageNet-style class folders into an archive (the engine behind ``kuat convert``).
* :class:`GPUDecoder`, :class:`GPUDataset` (also in :mod:`kuat.gpu`) - PyTorch decode on a device;
  they need torch and are loaded on first use, so ``import kuat`` works without it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from lowbit import __version__

from .archive import KuatArchive
from .convert import convert_dataset
from .dataset import KuatDataset, KuatEpochIterator

__all__ = ["KuatArchive", "KuatDataset", "KuatEpochIterator", "convert_dataset", "__version__"]
if importlib.util.find_spec("torch") is not None:  # `from kuat import *` must work without torch
    __all__ += ["GPUDecoder", "GPUDataset"]


def __getattr__(name: str) -> Any:
    # kuat.gpu (the documented module) and its two classes load on first use, so `import kuat`
    # never imports torch. import_module, not `from . import gpu`: that form looks the name up on
    # this package first, which would call this function again.
    if name in ("gpu", "GPUDecoder", "GPUDataset"):
        try:
            gpu = importlib.import_module(f"{__name__}.gpu")
        except ImportError as e:  # no torch: the names are absent, as in Kuat-Beta
            raise AttributeError(f"kuat.{name} needs PyTorch ({e})") from None
        return gpu if name == "gpu" else getattr(gpu, name)
    raise AttributeError(f"module 'kuat' has no attribute {name!r}")

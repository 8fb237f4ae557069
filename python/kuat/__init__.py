"""Kuat: image datasets compressed by vector quantization of pixel patches.

* :class:`KuatArchive` - random access to a ``.kuat`` file (``archive[i]``, ``get_batch``).
* :func:`convert_dataset` - convert MNIST-style IDX files, CIFAR pickles, image folders or
  ImageNet-style class folders into an archive (the engine behind ``kuat convert``).
"""

from __future__ import annotations

from .archive import KuatArchive
from .convert import convert_dataset
from .dataset import KuatDataset

__all__ = ["KuatArchive", "KuatDataset", "convert_dataset"]

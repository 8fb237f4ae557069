"""KuatArchive: random access to the samples of a .kuat file."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Sequence, Union

import numpy as np

from lowbit import _native

_kuat = _native.kuat


class KuatArchive:
    """An open Kuat archive (memory-mapped; opening does not read the index data).

    ``archive[i]`` is ``{"image": HxWxC uint8 array, "label": int}``; negative indices count
    from the end. Errors: ``OSError`` for a missing, truncated or corrupt file, ``ValueError``
    for bad arguments (out-of-range indices, ``get_batch`` on a variable-size archive, ...).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self._native = _kuat.Archive(os.fspath(path))
        self._metadata = json.loads(self._native.metadata_json)

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"KuatArchive({self._native.path!r}, samples={len(self)}, codebook_size={self.codebook_size})"

    def _index(self, i: int) -> int:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return j

    def __getitem__(self, i: int) -> Dict[str, Any]:
        j = self._index(i)
        return {"image": self._native.decode(j), "label": self._native.label(j)}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def get_batch(self, indices: Sequence[int]) -> Dict[str, Any]:
        """Decodes several samples in parallel.

        Fixed-shape archives: ``{"images": (B, H, W, C) uint8, "labels": (B,) int32}``.
        Variable-size archives: ``"images"`` is a list of HxWxC arrays.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        if self._native.fixed_shape:
            return self._native.get_batch(np.ascontiguousarray(idx))
        images = [self._native.decode(int(i)) for i in idx]
        labels = np.array([self._native.label(int(i)) for i in idx], dtype=np.int32)
        return {"images": images, "labels": labels}

    def info(self) -> Dict[str, Any]:
        """Samples, shape, codebook, size, compression ratio, quality and the full metadata."""
        return json.loads(self._native.summary_json())

    def verify(self) -> None:
        """Checks every checksum and decodes every sample (``OSError`` on the first problem)."""
        self._native.verify()

    @property
    def path(self) -> str:
        return self._native.path

    @property
    def codebook(self) -> np.ndarray:
        """The codebook, (K, P, P, C) uint8."""
        return self._native.codebook()

    @property
    def codebook_size(self) -> int:
        return self._native.codebook_size

    @property
    def codebook_hash(self) -> int:
        return self._native.codebook_hash

    @property
    def classes(self) -> List[str]:
        return list(self._native.classes)

    @property
    def labels(self) -> np.ndarray:
        return self._native.labels()

    @property
    def metadata(self) -> Dict[str, Any]:
        return self._metadata

    @property
    def fixed_shape(self) -> bool:
        return self._native.fixed_shape

    def shape(self, i: int) -> tuple:
        """(H, W, C) of sample i."""
        return tuple(self._native.shape(self._index(i)))

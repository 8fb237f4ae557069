"""KuatArchive: random access to the samples of a .kuat file."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from lowbit import _native

from ._index import sample_index, sample_rows

_kuat = _native.kuat


class KuatArchive:
    """An open Kuat archive (memory-mapped; opening does not read the index data).

    ``archive[i]`` is ``{"image": HxWxC uint8 array, "label": int}``; negative indices count
    from the end. Errors: ``OSError`` for a missing, truncated or corrupt file, ``ValueError``
    for bad arguments (``get_batch`` on a variable-size archive, ...), ``IndexError`` for a sample
    index out of range and ``TypeError`` for one that is not an int.

    Kuat-Beta's accessors work unchanged: ``len()``, ``decode(i) -> (image, label)``,
    ``label(i)``, ``decode_batch(indices)``, ``all_labels()``, ``codebook_numpy()``,
    ``get_indices_batch(indices)``, ``patch_size``, ``dimensions``, ``grid_size`` and
    ``info()["bits"]`` (docs/migrating.md lists the differences). Labels of unlabelled samples
    are ``None`` in those accessors (Kuat-Beta's convention) and -1 in ``labels``/``get_batch``.

    Pickling (``copy.deepcopy``, DataLoader workers started with ``"spawn"``) stores the path and
    reopens the file when unpickled: ``OSError`` if it is gone or now holds another archive.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self._native = _kuat.Archive(os.fspath(path))
        self._abspath = os.path.abspath(os.fspath(path))  # what a pickle reopens, whatever the cwd then
        self._metadata = json.loads(self._native.metadata_json)

    def __getstate__(self) -> Dict[str, Any]:
        # The native handle (an mmap) cannot be pickled: pickling (DataLoader workers under
        # "spawn"/"forkserver", deepcopy, torch.save of a dataset holding an archive) stores the path
        # and what identifies the archive's content; unpickling reopens the file.
        return {"path": getattr(self, "_abspath", self.path), "samples": len(self), "codebook_hash": self.codebook_hash}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["path"])
        if (len(self), self.codebook_hash) != (state["samples"], state["codebook_hash"]):
            raise OSError(f"{state['path']}: the archive changed since it was pickled ({state['samples']} samples, "
                          f"codebook hash {state['codebook_hash']:#x}; now {len(self)} samples, codebook hash "
                          f"{self.codebook_hash:#x})")

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"KuatArchive({self._native.path!r}, samples={len(self)}, codebook_size={self.codebook_size})"

    def _index(self, i: Any) -> int:
        return sample_index(i, len(self))

    def __getitem__(self, i: int) -> Dict[str, Any]:
        j = self._index(i)
        return {"image": self._native.decode(j), "label": self._native.label(j)}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def get_batch(self, indices: Sequence[int]) -> Dict[str, Any]:
        """Decodes several samples in parallel.

        Fixed-shape archives: ``{"images": (B, H, W, C) uint8, "labels": (B,) int32}``.
        Variable-size archives: ``"images"`` is a list of HxWxC arrays. IndexError for an index out
        of range, TypeError for one that is not an int.
        """
        idx = self._rows(indices)  # IndexError / TypeError like indexing, naming the index given
        if self._native.fixed_shape:
            return self._native.get_batch(np.ascontiguousarray(idx))
        images = [self._native.decode(int(i)) for i in idx]
        labels = np.array([self._native.label(int(i)) for i in idx], dtype=np.int32)
        return {"images": images, "labels": labels}

    def info(self) -> Dict[str, Any]:
        """Samples, shape, codebook, size, compression ratio, quality and the full metadata.

        Also Kuat-Beta's keys: ``path``, ``samples``, ``width``/``height`` (None for a variable-size
        archive), ``bits`` (the converter's ``--bits``, bits per channel of the training coreset;
        None if the archive does not record it) and ``classes`` (list of names).
        """
        info = json.loads(self._native.summary_json())
        conversion = self._metadata.get("conversion")
        bits = conversion.get("bits") if isinstance(conversion, dict) else None
        info.setdefault("path", self.path)
        info.setdefault("samples", len(self))
        if self.fixed_shape:
            h, w, _ = self.shape(0) if len(self) else (None, None, None)
            info.setdefault("width", w)
            info.setdefault("height", h)
        else:
            info.setdefault("width", None)
            info.setdefault("height", None)
        info.setdefault("bits", bits)
        info.setdefault("classes", self.classes)
        return info

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

    # -- Kuat-Beta accessors ------------------------------------------------------------------
    def len(self) -> int:
        """Number of samples (Kuat-Beta's ``archive.len()``; same as ``len(archive)``)."""
        return len(self)

    def _label_or_none(self, j: int) -> Optional[int]:
        label = self._native.label(j)
        return None if label < 0 else int(label)

    def decode(self, i: int) -> Tuple[np.ndarray, Optional[int]]:
        """``(image, label)``: sample i as (H, W, C) uint8 and its label (None when unlabelled).

        IndexError for an index out of range (negative indices count from the end).
        """
        j = self._index(i)
        return self._native.decode(j), self._label_or_none(j)

    def label(self, i: int) -> Optional[int]:
        """Label of sample i (None when unlabelled); IndexError out of range."""
        return self._label_or_none(self._index(i))

    def decode_batch(self, indices: Sequence[int]) -> Union[np.ndarray, List[np.ndarray]]:
        """Images of several samples: (B, H, W, C) uint8 (a list of (H, W, C) arrays for a
        variable-size archive). IndexError for an index out of range."""
        rows = self._rows(indices)
        if not self.fixed_shape:
            return [self._native.decode(int(j)) for j in rows]
        return self._native.get_batch(rows)["images"]

    def all_labels(self) -> List[Optional[int]]:
        """Every sample's label in order, None for unlabelled samples (``labels`` is the int32 array)."""
        return [None if v < 0 else int(v) for v in self._native.labels().tolist()]

    def codebook_numpy(self) -> np.ndarray:
        """The codebook as a writable (K, P*P*C) uint8 array, rows in (py, px, c) order."""
        cb = self._native.codebook()
        return np.ascontiguousarray(cb.reshape(cb.shape[0], -1))

    def get_indices_batch(self, indices: Sequence[int]) -> Tuple[np.ndarray, List[Optional[int]]]:
        """``(indices, labels)`` for GPU decode: (B, grid_h * grid_w) uint32 codeword indices in
        row-major grid order (fixed-shape archives; ValueError otherwise) and the labels (None when
        unlabelled). IndexError for an index out of range."""
        rows = self._rows(indices)
        if not self.fixed_shape:
            raise ValueError("get_indices_batch needs a fixed-shape archive (convert with --width/--height)")
        gh, gw = self.grid_size[1], self.grid_size[0]
        packed = self._native.packed_indices()
        out = np.empty((len(rows), gh * gw), dtype=np.uint32)
        if len(rows):
            bits = self._native.index_bits
            block = np.unpackbits(packed[rows], axis=1, bitorder="little")[:, :gh * gw * bits]
            weights = (np.uint32(1) << np.arange(bits, dtype=np.uint32))
            out[:] = block.reshape(len(rows), gh * gw, bits).astype(np.uint32) @ weights
        return out, [self._label_or_none(int(j)) for j in rows]

    def _rows(self, indices: Any) -> np.ndarray:
        """Rows for ``indices`` (:func:`kuat._index.sample_rows`: integers, negative ones from the end,
        as a list, array, tensor, range, slice or boolean mask): TypeError unless they are integers
        or a mask (never truncated floats), IndexError naming the index given."""
        return sample_rows(indices, len(self))

    @property
    def patch_size(self) -> int:
        """Patch side P (patches are P x P pixels)."""
        return int(self._native.patch)

    @property
    def channels(self) -> int:
        return int(self._native.channels)

    @property
    def dimensions(self) -> Tuple[int, int]:
        """``(width, height)`` of every image (Kuat-Beta's order); ValueError for a variable-size archive."""
        h, w, _, _ = self._native.geometry
        return int(w), int(h)

    @property
    def grid_size(self) -> Tuple[int, int]:
        """``(grid_w, grid_h)``: patches per row and per column (Kuat-Beta's order, like ``dimensions``)."""
        h, w, _, p = self._native.geometry
        return -(-int(w) // int(p)), -(-int(h) // int(p))

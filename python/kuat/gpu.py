"""Device decode with PyTorch: ``GPUDecoder`` and ``GPUDataset`` (Kuat-Beta's ``kuat.gpu`` names).

Decoding a Kuat sample is a codebook gather, which any torch device does well: the codebook (a few
hundred KB) goes to the device once, and only indices cross the bus. Both classes run on ANY torch
device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, ``"mps"``), through the pure-PyTorch ops of
``kuat._torch_decode`` (or the CUDA kernels registered for them in ``lowbit._cuda_ops``).

* :class:`GPUDecoder` decodes (B, grid) index arrays, as in Kuat-Beta's notebook:
  ``decode_batch(indices, width, height, layout="NCHW")`` (uint8), ``decode_float(indices, width,
  height)`` (float32 in [0, 1]), the prototype script's ``decode_batch_float(indices, width, height)``
  and ``decode(indices, layout="NCHW", normalize=False)``. ``GPUCodebookDecoder`` (the notebooks'
  class name) is the same class.
* :class:`GPUDataset` is a random-access dataset on the device: ``dataset[index_list]`` (or a slice,
  or an int) is ``(images, labels)``; ``epoch(n)`` yields shuffled ``(images, labels)`` batches.

For training loops over whole epochs, ``KuatDataset(path, device="cuda")`` is the streaming loader
(same order, ranks and resume as on the CPU; only packed indices are staged on the host).
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Sequence, Tuple

import torch

from . import _torch_decode as td

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["GPUDecoder", "GPUDataset", "GPUCodebookDecoder"]


def _device(device: Any) -> torch.device:
    from ._device import resolve_device

    return resolve_device(device)


def _as_codebook(codebook: Any, patch: Optional[int], channels: Optional[int]) -> torch.Tensor:
    """(K, P, P, C) uint8 tensor from a (K, P*P*C) or (K, P, P, C) array/tensor."""
    from lowbit._backend import as_tensor

    cb = as_tensor(codebook)  # any numpy layout: negative strides, read-only, memory-mapped
    if cb.dtype != torch.uint8:
        raise ValueError(f"codebook must be uint8, got {cb.dtype}")
    if cb.dim() == 4:
        if cb.shape[1] != cb.shape[2]:
            raise ValueError(f"codebook (K, P, P, C) must have square patches, got {tuple(cb.shape)}")
        return cb
    if cb.dim() != 2:
        raise ValueError(f"codebook must be (K, P*P*C) or (K, P, P, C), got shape {tuple(cb.shape)}")
    width = int(cb.shape[1])
    shapes = [(p, c) for p in (2, 4) for c in (1, 3) if p * p * c == width
              and (patch is None or p == patch) and (channels is None or c == channels)]
    if len(shapes) != 1:
        raise ValueError(f"codebook rows of {width} bytes do not name one patch geometry (P*P*C with P in (2, 4), "
                         f"C in (1, 3)); pass patch= and channels=")
    p, c = shapes[0]
    return cb.reshape(cb.shape[0], p, p, c)


class GPUDecoder:
    """Codebook on a torch device; decodes index arrays into image batches there.

    ``codebook_or_archive``: a :class:`kuat.KuatArchive`, a path to a ``.kuat`` file, or a codebook
    ``(K, P*P*C)`` / ``(K, P, P, C)`` uint8 numpy array or tensor (Kuat-Beta's notebook passes
    ``(K, 12)``: 2x2 RGB patches). ``device``: any torch device (default ``"cuda"``). ``dtype``: the
    output of :meth:`decode` (float32 in [0, 1] by default, as Kuat-Beta; ``torch.uint8`` for bytes).
    With an archive, image width and height default to the archive's.

    Attributes as in Kuat-Beta: ``device`` is the device exactly as passed (a string stays a string,
    so ``decoder.device == "cuda"`` holds); ``codebook`` is the ``(K, P*P*C)`` tensor on the device in
    the decoder's ``dtype``: ``uint8 / 255`` (values in [0, 1]) for a float dtype, the bytes for
    ``torch.uint8``, so with float32 (the default) or uint8 ``decoder.codebook[indices]`` gathers
    exactly the values :meth:`decode` returns without normalisation. ``codebook_size`` (K), ``patch_size`` (P), ``channels``, ``width``, ``height``,
    ``grid_w``, ``grid_h``, ``patches_per_image``.

    Errors: ``ValueError`` for a device that is not available, a codebook of unknown geometry,
    indices of the wrong shape or with a value >= K (naming the sample and patch), or indices on
    another device than the decoder's.
    """

    def __init__(self, codebook_or_archive: Any, device: Any = "cuda", dtype: Optional[torch.dtype] = None, *,
                 patch: Optional[int] = None, channels: Optional[int] = None) -> None:
        from .archive import KuatArchive

        source = codebook_or_archive
        if isinstance(source, (str, os.PathLike)):
            source = KuatArchive(source)
        self.width: Optional[int] = None
        self.height: Optional[int] = None
        if isinstance(source, KuatArchive):
            codebook = torch.from_numpy(source.codebook_numpy())
            patch, channels = source.patch_size, source.channels
            if source.fixed_shape and len(source):
                self.width, self.height = source.dimensions
        else:
            codebook = source
        self.device = device  # as passed (Kuat-Beta); the resolved torch.device is self._device
        self._device = _device(device)
        self.dtype = dtype or torch.float32
        if self.dtype not in (torch.uint8, torch.float32, torch.float16, torch.bfloat16, torch.float64):
            raise ValueError(f"dtype must be torch.uint8 or a float dtype, got {self.dtype}")
        cb = _as_codebook(codebook, patch, channels)
        self._codebook = cb.to(self._device).contiguous()  # (K, P, P, C) uint8 on the device
        self._codebook_view: Optional[torch.Tensor] = None
        self.codebook_size = int(cb.shape[0])
        self.patch_size = int(cb.shape[1])
        self.channels = int(cb.shape[3])
        self._tables: dict = {}
        self._tables_version = self._codebook._version  # the bytes the tables were made from

    # Kuat-Beta's geometry attributes (None when the decoder was made from a bare codebook).
    @property
    def grid_w(self) -> Optional[int]:
        return None if self.width is None else -(-self.width // self.patch_size)

    @property
    def grid_h(self) -> Optional[int]:
        return None if self.height is None else -(-self.height // self.patch_size)

    @property
    def patches_per_image(self) -> Optional[int]:
        return None if self.width is None or self.height is None else self.grid_w * self.grid_h

    @property
    def codebook(self) -> torch.Tensor:
        """Kuat-Beta's ``decoder.codebook``: (K, P*P*C) on the device, rows in (py, px, c) order, in the
        decoder's dtype: ``uint8 / 255`` (computed in that dtype, as Kuat-Beta) for float dtypes, the
        bytes for ``torch.uint8``. Made on first use and kept.

        Writes into it, as Kuat-Beta's decode reads this tensor: with ``torch.uint8`` it is a view of
        the bytes every decode reads, so later decodes use the new values; a float codebook is a
        copy, and a decode after writing into it raises ValueError (the decode tables hold bytes,
        so arbitrary floats cannot be honoured; make a new decoder from the new codebook)."""
        if self._codebook_view is None:
            flat = self._codebook.reshape(self.codebook_size, -1)
            self._codebook_view = flat if self.dtype == torch.uint8 else flat.to(self.dtype) / 255.0
            self._view_version = self._codebook_view._version
        return self._codebook_view

    def __repr__(self) -> str:
        return (f"GPUDecoder(device={self._device}, codebook={tuple(self.codebook.shape)}, "
                f"memory={self.codebook.numel() * self.codebook.element_size() / 1e6:.2f}MB)")

    # -- tables ---------------------------------------------------------------------------------
    def _table(self, dtype: str, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]):
        view = self._codebook_view
        if view is not None and self.dtype != torch.uint8 and view._version != self._view_version:
            raise ValueError("GPUDecoder: decoder.codebook was written in place; this decoder decodes from the "
                             "archive's uint8 codebook, so build a new GPUDecoder(codebook) from the new values "
                             "(or use dtype=torch.uint8, whose decoder.codebook is the decoded bytes)")
        if self._codebook._version != self._tables_version:  # uint8 decoder.codebook written: new tables
            self._tables.clear()
            self._tables_version = self._codebook._version
        key = (dtype, None if mean is None else tuple(td.channel_values(mean, self.channels, 0.0, "mean")),
               None if std is None else tuple(td.channel_values(std, self.channels, 1.0, "std")))
        if key not in self._tables:
            self._tables[key] = td.make_table(self._codebook, dtype, key[1], key[2])
        return self._tables[key]

    def _size(self, width: Optional[int], height: Optional[int]) -> Tuple[int, int]:
        width = self.width if width is None else int(width)
        height = self.height if height is None else int(height)
        if width is None or height is None or width <= 0 or height <= 0:
            raise ValueError("width and height are needed (positive ints) when the decoder was made from a codebook")
        return width, height

    def _indices(self, indices: Any, width: int, height: int) -> torch.Tensor:
        if isinstance(indices, tuple) and len(indices) == 2:  # archive.get_indices_batch(...) as is
            indices = indices[0]
        if isinstance(indices, torch.Tensor):
            from lowbit._backend import check_same_device

            if indices.device.type != "cpu":
                check_same_device("indices", indices, "the decoder", self._device)
            idx = indices
        else:
            import numpy as np

            arr = np.asarray(indices)
            if arr.dtype.kind not in "iu":
                raise ValueError(f"indices must be integers, got {arr.dtype}")
            from lowbit._backend import as_tensor

            idx = as_tensor(arr.astype(np.int64, copy=False))  # negative strides, read-only arrays too
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
            raise ValueError(f"indices must be an integer tensor, got {idx.dtype}")
        P = self.patch_size
        grid = (-(-height // P)) * (-(-width // P))
        if idx.dim() == 1 and idx.shape[0] == grid:
            idx = idx.unsqueeze(0)
        if idx.dim() != 2 or idx.shape[1] != grid:
            raise ValueError(f"indices must be (B, {grid}) for {width}x{height} images of {P}x{P} patches, "
                             f"got {tuple(idx.shape)}")
        idx = idx.to(self._device, torch.int64, non_blocking=True)
        # Out-of-range values (negative ones included, as huge unsigned) get the C++ gather's message.
        bad = td.first_bad_index(torch.where(idx < 0, self.codebook_size + (-idx), idx), self.codebook_size) \
            if idx.numel() else None
        if bad is not None:
            row, patch, _ = bad
            value = int(idx[row, patch])
            raise ValueError(f"indices: sample {row}: "
                             + td.describe_bad_index(patch, value, -(-width // P), self.codebook_size))
        return idx

    def _run(self, idx: torch.Tensor, table, pad, width: int, height: int, layout: str) -> torch.Tensor:
        from ._device import dispatch

        return dispatch(td.OP_DECODE_INDICES, td.decode_indices, self._device, idx, table, pad, height, width,
                        layout, None, None, None)

    # -- Kuat-Beta notebook API -------------------------------------------------------------------
    def decode_batch(self, indices: Any, width: Optional[int] = None, height: Optional[int] = None,
                     layout: str = "NCHW") -> torch.Tensor:
        """uint8 images from (B, grid_h * grid_w) indices (numpy, tensor or list; any integer dtype).

        Returns (B, C, H, W) (``"NCHW"``, the default) or (B, H, W, C) uint8 on the decoder's device.
        """
        width, height = self._size(width, height)
        table, pad = self._table("uint8", None, None)
        return self._run(self._indices(indices, width, height), table, pad, width, height, layout)

    def decode_float(self, indices: Any, width: Optional[int] = None, height: Optional[int] = None,
                     layout: str = "NCHW", mean: Optional[Sequence[float]] = None,
                     std: Optional[Sequence[float]] = None) -> torch.Tensor:
        """float32 images ``(x / 255 - mean) / std`` (mean 0, std 1: x / 255 in [0, 1]); (B, C, H, W) by default."""
        width, height = self._size(width, height)
        table, pad = self._table("float32", mean, std)
        return self._run(self._indices(indices, width, height), table, pad, width, height, layout)

    def decode_batch_float(self, indices: Any, width: Optional[int] = None, height: Optional[int] = None,
                           layout: str = "NCHW", normalize: bool = True) -> torch.Tensor:
        """The prototype notebook's float decode: float32 (B, C, H, W) (or ``"NHWC"``) on the device,
        x / 255 in [0, 1] with ``normalize=True`` (the default; NOT ImageNet normalisation, unlike
        :meth:`decode`), the byte values 0.0 .. 255.0 with ``normalize=False``. Errors as
        :meth:`decode_batch`."""
        if normalize:
            return self.decode_float(indices, width, height, layout)
        return self.decode_batch(indices, width, height, layout).to(torch.float32)

    def decode(self, indices: Any, layout: str = "NCHW", normalize: bool = False,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
               width: Optional[int] = None, height: Optional[int] = None) -> torch.Tensor:
        """Kuat-Beta's ``GPUDecoder.decode``: images in the decoder's ``dtype``.

        float dtypes: x / 255, and with ``normalize=True`` ``(x / 255 - mean) / std`` (ImageNet mean/std
        unless given). ``torch.uint8``: the bytes (``normalize`` not allowed). (B, C, H, W) by default.
        """
        if self.dtype == torch.uint8:
            if normalize:
                raise ValueError("normalize=True needs a float dtype decoder")
            return self.decode_batch(indices, width, height, layout)
        if normalize:
            mean = IMAGENET_MEAN if mean is None else mean
            std = IMAGENET_STD if std is None else std
        else:
            mean = std = None
        out = self.decode_float(indices, width, height, layout, mean, std)
        return out if self.dtype == torch.float32 else out.to(self.dtype)


class GPUDataset:
    """A Kuat archive as a random-access dataset on a torch device (Kuat-Beta's ``GPUDataset``).

    ``dataset[i]``, ``dataset[[i, j, ...]]`` or ``dataset[a:b]`` is ``(images, labels)``: images
    (B, C, H, W) (``layout="NCHW"``, default) or (B, H, W, C); float32 ``(x / 255 - mean) / std`` with
    ImageNet mean/std when ``normalize=True`` (default), float32 x / 255 when False, uint8 with
    ``dtype=torch.uint8``; labels (B,) int64 (-1 for unlabelled samples), all on ``device``. An int
    index gives a batch of one. ``len(dataset)`` is the number of samples, ``batch_count()`` the
    batches of ``batch_size``; ``epoch(n, shuffle=True)`` yields ``(images, labels)`` batches in the
    C++ loader's order for ``(seed, n)``.

    ``preload=True`` (default) keeps every sample's packed indices on the device (bits/8 bytes per
    patch: 14 KB per 224x224 image at K = 512), so a batch is gathered without the host; with False
    they are staged per batch. Errors: ``ValueError`` (bad arguments, unavailable device,
    variable-size archive), ``IndexError`` (index out of range), ``OSError`` (corrupt sample).

    Attributes as in Kuat-Beta: ``archive``, ``batch_size``, ``device`` (as passed), ``normalize``,
    ``mean``/``std`` (lists; ImageNet's unless given, also when ``normalize=False``; None with
    ``dtype=torch.uint8``), ``num_samples``, ``width``, ``height``, ``decoder`` (a :class:`GPUDecoder`).

    Pickling (DataLoader workers under ``"spawn"``, ``copy.deepcopy``) reopens the archive by path
    and reads its packed indices again, rather than carrying them in the pickle.
    """

    def __init__(self, archive_or_path: Any, batch_size: int = 64, device: Any = "cuda", preload: bool = True,
                 normalize: bool = True, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, layout: str = "NCHW", dtype: Optional[torch.dtype] = None,
                 seed: int = 42) -> None:
        from .archive import KuatArchive

        self.archive = archive_or_path if isinstance(archive_or_path, KuatArchive) else KuatArchive(archive_or_path)
        if not self.archive.fixed_shape:
            raise ValueError(f"{self.archive.path}: holds images of different sizes; GPUDataset needs one size "
                             "(convert with --width/--height)")
        from ._index import integer

        if integer(batch_size) is None or integer(batch_size) <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = integer(batch_size)
        self.layout = td._check_layout(layout)
        self.device = device  # as passed (Kuat-Beta); the resolved torch.device is self._device
        self._device = _device(device)
        self.dtype = dtype or torch.float32
        self.normalize = bool(normalize)
        self.seed = int(seed)
        if self.dtype == torch.uint8:
            if normalize or mean is not None or std is not None:
                raise ValueError("normalize/mean/std need a float dtype (pass normalize=False with dtype=torch.uint8)")
            self.mean = self.std = None
            table_dtype = "uint8"
        else:
            # Kuat-Beta keeps mean/std (ImageNet's by default) whether or not it normalises.
            self.mean = list(IMAGENET_MEAN if mean is None else mean)
            self.std = list(IMAGENET_STD if std is None else std)
            table_dtype = "float32"
        self.num_samples = len(self.archive)
        self.width, self.height = self.archive.dimensions if self.num_samples else (0, 0)
        native = self.archive._native
        self._bits = int(native.index_bits)
        self._grid_w = self.archive.grid_size[0] if self.num_samples else 0
        self._num_patches = self._grid_w * (self.archive.grid_size[1] if self.num_samples else 0)
        self._codebook_size = self.archive.codebook_size
        codebook = torch.from_numpy(self.archive.codebook_numpy()).reshape(
            self._codebook_size, self.archive.patch_size, self.archive.patch_size, self.archive.channels)
        self._table, self._pad = td.make_table(codebook.to(self._device), table_dtype,
                                               self.mean if self.normalize else None,
                                               self.std if self.normalize else None)
        self._packed_host = native.packed_indices() if self.num_samples else None
        self._labels_host = torch.from_numpy(self.archive.labels.astype("int64"))
        self._packed: Optional[torch.Tensor] = None
        self._labels = self._labels_host.to(self._device)
        # Kuat-Beta's attribute: the decoder for index arrays (archive.get_indices_batch) on this device.
        self.decoder = GPUDecoder(self.archive, device=self.device, dtype=self.dtype)
        if preload and self.num_samples:
            import numpy as np

            self._packed = torch.from_numpy(np.array(self._packed_host)).to(self._device)

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict:
        # Pickling (DataLoader workers under "spawn", deepcopy): the archive travels as its path
        # (KuatArchive reopens it) and the packed indices are read again from it on arrival, so a
        # pickle holds no copy of the index data (it held two: host and preloaded).
        state = self.__dict__.copy()
        state["_packed_host"] = None
        state["_packed"] = self._packed is not None  # preloaded or not
        return state

    def __setstate__(self, state: dict) -> None:
        preload = state.pop("_packed")
        self.__dict__.update(state)
        self._packed_host = self.archive._native.packed_indices() if self.num_samples else None
        self._packed = None
        if preload and self.num_samples:
            import numpy as np

            self._packed = torch.from_numpy(np.array(self._packed_host)).to(self._device)

    def batch_count(self) -> int:
        """Batches of ``batch_size`` per epoch (the last may be short)."""
        return -(-self.num_samples // self.batch_size)

    def __repr__(self) -> str:
        return f"GPUDataset(samples={self.num_samples:,}, batch_size={self.batch_size}, device={self._device})"

    def _rows(self, index: Any) -> torch.Tensor:
        """Sample rows (int64, CPU) selected by ``index`` as numpy and torch select them: an integer,
        a slice (any step), a sequence / array / tensor of integers (negative ones from the end), or
        a boolean mask of length ``num_samples``. TypeError for other kinds (floats, bools alone,
        strings), IndexError for an index out of range or a mask of another length."""
        from ._index import sample_rows

        return torch.from_numpy(sample_rows(index, self.num_samples))

    def __getitem__(self, index: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._decode_rows(self._rows(index))

    def _decode_rows(self, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        from ._device import dispatch

        if self._packed is not None:
            packed = self._packed.index_select(0, rows.to(self._device))
        else:
            import numpy as np

            packed = torch.from_numpy(np.take(self._packed_host, rows.numpy(), axis=0)).to(self._device)
        idx = dispatch(td.OP_UNPACK, td.unpack_indices, self._device, packed, self._num_patches, self._bits)
        if self._codebook_size < (1 << self._bits):
            bad = td.first_bad_index(idx, self._codebook_size)
            if bad is not None:
                row, patch, value = bad
                raise OSError(f"sample {int(rows[row])} is corrupt: "
                              + td.describe_bad_index(patch, value, self._grid_w, self._codebook_size))
        images = dispatch(td.OP_DECODE_INDICES, td.decode_indices, self._device, idx, self._table, self._pad,
                          self.height, self.width, self.layout, None, None, None)
        return images, self._labels.index_select(0, rows.to(self._device))

    def epoch(self, epoch_num: int, shuffle: bool = True) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """``(images, labels)`` batches of one epoch; shuffled in the C++ loader's order for ``(seed, epoch)``.

        ``epoch_num``: a non-negative integer of any integer kind (numpy, 0-d tensor); ValueError for
        negative numbers, floats, bools and strings (never truncated), raised at the call."""
        from .dataset import _engine, _epoch_arg

        epoch_num = _epoch_arg(epoch_num)
        return self._epoch_batches(epoch_num, bool(shuffle))

    def _epoch_batches(self, epoch_num: int, shuffle: bool) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        from .dataset import _engine

        if self.num_samples == 0:
            return
        path = getattr(self.archive, "_abspath", self.archive.path)  # the file opened, whatever the cwd now
        order = _engine.Loader([path], self.batch_size, bool(shuffle), self.seed & (2**64 - 1), False,
                               "NHWC", "uint8", [], [], 0, False, 0, 1, 1, 0).sample_order(int(epoch_num))
        order = torch.from_numpy(order)
        for start in range(0, self.num_samples, self.batch_size):
            yield self._decode_rows(order[start:start + self.batch_size])



# The name both Kuat-Beta notebooks give the codebook decoder (``GPUCodebookDecoder(codebook, device)``
# with ``decode_batch`` / ``decode_float`` / ``decode_batch_float``); the same class.
GPUCodebookDecoder = GPUDecoder

"""KuatDataset's device path: packed indices staged on the host, decoded by PyTorch on the device.

The C++ loader still defines the order (``sample_order``), the rank split and the batch count; only
decoding moves. Per batch: the samples' packed index blocks are gathered from the archives' memory
maps into a staging buffer (pinned host memory when the device is CUDA, a ring of three so a copy
in flight is never overwritten), together with labels and the crop/flip draws (computed on the host
with the C++ generator, kuat._augment); one ``non_blocking`` copy each on the current stream moves
them to the device, where the codebook table already lives; the decode (unpack, gather, crop, flip,
layout, dtype, normalisation in one pass) runs there. Only ~bits/8 bytes per patch cross the bus.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lowbit import _backend, _cuda_ops, _native

from . import _torch_decode as td
from ._augment import augmentation

_RING = 3  # staging slots: one being filled, one in flight, one spare


def resolve_device(device: Any) -> "torch.device":
    """``device`` as a torch.device that exists here; ValueError naming it otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device: {device!r} is not a torch device ({e})") from None
    if dev.type == "meta":
        raise ValueError(f"device: {device!r} holds no data (meta tensors); decode needs a real device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} is not available (torch.cuda.is_available() is False)")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f"device: {device!r} is not available ({e})") from None
    return dev


def dispatch(name: str, torch_fn, device: "torch.device", *args):
    """Runs op ``name``: the registered CUDA kernel when the backend picks CUDA, else PyTorch."""
    if _backend.select(device, name) == "cuda":
        fn = _cuda_ops.get(name)
        if fn is not None:
            return fn(*args)
    return torch_fn(*args)


class _Slot:
    def __init__(self, rows: int, stride: int, pin: bool) -> None:
        self.packed = torch.empty((rows, stride), dtype=torch.uint8, pin_memory=pin)
        self.meta = torch.empty((rows, 4), dtype=torch.int32, pin_memory=pin)  # label, shift_y, shift_x, flip
        self.packed_np = self.packed.numpy()
        self.meta_np = self.meta.numpy()
        self.event: Optional[Any] = None


class DeviceDecoder:
    """Decodes the batches of a native ``Loader`` on a torch device (see the module docstring)."""

    def __init__(self, loader: Any, batch_size: int, sources: Sequence[Any], device: "torch.device", layout: str,
                 dtype: str, mean: Sequence[float], std: Sequence[float], crop_padding: int, random_flip: bool,
                 seed: int) -> None:
        self.loader = loader
        self.device = device
        self.layout = layout
        self.crop_padding = int(crop_padding)
        self.random_flip = bool(random_flip)
        self.seed = int(seed)
        self.paths: List[Optional[str]] = []
        self.packed: List[np.ndarray] = []
        self.labels: List[np.ndarray] = []
        codebook = None
        geometry = None
        for source in sources:
            if isinstance(source, (str, os.PathLike)):
                archive = _native.kuat.Archive(os.fspath(source))
                self.paths.append(os.fspath(source))
            else:
                archive = source
                self.paths.append(None)
            geometry = geometry or tuple(archive.geometry)
            self.packed.append(archive.packed_indices())
            self.labels.append(np.asarray(archive.labels(), dtype=np.int32))
            if codebook is None:
                codebook = np.array(archive.codebook(), dtype=np.uint8)  # (K, P, P, C), a writable copy
        self.height, self.width, self.channels, self.patch = (int(v) for v in geometry)
        self.first_sample = np.cumsum([0] + [len(l) for l in self.labels]).astype(np.int64)
        self.codebook_size = int(codebook.shape[0])
        self.bits = td.index_bits_for(self.codebook_size)
        self.grid_w = -(-self.width // self.patch)
        self.num_patches = -(-self.height // self.patch) * self.grid_w
        self.stride = max(p.shape[1] for p in self.packed)
        table, pad = td.make_table(torch.from_numpy(codebook).to(device), dtype, mean or None, std or None)
        self.table, self.pad = table, pad
        self.batch_size = int(batch_size)
        self.pin = device.type == "cuda"
        self.ring = [_Slot(self.batch_size, self.stride, self.pin) for _ in range(_RING if self.pin else 1)]

    def _stage(self, slot: _Slot, epoch: int, samples: np.ndarray) -> None:
        n = samples.shape[0]
        packed, meta = slot.packed_np[:n], slot.meta_np[:n]
        if len(self.packed) == 1:
            np.take(self.packed[0], samples, axis=0, out=packed, mode="clip")  # samples are in range
            meta[:, 0] = self.labels[0][samples]
        else:
            which = np.searchsorted(self.first_sample, samples, side="right") - 1
            for a in np.unique(which):
                rows = np.nonzero(which == a)[0]
                local = samples[rows] - self.first_sample[a]
                packed[rows, :self.packed[a].shape[1]] = self.packed[a][local]
                meta[rows, 0] = self.labels[a][local]
        shift_y, shift_x, flip = augmentation(self.seed, epoch, samples, self.crop_padding, self.random_flip)
        meta[:, 1], meta[:, 2], meta[:, 3] = shift_y, shift_x, flip

    def _corrupt(self, sample: int, message: str) -> OSError:
        where = f"sample {sample}"
        if len(self.packed) > 1:
            a = int(np.searchsorted(self.first_sample, sample, side="right") - 1)
            where += f" (archive {a}, sample {sample - int(self.first_sample[a])})"
        return OSError(f"{where} is corrupt: {message}")

    def batches(self, epoch: int, first_batch: int, batch_step: int) -> Iterator[Tuple[Any, Any, int]]:
        """``(images, labels, batch_index)`` for batches first_batch, first_batch + step, ... of ``epoch``."""
        order = self.loader.sample_order(epoch)
        total = self.loader.batches_per_epoch
        augment = self.crop_padding > 0 or self.random_flip
        for i, b in enumerate(range(first_batch, total, batch_step)):
            samples = order[b * self.batch_size:(b + 1) * self.batch_size]
            n = samples.shape[0]
            slot = self.ring[i % len(self.ring)]
            if slot.event is not None:
                slot.event.synchronize()  # the copy that last read this slot has finished
            self._stage(slot, epoch, samples)
            if self.device.type == "cpu":
                packed, meta = slot.packed[:n], slot.meta[:n]
            else:
                packed = slot.packed[:n].to(self.device, non_blocking=self.pin)
                meta = slot.meta[:n].to(self.device, non_blocking=self.pin)
                if self.pin:
                    slot.event = torch.cuda.Event()
                    slot.event.record()  # on the current stream, after the two copies
            shifts = (meta[:, 1], meta[:, 2], meta[:, 3].bool()) if augment else (None, None, None)
            if self.codebook_size < (1 << self.bits):  # values K..2^bits-1 fit the bits: check them
                idx = dispatch(td.OP_UNPACK, td.unpack_indices, self.device, packed, self.num_patches, self.bits)
                bad = td.first_bad_index(idx, self.codebook_size)
                if bad is not None:
                    row, patch, value = bad
                    raise self._corrupt(int(samples[row]),
                                        td.describe_bad_index(patch, value, self.grid_w, self.codebook_size))
                images = dispatch(td.OP_DECODE_INDICES, td.decode_indices, self.device, idx, self.table, self.pad,
                                  self.height, self.width, self.layout, *shifts)
            else:
                images = dispatch(td.OP_DECODE_PACKED, td.decode_packed, self.device, packed, self.table, self.pad,
                                  self.height, self.width, self.bits, self.layout, *shifts)
            labels = meta[:, 0].clone()
            yield images, labels, b


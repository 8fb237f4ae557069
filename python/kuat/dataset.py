"""KuatDataset: shuffled, decoded batches of Kuat archives, straight from the C++ loader.

The engine (``lowbit::kuat::Loader``) decodes batches on its own worker threads, several
batches ahead, into a bounded pool of buffers; each yielded array is a zero-copy view of one
buffer, which goes back to the pool only when no array refers to it any more. The epoch order
is a function of ``(seed, epoch)`` alone; see docs/kuat-loader.md for the rank split.

With ``device=`` (any torch device) batches are torch tensors on that device: the C++ loader
still decides order, ranks and batch counts, and decoding runs where the images are wanted
(kuat/_device.py): only packed indices cross to the device.
"""

from __future__ import annotations

import copyreg
import glob
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from lowbit import _native
from ._index import integer

_engine = _native.kuat_loader
MemoryArchive = _engine.MemoryArchive


def _memory_archive(codebook: np.ndarray, indices: np.ndarray, labels: np.ndarray, geometry: Tuple[int, ...]):
    h, w, c, p = geometry
    return MemoryArchive(codebook, indices, labels, h, w, c, p)


def _reduce_memory_archive(archive: Any) -> Tuple[Any, Tuple[Any, ...]]:
    # An in-memory archive pickles as its arrays (DataLoader workers under "spawn", deepcopy).
    codebook = np.ascontiguousarray(archive.codebook())
    return _memory_archive, (codebook.reshape(codebook.shape[0], -1), np.array(archive.packed_indices()),
                             np.array(archive.labels()), tuple(int(v) for v in archive.geometry))


copyreg.pickle(MemoryArchive, _reduce_memory_archive)

PathLike = Union[str, "os.PathLike[str]"]
_STATE_KEYS = ("seed", "num_samples", "batch_size", "world_size", "rank", "shuffle", "drop_last")


def _resolve_sources(path_or_paths: Any) -> List[Union[str, MemoryArchive]]:
    if isinstance(path_or_paths, (str, os.PathLike, MemoryArchive)):
        items = [path_or_paths]
    else:
        try:
            items = list(path_or_paths)
        except TypeError:
            raise ValueError(
                f"path_or_paths: expected a path, a glob pattern or a list of them, got {type(path_or_paths).__name__}"
            ) from None
    if not items:
        raise ValueError("path_or_paths: no archive given")
    sources: List[Union[str, MemoryArchive]] = []
    for item in items:
        if isinstance(item, MemoryArchive):
            sources.append(item)
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise ValueError(f"path_or_paths: expected a path, got {type(item).__name__}")
        path = os.fspath(item)
        if glob.has_magic(path):
            matches = sorted(glob.glob(path))
            if not matches:
                raise ValueError(f"path_or_paths: pattern '{path}' matches no file")
            sources.extend(matches)
        elif not os.path.exists(path):
            raise ValueError(f"path_or_paths: '{path}' does not exist")
        elif os.path.isdir(path):
            raise ValueError(f"path_or_paths: '{path}' is a directory, not a .kuat archive")
        else:
            sources.append(path)
    return sources


def _distributed_rank_and_size() -> Optional[Tuple[int, int]]:
    # torch.distributed can only be initialised if torch is imported: never import it ourselves.
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return None
    try:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # a half-configured backend must not break plain use
        return None
    return None


def _positive_int(name: str, value: Any, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if integer(value) is None or integer(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return integer(value)


def _epoch_arg(epoch: Any) -> int:
    """An epoch number: a non-negative integer of any kind (never a truncated float or a bool)."""
    if integer(epoch) is None or integer(epoch) < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return integer(epoch)


def _channel_values(name: str, value: Any) -> List[float]:
    if value is None:
        return []
    values = [float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64))]
    if not all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return values


class KuatEpochIterator:
    """The batches of one epoch, as ``KuatDataset.epoch(n)`` returns them (Kuat-Beta's name).

    An iterator of ``{"images", "labels"}`` dicts; ``len()`` is the number of batches it yields in
    all, ``epoch`` the epoch number. ``close()`` (or dropping it) stops the loader's workers.
    """

    def __init__(self, batches: Iterator[Dict[str, Any]], epoch: int, length: int) -> None:
        self._batches = batches
        self.epoch = epoch
        self._length = length

    def __iter__(self) -> "KuatEpochIterator":
        return self

    def __next__(self) -> Dict[str, Any]:
        return next(self._batches)

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._batches.close()

    def __repr__(self) -> str:
        return f"KuatEpochIterator(epoch={self.epoch}, batches={self._length})"


class KuatDataset:
    """Batches of one or more Kuat archives that share a codebook.

    ``epoch(n)`` yields ``{"images", "labels"}``: images ``(B, H, W, C)`` (``layout="NHWC"``) or
    ``(B, C, H, W)`` (``"NCHW"``), uint8 or float32 (``(x / 255 - mean) / std``), labels int32
    ``(B,)``: numpy arrays, or torch tensors on ``device`` when one is given (any torch device;
    ``device=None`` keeps numpy). ``len(dataset)`` is the number of SAMPLES assigned to this rank
    per epoch (all samples when world_size is 1, as in Kuat-Beta); with ``drop_last`` an epoch
    yields ``batch_count() * batch_size`` of them (``samples_per_epoch``); ``batch_count()`` is the
    number of batches. Errors: ``ValueError`` for bad arguments or archives that cannot be read together,
    ``OSError`` (naming the sample) when a corrupt sample is decoded.

    Pickling (``copy.deepcopy``, DataLoader workers started with ``"spawn"``) keeps the arguments and
    the iteration position; the copy opens the archives anew (by path; in-memory archives travel as
    their arrays) and yields the same batches.
    """

    def __init__(
        self,
        path_or_paths: Union[PathLike, Sequence[PathLike]],
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 42,
        drop_last: bool = False,
        layout: str = "NHWC",
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        dtype: str = "uint8",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        random_crop_padding: int = 0,
        random_flip: bool = False,
        num_threads: Optional[int] = None,
        prefetch: Optional[int] = None,
        device: Any = None,
    ) -> None:
        sources = _resolve_sources(path_or_paths)
        batch_size = _positive_int("batch_size", batch_size)
        if not isinstance(layout, str) or layout.upper() not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        dtype_name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype.lower()
        if dtype_name not in ("uint8", "float32"):
            raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}")
        if dtype_name == "uint8" and (mean is not None or std is not None):
            raise ValueError("mean/std normalisation needs dtype='float32'")
        mean_values = _channel_values("mean", mean)
        std_values = _channel_values("std", std)
        if any(v == 0.0 for v in std_values):
            raise ValueError(f"std must be non-zero, got {std!r}")
        if isinstance(random_crop_padding, bool) or not isinstance(random_crop_padding, (int, np.integer)) \
                or random_crop_padding < 0:
            raise ValueError(f"random_crop_padding must be a non-negative integer, got {random_crop_padding!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        rank, world_size = self._rank_and_world_size(rank, world_size)
        num_threads = _positive_int("num_threads", num_threads, allow_none=True) or 0
        prefetch = _positive_int("prefetch", prefetch, allow_none=True) or 0

        try:
            self._loader = _engine.Loader(
                sources, batch_size, bool(shuffle), int(seed) & (2**64 - 1), bool(drop_last), layout.upper(),
                dtype_name, mean_values, std_values, int(random_crop_padding), bool(random_flip), rank, world_size,
                num_threads, prefetch,
            )
        except ValueError as e:  # everything else was checked above: this is about the archives
            names = ", ".join(f"archive {i} = {s!r}" for i, s in enumerate(sources) if isinstance(s, str))
            raise ValueError(f"path_or_paths: {e}" + (f" ({names})" if names else "")) from None
        # What __setstate__ rebuilds the engine from (the native loader cannot be pickled).
        self._ctor = ([os.path.abspath(s) if isinstance(s, str) else s for s in sources], dict(
            batch_size=batch_size, shuffle=bool(shuffle), seed=int(seed), drop_last=bool(drop_last),
            layout=layout.upper(), rank=rank, world_size=world_size, dtype=dtype_name,
            mean=mean_values or None, std=std_values or None, random_crop_padding=int(random_crop_padding),
            random_flip=bool(random_flip), num_threads=num_threads or None, prefetch=prefetch or None))
        self.paths = [s for s in sources if isinstance(s, str)]
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.layout = layout.upper()
        self.dtype = dtype_name
        self.rank = rank
        self.world_size = world_size
        self._position = (0, 0)  # (epoch, batches consumed) of the most recent iteration
        self._resume: Optional[Tuple[int, int]] = None
        self.device = None
        self._device: Any = None
        if device is not None:
            from . import _device

            self.device = _device.resolve_device(device)
            # absolute paths: the device decoder opens the archives at the first batch, maybe after a chdir
            self._device_args = (self._ctor[0], mean_values, std_values, int(random_crop_padding), bool(random_flip))
            self._uses_native_decode()  # the 'cpp' backend refuses a non-CPU device now, not at the first batch

    def _device_decoder(self) -> Any:
        """The device decoder, built on first use (its codebook table lives on the device)."""
        if self._device is None:
            from . import _device

            sources, mean, std, crop, flip = self._device_args
            self._device = _device.DeviceDecoder(self._loader, self.batch_size, sources, self.device, self.layout,
                                                 self.dtype, mean, std, crop, flip, self.seed)
        return self._device

    def _uses_native_decode(self) -> bool:
        """True when batches come from the C++ workers (numpy output, or CPU tensors under 'auto'/'cpp')."""
        if self.device is None:
            return True
        from lowbit import _backend

        return _backend.select(self.device, "KuatDataset") == "cpp"

    @staticmethod
    def _rank_and_world_size(rank: Any, world_size: Any) -> Tuple[int, int]:
        if rank is None or world_size is None:
            dist = _distributed_rank_and_size()
            if rank is None:
                rank = dist[0] if dist else 0
            if world_size is None:
                world_size = dist[1] if dist else 1
        world_size = _positive_int("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
            raise ValueError(f"rank must be a non-negative integer, got {rank!r}")
        if rank >= world_size:
            raise ValueError(f"rank must be < world_size, got rank {rank} and world_size {world_size}")
        return int(rank), world_size

    # -- sizes -------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Samples assigned to this rank per epoch (Kuat-Beta: ``len(dataset)`` counts samples); with
        ``drop_last`` the short last batch is not yielded: see ``samples_per_epoch``."""
        return self._loader.samples_per_rank

    @property
    def samples_per_epoch(self) -> int:
        """Samples one epoch actually yields on this rank: ``len(self)``, or with ``drop_last``
        ``batch_count() * batch_size``."""
        return self._loader.batches_per_epoch * self.batch_size if self.drop_last else self._loader.samples_per_rank

    def batch_count(self) -> int:
        """Batches per epoch on this rank (the last may be short unless ``drop_last``)."""
        return self._loader.batches_per_epoch

    @property
    def num_samples(self) -> int:
        """Samples in all archives together."""
        return self._loader.num_samples

    @property
    def samples_per_rank(self) -> int:
        return self._loader.samples_per_rank

    @property
    def sample_shape(self) -> Tuple[int, int, int]:
        """(H, W, C) or (C, H, W) of one image."""
        return tuple(self._loader.sample_shape)

    @property
    def num_threads(self) -> int:
        return self._loader.num_threads

    def sample_order(self, epoch: int) -> np.ndarray:
        """This rank's sample indices for `epoch`, in the order batches hold them (int64)."""
        return self._loader.sample_order(_epoch_arg(epoch))

    # -- iteration ---------------------------------------------------------------------------
    def epoch(self, epoch: int) -> KuatEpochIterator:
        """Batches of epoch `epoch`; continues mid-epoch after load_state_dict() for that epoch."""
        epoch = _epoch_arg(epoch)
        start = 0
        if self._resume is not None and self._resume[0] == epoch:
            start = self._resume[1]
            self._resume = None
        return KuatEpochIterator(self._batches(int(epoch), start, 1), int(epoch),
                                 max(0, self.batch_count() - start))

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        """Continues from the current position: the rest of this epoch, else the next one."""
        epoch, consumed = self._next_position()
        self._resume = None
        return KuatEpochIterator(self._batches(epoch, consumed, 1), epoch, max(0, self.batch_count() - consumed))

    def _batches(self, epoch: int, first_batch: int, batch_step: int) -> Iterator[Dict[str, Any]]:
        self._position = (epoch, first_batch)
        if not self._uses_native_decode():
            for images, labels, index in self._device_decoder().batches(epoch, first_batch, batch_step):
                self._position = (epoch, index + 1)
                yield {"images": images, "labels": labels}
            return
        to_tensor = None
        if self.device is not None:  # CPU tensors from the C++ workers: zero-copy views of their buffers
            import torch

            to_tensor = torch.from_numpy
        reader = self._loader.read_epoch(epoch, first_batch, batch_step)
        try:
            while True:
                item = reader.next()  # releases the GIL while it waits
                if item is None:
                    return
                images, labels, index = item
                self._position = (epoch, index + 1)
                if to_tensor is not None:
                    images, labels = to_tensor(images), to_tensor(labels)
                yield {"images": images, "labels": labels}
        finally:
            del reader  # stops and joins the workers, also when the loop is abandoned

    # -- resume ------------------------------------------------------------------------------
    def _next_position(self) -> Tuple[int, int]:
        if self._resume is not None:
            return self._resume
        epoch, consumed = self._position
        if consumed >= self.batch_count():
            return epoch + 1, 0
        return epoch, consumed

    def state_dict(self) -> Dict[str, Any]:
        """Where iteration stands: the epoch and the batches of it already yielded."""
        epoch, consumed = self._next_position()
        state = {"epoch": epoch, "batches_consumed": consumed}
        state.update({key: getattr(self, key) for key in _STATE_KEYS if key != "num_samples"})
        state["num_samples"] = self.num_samples
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The next epoch(state["epoch"]) (or iter(self)) continues after the consumed batches."""
        missing = [k for k in ("epoch", "batches_consumed") + _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"state_dict is missing {', '.join(missing)}")
        for key in _STATE_KEYS:
            ours = self.num_samples if key == "num_samples" else getattr(self, key)
            if state[key] != ours:
                raise ValueError(f"state_dict: {key} is {state[key]!r} but this dataset has {ours!r}")
        epoch, consumed = int(state["epoch"]), int(state["batches_consumed"])
        if epoch < 0 or not 0 <= consumed <= self.batch_count():
            raise ValueError(f"state_dict: position (epoch {epoch}, batch {consumed}) is outside the epoch")
        self._resume = (epoch, consumed)
        self._position = (epoch, consumed)

    # -- pickling ----------------------------------------------------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        """Pickling (``copy.deepcopy``, DataLoader workers started with ``"spawn"``, ``torch.save``)
        stores the constructor's arguments and the iteration position; unpickling builds a new engine
        over the same archives (reopened by path), so the copy yields the same batches."""
        sources, kwargs = self._ctor
        return {"sources": sources, "kwargs": dict(kwargs, device=self.device), "position": self._position,
                "resume": self._resume}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["sources"], **state["kwargs"])
        self._position = state["position"]
        self._resume = state["resume"]

    def __repr__(self) -> str:
        where = "" if self.device is None else f", device {self.device}"
        return (f"KuatDataset({self.num_samples} samples, {self.batch_count()} batches of {self.batch_size}, "
                f"{self.layout} {self.dtype}, rank {self.rank}/{self.world_size}{where})")

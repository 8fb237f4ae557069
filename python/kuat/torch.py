"""PyTorch wrapper: ``KuatIterableDataset`` for ``DataLoader(ds, batch_size=None)``.

The loader already batches and decodes on its own threads, so the natural setting is
``num_workers=0``; ``pin_memory=True`` works as usual. With ``num_workers=n`` each worker process
runs its own engine over every n-th batch (worker w takes batches w, w + n, ...), and since
DataLoader takes one batch from each worker in turn, the order is the same as with one process.

Epochs advance wherever the loop runs. The epoch counter lives in shared memory (created by the
process that made the dataset, inherited by every DataLoader worker, persistent or not), so a pass
that runs in worker processes advances the same counter the main process reads, and set_epoch()
in the main process reaches persistent workers. The workers of one pass agree on its epoch: the
first worker to start a pass claims the next epoch and opens the pass; the others join it; a
worker that already took part in the open pass, runs with a different worker count, or belongs to
another DataLoader iterator (another base seed: a non-persistent pass) opens the next one.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from typing import Any, Dict, Iterator, Optional, Tuple

from lowbit._deps import require_torch

require_torch("kuat.torch")

import torch
import torch.utils.data

from .dataset import KuatDataset

_MAX_WORKERS = 1024
# Shared slots: next epoch, epoch of the open pass, worker count of the open pass (0: none open),
# the DataLoader iterator's base seed of the open pass, then one "took part" flag per worker id.
_NEXT, _OPEN_EPOCH, _OPEN_WORKERS, _OPEN_KEY, _FLAGS = 0, 1, 2, 3, 4


class _EpochCounter:
    """The epoch counter shared by the main process and the DataLoader workers (see the module docstring)."""

    def __init__(self, epoch: int = 0) -> None:
        # The lock must reach workers of any start method. A lock made by the "fork" context (Linux's
        # default) is an unnamed semaphore: pickled for a "spawn"/"forkserver" worker it arrives as a
        # dangling pointer (a segfault in the worker on Python 3.11). The "spawn" context's lock is
        # a named semaphore, which fork, spawn and forkserver workers all reach.
        self._shared = multiprocessing.get_context("spawn").Array("q", _FLAGS + _MAX_WORKERS)
        self._shared[_NEXT] = epoch

    def next_epoch(self) -> int:
        return int(self._shared[_NEXT])

    def set(self, epoch: int) -> None:
        with self._shared.get_lock():
            self._shared[_NEXT] = epoch
            self._shared[_OPEN_WORKERS] = 0

    def claim(self, worker: Optional[int], num_workers: int, key: int = 0) -> int:
        """The epoch of the pass starting now in ``worker`` (None: the main process, a whole pass).

        ``key`` is the DataLoader iterator's base seed: a worker of a new non-persistent iterator opens
        a new pass even if it is the first to start and the previous pass's flag for it was never set.
        """
        s = self._shared
        with s.get_lock():
            if worker is None:
                epoch = s[_NEXT]
                s[_NEXT] = epoch + 1
                s[_OPEN_WORKERS] = 0
                return int(epoch)
            if num_workers > _MAX_WORKERS:
                raise ValueError(f"KuatIterableDataset supports at most {_MAX_WORKERS} DataLoader workers")
            key &= 2**63 - 1
            if s[_OPEN_WORKERS] != num_workers or s[_FLAGS + worker] or s[_OPEN_KEY] != key:
                s[_OPEN_EPOCH] = s[_NEXT]
                s[_NEXT] = s[_OPEN_EPOCH] + 1
                s[_OPEN_WORKERS] = num_workers
                s[_OPEN_KEY] = key
                for w in range(num_workers):
                    s[_FLAGS + w] = 0
            s[_FLAGS + worker] = 1
            return int(s[_OPEN_EPOCH])

    def __getstate__(self) -> Dict[str, Any]:
        # Shared memory can only travel to a process being started (DataLoader workers); any other
        # pickling (deepcopy, saving) takes a snapshot that starts a counter of its own.
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"snapshot": self.next_epoch()}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if "shared" in state:
            self._shared = state["shared"]
        else:
            self.__init__(state["snapshot"])


class KuatIterableDataset(torch.utils.data.IterableDataset):
    """Yields ``(images, labels)`` tensors: images as KuatDataset makes them (zero-copy), labels int64.

    Each pass (``iter()``, i.e. each ``for ... in DataLoader(...)``) runs one epoch and advances the
    epoch counter, with ``num_workers=0`` or any number of worker processes, persistent or not; every
    sample comes exactly once per epoch across the workers. ``set_epoch(e)`` chooses the next pass's
    epoch (as with DistributedSampler), ``epoch`` reads it. ``len()`` is the number of batches
    (DataLoader's items). Keyword arguments go to KuatDataset (``device=`` too: tensors on that device).
    """

    def __init__(self, path_or_paths: Any, **dataset_kwargs: Any) -> None:
        super().__init__()
        self._args = (path_or_paths, dataset_kwargs)
        self._dataset: Optional[KuatDataset] = None
        self._epochs = _EpochCounter(0)
        self.dataset  # validate the arguments now, in the process that made us

    @property
    def dataset(self) -> KuatDataset:
        if self._dataset is None:
            path_or_paths, kwargs = self._args
            info = torch.utils.data.get_worker_info()
            if info is not None and kwargs.get("num_threads") is None:
                kwargs = dict(kwargs, num_threads=max(1, (os.cpu_count() or 1) // info.num_workers))
            self._dataset = KuatDataset(path_or_paths, **kwargs)
        return self._dataset

    def __getstate__(self) -> Dict[str, Any]:  # worker processes build their own engine
        state = self.__dict__.copy()
        state["_dataset"] = None
        return state

    @property
    def epoch(self) -> int:
        """The epoch the next pass runs."""
        return self._epochs.next_epoch()

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.set_epoch(value)

    def set_epoch(self, epoch: int) -> None:
        """The next pass (in this process or in DataLoader workers) runs epoch ``epoch``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epochs.set(int(epoch))

    def __len__(self) -> int:
        return self.dataset.batch_count()

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        info = torch.utils.data.get_worker_info()
        if info is None:
            epoch = self._epochs.claim(None, 1)
            batches = ds.epoch(epoch)
        else:
            epoch = self._epochs.claim(info.id, info.num_workers, info.seed - info.id)
            batches = ds._batches(epoch, info.id, info.num_workers)
        for batch in batches:
            images, labels = batch["images"], batch["labels"]
            if not isinstance(images, torch.Tensor):
                images, labels = torch.from_numpy(images), torch.from_numpy(labels)
            yield images, labels.long()

    def state_dict(self) -> Dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)
        self._epochs.set(int(state["epoch"]))

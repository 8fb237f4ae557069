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

Checkpoints follow the same counter: ``state_dict()`` gives the position of the loop wherever it
runs. Between passes it is exact (the next epoch, 0 batches consumed), and so is it during a pass
in this process (the batches yielded). The main process cannot count the batches of a pass that
runs in worker processes: while a worker is still producing, the state is that epoch from its
start; once every worker has produced its share it is the next epoch, although up to
num_workers * prefetch_factor of those batches may still wait in the DataLoader, so take
checkpoints between passes there. After ``load_state_dict()`` the next pass resumes after the
consumed batches, in this process or in workers (worker w of n then takes batches consumed + w,
consumed + w + n, ...).
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.context
import os
import weakref
from typing import Any, Dict, Iterator, Optional, Tuple

from lowbit._deps import require_torch

require_torch("kuat.torch")

import torch
import torch.utils.data

from .dataset import KuatDataset

_MAX_WORKERS = 1024
# Shared slots: next epoch, epoch of the open pass, worker count of the open pass (0: none open),
# the DataLoader iterator's base seed of the open pass, how many of its workers finished, the
# resume point set by load_state_dict (epoch, batches consumed; epoch -1: none), then one
# "took part" flag per worker id.
_NEXT, _OPEN_EPOCH, _OPEN_WORKERS, _OPEN_KEY, _OPEN_DONE, _RESUME_EPOCH, _RESUME_BATCHES, _FLAGS = range(8)


class _EpochCounter:
    """The epoch counter shared by the main process and the DataLoader workers (see the module docstring)."""

    def __init__(self, epoch: int = 0) -> None:
        # The lock must survive every start method a DataLoader may use: a lock made by the fork
        # context is an unnamed semaphore whose handle means nothing in a spawned or forkserver
        # worker (the worker crashed with SIGSEGV on its first claim); a spawn-context lock is a
        # named semaphore that fork, spawn and forkserver workers all reopen.
        self._shared = multiprocessing.get_context("spawn").Array("q", _FLAGS + _MAX_WORKERS)
        self._shared[_NEXT] = epoch
        self._shared[_RESUME_EPOCH] = -1

    def next_epoch(self) -> int:
        return int(self._shared[_NEXT])

    def set(self, epoch: int, resume_batches: int = 0) -> None:
        """The next pass runs ``epoch``, starting after ``resume_batches`` of its batches."""
        with self._shared.get_lock():
            self._shared[_NEXT] = epoch
            self._shared[_OPEN_WORKERS] = 0
            self._shared[_RESUME_EPOCH] = epoch if resume_batches else -1
            self._shared[_RESUME_BATCHES] = resume_batches

    def first_batch(self, epoch: int) -> int:
        """Batches of ``epoch`` already consumed before a load_state_dict() (0: none)."""
        with self._shared.get_lock():
            return int(self._shared[_RESUME_BATCHES]) if self._shared[_RESUME_EPOCH] == epoch else 0

    def finished(self, worker_epoch: int, key: int) -> None:
        """A worker ran its share of the open pass to the end."""
        s = self._shared
        with s.get_lock():
            if s[_OPEN_WORKERS] and s[_OPEN_EPOCH] == worker_epoch and s[_OPEN_KEY] == key & (2**63 - 1):
                s[_OPEN_DONE] += 1

    def position(self) -> Tuple[int, int]:
        """(epoch, batches consumed) of the next pass as far as the counter knows: a pending resume,
        an unfinished worker pass (from its start), else the next epoch."""
        s = self._shared
        with s.get_lock():
            if s[_RESUME_EPOCH] == s[_NEXT] and s[_RESUME_EPOCH] >= 0:
                return int(s[_NEXT]), int(s[_RESUME_BATCHES])
            if s[_OPEN_WORKERS] and s[_OPEN_DONE] < s[_OPEN_WORKERS] and s[_OPEN_EPOCH] + 1 == s[_NEXT]:
                return int(s[_OPEN_EPOCH]), int(s[_RESUME_BATCHES]) if s[_RESUME_EPOCH] == s[_OPEN_EPOCH] else 0
            return int(s[_NEXT]), 0

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
                s[_OPEN_DONE] = 0
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


def _drop_engine(ref: "weakref.ReferenceType[KuatIterableDataset]") -> None:
    ds = ref()
    if ds is not None:
        ds._dataset = None


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
        self._main_pass: Optional[int] = None  # epoch of the last pass run in this process
        self.dataset  # validate the arguments now, in the process that made us

    @property
    def dataset(self) -> KuatDataset:
        if self._dataset is None:
            path_or_paths, kwargs = self._args
            info = torch.utils.data.get_worker_info()
            if info is not None and kwargs.get("num_threads") is None:
                kwargs = dict(kwargs, num_threads=max(1, (os.cpu_count() or 1) // info.num_workers))
            self._dataset = KuatDataset(path_or_paths, **kwargs)
            if info is not None:
                # A spawn/forkserver worker ends with a normal interpreter exit: drop its engine
                # first, or nanobind reports the loader as a leaked instance on every worker exit.
                atexit.register(_drop_engine, weakref.ref(self))
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
        from ._index import integer

        if integer(epoch) is None or integer(epoch) < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epochs.set(integer(epoch))

    def __len__(self) -> int:
        return self.dataset.batch_count()

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        info = torch.utils.data.get_worker_info()
        if info is None:
            epoch = self._epochs.claim(None, 1)
            self._main_pass = epoch
            batches = ds._batches(epoch, self._epochs.first_batch(epoch), 1)
        else:
            epoch = self._epochs.claim(info.id, info.num_workers, info.seed - info.id)
            batches = ds._batches(epoch, self._epochs.first_batch(epoch) + info.id, info.num_workers)
        for batch in batches:
            images, labels = batch["images"], batch["labels"]
            if not isinstance(images, torch.Tensor):
                images, labels = torch.from_numpy(images), torch.from_numpy(labels)
            yield images, labels.long()
        if info is not None:
            self._epochs.finished(epoch, info.seed - info.id)

    def state_dict(self) -> Dict[str, Any]:
        """KuatDataset.state_dict() for the loop wherever it runs: ``epoch`` and ``batches_consumed``
        come from the shared counter (see the module docstring), so a pass run by DataLoader
        workers is counted too; during a pass in worker processes it is that epoch from its start."""
        state = self.dataset.state_dict()
        epoch, consumed = self._epochs.position()
        mine = self.dataset._position
        if self._main_pass is not None and mine[0] == self._main_pass == epoch - 1 and mine[1] < self.dataset.batch_count():
            epoch, consumed = mine  # a pass of this process, stopped midway
        state["epoch"], state["batches_consumed"] = epoch, consumed
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The next pass (here or in DataLoader workers) runs ``state["epoch"]`` after its
        ``batches_consumed`` batches. Raises ValueError for a state of a differently configured dataset."""
        self.dataset.load_state_dict(state)  # validates the configuration and the position
        self.dataset._resume = None  # the shared counter carries the resume point to every process
        self._main_pass = None
        self._epochs.set(int(state["epoch"]), int(state["batches_consumed"]))

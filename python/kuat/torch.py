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
another DataLoader iterator (another base seed: a non-persistent pass) opens the next one. Each
DataLoader iterator has its own open pass (up to 16 at once), so two loaders over the same dataset
iterated together (``zip(train, val)``), or a ``num_workers=0`` pass run in the middle of a worker
pass, each get whole epochs of their own.

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
# Shared slots: the next epoch, the resume point set by load_state_dict (epoch, batches consumed;
# epoch -1: none), a use counter, then a table of open worker passes. Several passes may be open at
# once (two DataLoaders over the same dataset iterated together, e.g. zip(train, val), or a
# num_workers=0 pass run while a worker pass is under way): each pass has its own slot, found by its
# DataLoader iterator's base seed and worker count. A slot: the pass's epoch, its worker count (0:
# free), the base seed, how many of its workers finished, when it was last used, then one "took
# part" bit per worker id (63 per word).
_NEXT, _RESUME_EPOCH, _RESUME_BATCHES, _TICK, _SLOTS = range(5)
_S_EPOCH, _S_WORKERS, _S_KEY, _S_DONE, _S_USED, _S_FLAGS = range(6)
_FLAG_BITS = 63
_FLAG_WORDS = -(-_MAX_WORKERS // _FLAG_BITS)
_SLOT_SIZE = _S_FLAGS + _FLAG_WORDS
_NUM_SLOTS = 16


class _EpochCounter:
    """The epoch counter shared by the main process and the DataLoader workers (see the module docstring)."""

    def __init__(self, epoch: int = 0) -> None:
        # The lock must survive every start method a DataLoader may use: a lock made by the fork
        # context is an unnamed semaphore whose handle means nothing in a spawned or forkserver
        # worker (the worker crashed with SIGSEGV on its first claim); a spawn-context lock is a
        # named semaphore that fork, spawn and forkserver workers all reopen.
        self._shared = multiprocessing.get_context("spawn").Array("q", _SLOTS + _NUM_SLOTS * _SLOT_SIZE)
        self._shared[_NEXT] = epoch
        self._shared[_RESUME_EPOCH] = -1

    # -- the table of open worker passes (call with the lock held) ---------------------------
    @staticmethod
    def _slot(i: int, field: int) -> int:
        return _SLOTS + i * _SLOT_SIZE + field

    def _find(self, key: int, num_workers: Optional[int] = None, epoch: Optional[int] = None) -> Optional[int]:
        s = self._shared
        for i in range(_NUM_SLOTS):
            workers = s[self._slot(i, _S_WORKERS)]
            if workers and s[self._slot(i, _S_KEY)] == key and num_workers in (None, workers) \
                    and epoch in (None, s[self._slot(i, _S_EPOCH)]):
                return i
        return None

    def _took_part(self, i: int, worker: int) -> bool:
        word = self._shared[self._slot(i, _S_FLAGS + worker // _FLAG_BITS)]
        return bool(word >> (worker % _FLAG_BITS) & 1)

    def _mark(self, i: int, worker: int) -> None:
        at = self._slot(i, _S_FLAGS + worker // _FLAG_BITS)
        self._shared[at] = self._shared[at] | (1 << (worker % _FLAG_BITS))

    def _touch(self, i: int) -> None:
        s = self._shared
        s[_TICK] += 1
        s[self._slot(i, _S_USED)] = s[_TICK]

    def _clear(self) -> None:
        for i in range(_NUM_SLOTS):
            self._shared[self._slot(i, _S_WORKERS)] = 0

    # -- the API --------------------------------------------------------------------------------
    def next_epoch(self) -> int:
        return int(self._shared[_NEXT])

    def set(self, epoch: int, resume_batches: int = 0) -> None:
        """The next pass runs ``epoch``, starting after ``resume_batches`` of its batches."""
        with self._shared.get_lock():
            self._shared[_NEXT] = epoch
            self._clear()
            self._shared[_RESUME_EPOCH] = epoch if resume_batches else -1
            self._shared[_RESUME_BATCHES] = resume_batches

    def first_batch(self, epoch: int) -> int:
        """Batches of ``epoch`` already consumed before a load_state_dict() (0: none)."""
        with self._shared.get_lock():
            return int(self._shared[_RESUME_BATCHES]) if self._shared[_RESUME_EPOCH] == epoch else 0

    def finished(self, worker_epoch: int, key: int) -> None:
        """A worker ran its share of its pass to the end; the pass's slot is freed once all have."""
        s = self._shared
        with s.get_lock():
            i = self._find(key & (2**63 - 1), epoch=worker_epoch)
            if i is not None:
                s[self._slot(i, _S_DONE)] += 1
                if s[self._slot(i, _S_DONE)] >= s[self._slot(i, _S_WORKERS)]:
                    s[self._slot(i, _S_WORKERS)] = 0

    def position(self) -> Tuple[int, int]:
        """(epoch, batches consumed) of the next pass as far as the counter knows: a pending resume,
        an unfinished worker pass that was the last one opened (from its start), else the next epoch."""
        s = self._shared
        with s.get_lock():
            if s[_RESUME_EPOCH] == s[_NEXT] and s[_RESUME_EPOCH] >= 0:
                return int(s[_NEXT]), int(s[_RESUME_BATCHES])
            last = s[_NEXT] - 1
            for i in range(_NUM_SLOTS):
                if s[self._slot(i, _S_WORKERS)] and s[self._slot(i, _S_EPOCH)] == last:
                    return int(last), int(s[_RESUME_BATCHES]) if s[_RESUME_EPOCH] == last else 0
            return int(s[_NEXT]), 0

    def claim(self, worker: Optional[int], num_workers: int, key: int = 0) -> int:
        """The epoch of the pass starting now in ``worker`` (None: the main process, a whole pass).

        ``key`` is the DataLoader iterator's base seed: a worker joins the open pass of its own
        iterator (same base seed and worker count) unless it already took part in it, in which case
        (a persistent worker's next pass, or a new iterator that drew the same base seed) it opens a
        new pass. Passes of other iterators open at the same time are left alone.
        """
        s = self._shared
        with s.get_lock():
            if worker is None:
                epoch = s[_NEXT]
                s[_NEXT] = epoch + 1
                return int(epoch)
            if num_workers > _MAX_WORKERS:
                raise ValueError(f"KuatIterableDataset supports at most {_MAX_WORKERS} DataLoader workers")
            key &= 2**63 - 1
            i = self._find(key, num_workers)
            if i is None or self._took_part(i, worker):
                if i is None:  # a free slot, else the one unused longest (a pass abandoned midway)
                    i = min(range(_NUM_SLOTS), key=lambda j: (s[self._slot(j, _S_WORKERS)] != 0,
                                                                s[self._slot(j, _S_USED)]))
                s[self._slot(i, _S_EPOCH)] = s[_NEXT]
                s[_NEXT] = s[_NEXT] + 1
                s[self._slot(i, _S_WORKERS)] = num_workers
                s[self._slot(i, _S_KEY)] = key
                s[self._slot(i, _S_DONE)] = 0
                for w in range(_FLAG_WORDS):
                    s[self._slot(i, _S_FLAGS + w)] = 0
            self._mark(i, worker)
            self._touch(i)
            return int(s[self._slot(i, _S_EPOCH)])

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

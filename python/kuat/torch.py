"""PyTorch wrapper: ``KuatIterableDataset`` for ``DataLoader(ds, batch_size=None)``.

The loader already batches and decodes on its own threads, so the natural setting is
``num_workers=0``; ``pin_memory=True`` works as usual. With ``num_workers=n`` each worker process
runs its own engine over every n-th batch (worker w takes batches w, w + n, ...), and since
DataLoader takes one batch from each worker in turn, the order is the same as with one process.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.utils.data

from .dataset import KuatDataset


class KuatIterableDataset(torch.utils.data.IterableDataset):
    """Yields ``(images, labels)`` tensors: images as KuatDataset makes them (zero-copy), labels int64.

    Each ``iter()`` runs one epoch and then advances the epoch counter; ``set_epoch(e)`` chooses it
    (as with DistributedSampler). Keyword arguments go to KuatDataset.
    """

    def __init__(self, path_or_paths: Any, **dataset_kwargs: Any) -> None:
        super().__init__()
        self._args = (path_or_paths, dataset_kwargs)
        self._dataset: Optional[KuatDataset] = None
        self.epoch = 0
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        info = torch.utils.data.get_worker_info()
        if info is None:
            batches = ds.epoch(self.epoch)
        else:
            batches = ds._batches(self.epoch, info.id, info.num_workers)
        for batch in batches:
            yield torch.from_numpy(batch["images"]), torch.from_numpy(batch["labels"]).long()
        self.epoch += 1

    def state_dict(self) -> Dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)
        self.epoch = int(state["epoch"])

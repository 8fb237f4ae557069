"""KuatIterableDataset with torch's DataLoader."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kuat.dataset import KuatDataset  # noqa: E402
from kuat.torch import KuatIterableDataset  # noqa: E402

from test_kuat_loader import make_archive  # noqa: E402


def test_dataloader_yields_tensors_in_the_dataset_order():
    arch, *_ = make_archive(n=45)
    ds = KuatIterableDataset(arch, batch_size=8, layout="NCHW")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, pin_memory=True)
    assert len(loader) == 6
    want = [b["images"].copy() for b in KuatDataset(arch, batch_size=8, layout="NCHW").epoch(0)]
    got = list(loader)
    assert len(got) == 6
    for (images, labels), w in zip(got, want):
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 10, 9)
        assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
        np.testing.assert_array_equal(images.numpy(), w)
    # The next iteration is the next epoch.
    second = [images.numpy().copy() for images, _ in loader]
    assert not all(np.array_equal(a, b) for a, b in zip(second, want))
    ds.set_epoch(0)
    assert all(np.array_equal(images.numpy(), w) for (images, _), w in zip(loader, want))


def test_worker_processes_keep_the_order():
    arch, *_ = make_archive(n=45)
    want = [b["labels"].copy() for b in KuatDataset(arch, batch_size=4).epoch(0)]
    loader = torch.utils.data.DataLoader(KuatIterableDataset(arch, batch_size=4), batch_size=None, num_workers=2)
    got = [labels.numpy() for _, labels in loader]
    assert len(got) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_bad_arguments_fail_at_construction():
    arch, *_ = make_archive(n=5)
    with pytest.raises(ValueError, match="batch_size"):
        KuatIterableDataset(arch, batch_size=0)


def test_rank_and_world_size_default_to_torch_distributed(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("this torch build has no torch.distributed")
    arch, *_ = make_archive(n=10)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ds = KuatDataset(arch, batch_size=2)
        assert (ds.rank, ds.world_size) == (0, 1)
        with pytest.raises(ValueError, match="rank must be < world_size"):
            KuatDataset(arch, batch_size=2, rank=1)  # world_size 1 comes from the process group
    finally:
        dist.destroy_process_group()

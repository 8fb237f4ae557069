"""KuatIterableDataset with torch's DataLoader."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kuat import dataset as kd  # noqa: E402
from kuat.dataset import KuatDataset, MemoryArchive  # noqa: E402
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


def labelled_archive(n):
    """An archive whose label is the sample index, so batches name their samples."""
    arch, idx, codebook, _ = make_archive(n=n)
    packed = np.stack([kd._engine.pack_indices(row, 9) for row in idx])
    return MemoryArchive(codebook, packed, np.arange(n, dtype=np.int32), 10, 9, 3, 2)


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("n,batch,drop_last", [(23, 4, False), (23, 4, True), (10, 3, False), (7, 8, False)])
def test_epochs_advance_wherever_the_loop_runs(workers, persistent, n, batch, drop_last):
    # Issue 15 kind 5: each pass is a new epoch, in the order num_workers=0 gives, each sample once.
    if persistent and workers == 0:
        persistent = False  # DataLoader only knows persistent workers when there are workers
    arch = labelled_archive(n)
    ds = KuatIterableDataset(arch, batch_size=batch, drop_last=drop_last, seed=11)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=persistent)
    reference = KuatDataset(arch, batch_size=batch, drop_last=drop_last, seed=11)
    per_epoch = len(reference.sample_order(0)) if not drop_last else n // batch * batch
    passes = [[int(v) for _, labels in loader for v in labels] for _ in range(3)]
    for epoch, seen in enumerate(passes):
        assert seen == [int(s) for s in reference.sample_order(epoch)[:per_epoch]], f"epoch {epoch}"
        assert len(seen) == len(set(seen)) == per_epoch
    assert passes[0] != passes[1] and passes[1] != passes[2]
    assert ds.epoch == 3
    ds.set_epoch(1)  # explicit control reaches the workers, persistent ones included
    assert [int(v) for _, labels in loader for v in labels] == passes[1]
    assert [int(v) for _, labels in loader for v in labels] == passes[2]


def test_set_epoch_and_worker_count_changes_agree():
    arch = labelled_archive(17)
    ds = KuatIterableDataset(arch, batch_size=3, seed=2)
    reference = KuatDataset(arch, batch_size=3, seed=2)
    got = []
    for workers in (2, 3, 0, 1, 3):
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        got.append([int(v) for _, labels in loader for v in labels])
    assert got == [[int(s) for s in reference.sample_order(e)] for e in range(5)]
    # Reseeding torch before every pass gives every DataLoader iterator the same base seed: still new epochs.
    ds.set_epoch(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    reseeded = []
    for _ in range(3):
        torch.manual_seed(0)
        reseeded.append([int(v) for _, labels in loader for v in labels])
    assert reseeded == got[:3]
    ds.set_epoch(5)
    import copy
    import pickle

    clone = pickle.loads(pickle.dumps(ds._epochs))  # a plain pickle is a snapshot with its own counter
    assert clone.next_epoch() == ds.epoch == 5
    clone.set(0)
    assert ds.epoch == 5 and copy.deepcopy(ds._epochs).next_epoch() == 5
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_iterable_dataset_on_a_device_yields_device_tensors(device):
    arch, *_ = make_archive(n=13)
    ds = KuatIterableDataset(arch, batch_size=4, layout="NCHW", device=device)
    want = [b["images"].copy() for b in KuatDataset(arch, batch_size=4, layout="NCHW").epoch(0)]
    got = list(torch.utils.data.DataLoader(ds, batch_size=None))
    assert len(got) == len(want) == len(ds)
    for (images, labels), w in zip(got, want):
        assert images.device.type == device.type and labels.dtype == torch.int64
        np.testing.assert_array_equal(images.cpu().numpy(), w)


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("persistent", [False, True])
def test_checkpoints_follow_epochs_run_by_workers(workers, persistent):
    # Kind 5: state_dict() after passes run in DataLoader workers names the next epoch (it used to
    # say epoch 0, so a resumed run repeated epoch 0), and load_state_dict() resumes mid-epoch in
    # workers too (they used to start the epoch again from its first batch).
    if persistent and workers == 0:
        persistent = False
    n, batch = 23, 4
    arch = labelled_archive(n)
    reference = KuatDataset(arch, batch_size=batch, seed=5)
    orders = [[int(v) for v in reference.sample_order(e)] for e in range(6)]

    def one_pass(loader):
        return [int(v) for _, labels in loader for v in labels]

    ds = KuatIterableDataset(arch, batch_size=batch, seed=5)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=persistent)
    assert (ds.state_dict()["epoch"], ds.state_dict()["batches_consumed"]) == (0, 0)
    for epoch in range(2):
        assert one_pass(loader) == orders[epoch]
        state = ds.state_dict()
        assert (state["epoch"], state["batches_consumed"]) == (epoch + 1, 0)
    for consumed in (0, 1, 3, reference.batch_count()):
        again = KuatIterableDataset(arch, batch_size=batch, seed=5)
        loader = torch.utils.data.DataLoader(again, batch_size=None, num_workers=workers, persistent_workers=persistent)
        again.load_state_dict(dict(state, epoch=3, batches_consumed=consumed))
        assert (again.state_dict()["epoch"], again.state_dict()["batches_consumed"]) == (3, consumed)
        assert one_pass(loader) == orders[3][consumed * batch:]
        assert again.state_dict()["epoch"] == 4 and one_pass(loader) == orders[4]
        again.set_epoch(3)  # an explicit epoch runs whole again
        assert one_pass(loader) == orders[3]


def test_checkpoint_mid_pass_in_the_main_process():
    arch = labelled_archive(23)
    ds = KuatIterableDataset(arch, batch_size=4, seed=5)
    loader = torch.utils.data.DataLoader(ds, batch_size=None)
    it = iter(loader)
    seen = [int(v) for _ in range(2) for v in next(it)[1]]
    state = ds.state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (0, 2)
    again = KuatIterableDataset(arch, batch_size=4, seed=5)
    again.load_state_dict(state)
    rest = [int(v) for _, labels in torch.utils.data.DataLoader(again, batch_size=None) for v in labels]
    assert seen + rest == [int(v) for v in KuatDataset(arch, batch_size=4, seed=5).sample_order(0)]


@pytest.mark.parametrize("context,persistent", [("spawn", False), ("spawn", True), ("forkserver", True)])
def test_epochs_advance_with_spawned_workers(tmp_path, capfd, context, persistent):
    # Kind 5: the shared epoch counter's lock was a fork-context (unnamed) semaphore, so a
    # spawn or forkserver worker crashed with SIGSEGV on its first claim; and every spawned
    # worker's exit printed nanobind "leaked instance" reports.
    import kuat
    from kuat_helpers import write_idx

    n = 11
    src = write_idx(tmp_path / "idx", np.repeat(np.arange(n, dtype=np.uint8), 16).reshape(n, 4, 4), np.arange(n), gz=False)
    kuat.convert_dataset(src / "train-images-idx3-ubyte", tmp_path / "a.kuat", codebook_size=16, bits=8)
    path = str(tmp_path / "a.kuat")
    reference = KuatDataset(path, batch_size=3, seed=3)
    orders = [[int(v) for v in reference.sample_order(e)] for e in range(3)]
    ds = KuatIterableDataset(path, batch_size=3, seed=3, num_threads=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=persistent,
                                         multiprocessing_context=context)
    passes = [[int(v) for _, labels in loader for v in labels] for _ in range(2)]
    assert passes == orders[:2] and ds.state_dict()["epoch"] == 2
    ds.set_epoch(1)
    assert [int(v) for _, labels in loader for v in labels] == orders[1]
    del loader
    import gc

    gc.collect()
    assert "leaked" not in capfd.readouterr().err


def _late_second_worker(worker_id):
    import time

    if worker_id == 1:
        time.sleep(0.5)  # the other loader's workers claim their pass meanwhile


@pytest.mark.parametrize("other_workers", [0, 2, 3])
@pytest.mark.parametrize("persistent", [False, True])
def test_two_loaders_over_one_dataset_iterated_together(other_workers, persistent):
    # Kind 5: one open pass was shared by every DataLoader: a second loader's workers (zip(train, val)),
    # or a num_workers=0 pass run while a worker pass was starting, closed the first loader's pass, so
    # its late worker read its batches from another epoch (samples twice, others never).
    arch = labelled_archive(23)
    reference = KuatDataset(arch, batch_size=2, seed=7)
    ds = KuatIterableDataset(arch, batch_size=2, seed=7)
    first = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=persistent,
                                        worker_init_fn=_late_second_worker)
    other = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=other_workers)
    orders = {e: [int(v) for v in reference.sample_order(e)] for e in range(8)}
    for _ in range(2):
        a, b = [], []
        for (_, la), (_, lb) in zip(first, other):
            a += [int(v) for v in la]
            b += [int(v) for v in lb]
        assert sorted(a) == sorted(b) == list(range(23))
        assert a in orders.values() and b in orders.values() and a != b
    assert ds.epoch == 4 and ds.state_dict()["epoch"] == 4
    # a whole pass of the second loader inside the first one's (evaluation mid-epoch)
    a = []
    for step, (_, labels) in enumerate(first):
        a += [int(v) for v in labels]
        if step == 0:
            assert sorted(int(v) for _, lb in other for v in lb) == list(range(23))
    assert sorted(a) == list(range(23)) and ds.epoch == 6

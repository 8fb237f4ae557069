"""Kuat objects through a PyTorch user's lifecycle: pickling, deepcopy, DataLoader workers under
the "fork" and "spawn" start methods (spawn pickles the dataset into each worker), repeated opens."""

from __future__ import annotations

import copy
import os
import pickle
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kuat import KuatArchive, KuatDataset, convert_dataset  # noqa: E402
from kuat.gpu import GPUDataset, GPUDecoder  # noqa: E402
from kuat.torch import KuatIterableDataset  # noqa: E402

from kuat_helpers import write_cifar10  # noqa: E402
from test_kuat_loader import make_archive  # noqa: E402


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    write_cifar10(root / "cifar", per_batch=8, batches=2)
    path = root / "a.kuat"
    convert_dataset(root / "cifar", path, codebook_size=16)
    return str(path)


class _ArchiveSamples(torch.utils.data.Dataset):
    """A user's map-style dataset holding an open archive (the usual wrapper)."""

    def __init__(self, path):
        self.archive = KuatArchive(path)

    def __len__(self):
        return len(self.archive)

    def __getitem__(self, i):
        sample = self.archive[i]
        return torch.from_numpy(sample["image"]), sample["label"]


def _seed_worker(worker_id):
    torch.manual_seed(worker_id)


def _epochs(loader, n=2):
    return [[(x.clone(), y.clone()) for x, y in loader] for _ in range(n)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        assert len(ea) == len(eb)
        for (xa, ya), (xb, yb) in zip(ea, eb):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_archive_round_trips_through_pickle(archive_path, how):
    a = KuatArchive(archive_path)
    b = pickle.loads(pickle.dumps(a)) if how == "pickle" else copy.deepcopy(a)
    assert len(b) == len(a) and b.path == a.path and b.codebook_hash == a.codebook_hash
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["image"], b[i]["image"])
        assert a[i]["label"] == b[i]["label"]


def test_unpickling_an_archive_whose_file_changed_raises(archive_path, tmp_path):
    path = tmp_path / "moved.kuat"
    shutil.copy(archive_path, path)
    data = pickle.dumps(KuatArchive(path))
    os.remove(path)
    with pytest.raises(OSError):
        pickle.loads(data)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_dataset_round_trips_through_pickle_with_its_position(archive_path, how):
    ds = KuatDataset(archive_path, batch_size=4, seed=3, layout="NCHW")
    it = iter(ds)
    next(it)
    it.close()  # one batch of epoch 0 consumed
    clone = pickle.loads(pickle.dumps(ds)) if how == "pickle" else copy.deepcopy(ds)
    assert clone.state_dict() == ds.state_dict()
    for e in (0, 1):
        want = [(b["images"].copy(), b["labels"].copy()) for b in ds.epoch(e)]
        got = [(b["images"].copy(), b["labels"].copy()) for b in clone.epoch(e)]
        assert len(got) == len(want)
        for (wi, wl), (gi, gl) in zip(want, got):
            np.testing.assert_array_equal(wi, gi)
            np.testing.assert_array_equal(wl, gl)


def test_dataset_of_memory_archives_pickles():
    arch, *_ = make_archive(n=20)
    ds = KuatDataset([arch], batch_size=6, seed=1)
    clone = pickle.loads(pickle.dumps(ds))
    for a, b in zip(ds.epoch(2), clone.epoch(2)):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["labels"], b["labels"])


def test_device_dataset_and_gpu_classes_pickle_on_cpu(archive_path):
    ds = KuatDataset(archive_path, batch_size=4, device="cpu", dtype="float32")
    clone = copy.deepcopy(ds)
    for a, b in zip(ds.epoch(0), clone.epoch(0)):
        assert torch.equal(a["images"], b["images"])
    g = GPUDataset(archive_path, batch_size=4, device="cpu")
    g2 = pickle.loads(pickle.dumps(g))
    rows = torch.arange(len(g))
    assert torch.equal(g[rows][0], g2[rows][0]) and torch.equal(g[rows][1], g2[rows][1])
    dec = GPUDecoder(archive_path, device="cpu")
    idx, _ = KuatArchive(archive_path).get_indices_batch([0, 1])
    assert torch.equal(dec.decode(idx), pickle.loads(pickle.dumps(dec)).decode(idx))


@pytest.mark.parametrize("kind,context,persistent", [
    (kind, context, False) for kind in ("iterable", "archive", "gpudataset") for context in ("fork", "spawn")
] + [("iterable", "fork", True), ("iterable", "spawn", True)])
def test_dataloader_workers_match_a_single_process(archive_path, context, persistent, kind):
    if kind == "iterable":
        make, kwargs = (lambda: KuatIterableDataset(archive_path, batch_size=4, seed=3, num_threads=1)), {
            "batch_size": None}
    elif kind == "archive":
        make, kwargs = (lambda: _ArchiveSamples(archive_path)), {"batch_size": 4}
    else:
        make, kwargs = (lambda: GPUDataset(archive_path, batch_size=4, device="cpu")), {"batch_size": 4}
    want = _epochs(torch.utils.data.DataLoader(make(), num_workers=0, **kwargs))
    loader = torch.utils.data.DataLoader(make(), num_workers=2, multiprocessing_context=context,
                                         persistent_workers=persistent, worker_init_fn=_seed_worker, **kwargs)
    _assert_same(want, _epochs(loader))


def test_spawn_workers_exit_without_leak_reports(archive_path, tmp_path):
    # A spawned worker keeps its dataset in torch's worker-info global until the interpreter shuts
    # down; nanobind used to report our archives as "leaked" there (30 lines per worker, per epoch).
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "spawn_loader.py"
    script.write_text(textwrap.dedent(f"""
        import torch
        from kuat import KuatArchive
        from kuat.torch import KuatIterableDataset

        class Samples(torch.utils.data.Dataset):
            def __init__(self):
                self.archive = KuatArchive({archive_path!r})
            def __len__(self):
                return len(self.archive)
            def __getitem__(self, i):
                return torch.from_numpy(self.archive[i]["image"])

        if __name__ == "__main__":
            for ds, kw in ((Samples(), {{"batch_size": 4}}),
                           (KuatIterableDataset({archive_path!r}, batch_size=4, num_threads=1), {{"batch_size": None}})):
                loader = torch.utils.data.DataLoader(ds, num_workers=2, multiprocessing_context="spawn", **kw)
                print(sum(1 for _ in loader))
    """))
    env = {k: v for k, v in os.environ.items() if k != "LOWBIT_LEAK_WARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert "leaked" not in p.stderr, p.stderr[:2000]


@pytest.mark.parametrize("preload", [True, False])
def test_gpudataset_pickle_carries_no_copy_of_the_index_data(tmp_path_factory, preload):
    root = tmp_path_factory.getbasetemp() / "gpudataset-pickle"
    path = root / "b.kuat"
    if not path.exists():
        write_cifar10(root / "cifar", per_batch=100, batches=5)
        convert_dataset(root / "cifar", path, codebook_size=16)
    g = GPUDataset(path, batch_size=4, device="cpu", preload=preload)
    data = pickle.dumps(g)
    index_bytes = g._packed_host.nbytes
    assert len(data) < index_bytes / 2  # it held the index data once or twice (host, preloaded)
    clone = pickle.loads(data)
    assert (clone._packed is None) == (not preload)
    rows = torch.arange(len(g))
    assert torch.equal(clone[rows][0], g[rows][0]) and torch.equal(clone[rows][1], g[rows][1])


def test_pickles_of_relative_paths_reopen_the_same_file_after_a_chdir(archive_path, tmp_path, monkeypatch):
    folder, name = os.path.split(archive_path)
    monkeypatch.chdir(folder)
    a = KuatArchive(name)
    ds = KuatDataset(name, batch_size=4)
    monkeypatch.chdir(tmp_path)  # e.g. a launcher that changes the working directory
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.num_samples == ds.num_samples
    import lowbit

    monkeypatch.chdir(folder)
    with lowbit.backend("torch"):  # decoded by PyTorch: the device decoder opens the archive at the first batch
        on_device = KuatDataset(name, batch_size=4, device="cpu")
        monkeypatch.chdir(tmp_path)
        assert sum(1 for _ in on_device.epoch(0)) == on_device.batch_count()
    monkeypatch.chdir(folder)
    g = GPUDataset(name, batch_size=4, device="cpu")
    want = [labels for _, labels in g.epoch(1)]
    monkeypatch.chdir(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(want, [labels for _, labels in g.epoch(1)]))

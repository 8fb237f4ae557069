"""KuatDataset over in-memory and on-disk archives: order, content, ranks, resume, errors."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kuat import dataset as kd
from kuat.dataset import KuatDataset, MemoryArchive

# float32 outputs are table values rounded once from double: relative 1e-6 is ~8 float ulps.
FLOAT_RTOL = 1e-6

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "kuat" / "golden_v1_fixed.kuat"


def make_archive(n=50, h=10, w=9, c=3, p=2, k=300, seed=0, codebook_seed=1):
    """A MemoryArchive plus its plain indices and codebook, for numpy reference decodes."""
    rng = np.random.default_rng(seed)
    codebook = np.random.default_rng(codebook_seed).integers(0, 256, (k, p * p * c), dtype=np.uint8)
    gh, gw = -(-h // p), -(-w // p)
    idx = rng.integers(0, k, (n, gh * gw)).astype(np.uint32)
    bits = max(1, int(np.ceil(np.log2(k))))
    packed = np.stack([kd._engine.pack_indices(row, bits) for row in idx])
    labels = (np.arange(n) * 7 % 11).astype(np.int32)
    return MemoryArchive(codebook, packed, labels, h, w, c, p), idx, codebook, labels


def reference_image(idx_row, codebook, h, w, c, p):
    gh, gw = -(-h // p), -(-w // p)
    img = codebook[idx_row].reshape(gh, gw, p, p, c).transpose(0, 2, 1, 3, 4).reshape(gh * p, gw * p, c)
    return img[:h, :w]


def transformed(img, shift_y, shift_x, flip):
    h, w, _ = img.shape
    out = np.zeros_like(img)
    for y in range(h):
        for x in range(w):
            sy, sx = y + shift_y, (w - 1 - x if flip else x) + shift_x
            if 0 <= sy < h and 0 <= sx < w:
                out[y, x] = img[sy, sx]
    return out


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def test_batches_are_zero_copy_views_with_every_sample_once():
    arch, idx, codebook, labels = make_archive()
    ds = KuatDataset(arch, batch_size=8)
    assert len(ds) == 50 and ds.batch_count() == 7 and ds.num_samples == 50 and ds.sample_shape == (10, 9, 3)
    order = ds.sample_order(0)
    seen = []
    for i, batch in enumerate(ds.epoch(0)):
        images, lab = batch["images"], batch["labels"]
        assert images.dtype == np.uint8 and images.shape[1:] == (10, 9, 3)
        assert lab.dtype == np.int32 and lab.shape == (images.shape[0],)
        assert not images.flags.owndata and images.base is not None
        for j, s in enumerate(order[i * 8: i * 8 + len(lab)]):
            assert lab[j] == labels[s]
            np.testing.assert_array_equal(images[j], reference_image(idx[s], codebook, 10, 9, 3, 2))
        seen.extend(order[i * 8: i * 8 + len(lab)])
    assert sorted(seen) == list(range(50))
    assert list(order) != list(range(50))


def test_order_depends_on_seed_and_epoch_only():
    arch, *_ = make_archive(n=97)
    one = KuatDataset(arch, batch_size=10, num_threads=1)
    three = KuatDataset(arch, batch_size=10, num_threads=3, prefetch=6)
    a = [b["images"].copy() for b in one.epoch(2)]
    b = [b["images"].copy() for b in three.epoch(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 10
    assert not np.array_equal(one.sample_order(2), one.sample_order(3))
    assert not np.array_equal(one.sample_order(2), KuatDataset(arch, batch_size=10, seed=7).sample_order(2))
    assert list(KuatDataset(arch, batch_size=10, shuffle=False).sample_order(5)) == list(range(97))


def test_float32_nchw_normalisation_and_augmentation():
    arch, idx, codebook, _ = make_archive(n=12, h=11, w=12)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    kwargs = dict(batch_size=5, layout="NCHW", dtype="float32", mean=mean, std=std,
                  random_crop_padding=3, random_flip=True)
    ds = KuatDataset(arch, **kwargs)
    again = KuatDataset(arch, **kwargs)
    order = ds.sample_order(1)
    got = np.concatenate([b["images"] for b in ds.epoch(1)])
    np.testing.assert_array_equal(got, np.concatenate([b["images"] for b in again.epoch(1)]))
    assert got.dtype == np.float32 and got.shape == (12, 3, 11, 12)
    transforms = set()
    for j, s in enumerate(order):
        t = ds._loader.transform(1, int(s))
        transforms.add(t)
        img = transformed(reference_image(idx[s], codebook, 11, 12, 3, 2), *t).astype(np.float64)
        want = ((img / 255.0 - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(got[j], want, rtol=FLOAT_RTOL, atol=FLOAT_RTOL)
    assert len(transforms) > 6


def test_ranks_get_disjoint_equal_parts_of_one_permutation():
    arch, *_ = make_archive(n=53)
    full = KuatDataset(arch, batch_size=4).sample_order(0)
    for world in (2, 3, 4):
        for drop_last in (False, True):
            parts = [KuatDataset(arch, batch_size=4, rank=r, world_size=world, drop_last=drop_last)
                     for r in range(world)]
            assert len({len(p) for p in parts}) == 1
            orders = [p.sample_order(0) for p in parts]
            for r, order in enumerate(orders):
                assert list(order) == [full[(q * world + r) % 53] for q in range(len(order))]
            flat = np.concatenate(orders)
            if drop_last:
                assert len(set(flat)) == len(flat) == 53 // world * world
            else:
                assert set(flat) == set(range(53)) and len(flat) - 53 < world


def test_distributed_defaults(monkeypatch):
    arch, *_ = make_archive(n=20)
    monkeypatch.setattr(kd, "_distributed_rank_and_size", lambda: (1, 3))
    ds = KuatDataset(arch, batch_size=4)
    assert (ds.rank, ds.world_size) == (1, 3)
    assert KuatDataset(arch, batch_size=4, rank=0, world_size=1).world_size == 1
    monkeypatch.setattr(kd, "_distributed_rank_and_size", lambda: None)
    assert (KuatDataset(arch, batch_size=4).rank, KuatDataset(arch, batch_size=4).world_size) == (0, 1)


def test_state_dict_resumes_mid_epoch_exactly():
    arch, *_ = make_archive(n=60)
    ds = KuatDataset(arch, batch_size=7)
    full = [b["images"].copy() for b in ds.epoch(3)]
    it = ds.epoch(3)
    for _ in range(4):
        next(it)
    state = ds.state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (3, 4)
    del it
    fresh = KuatDataset(arch, batch_size=7)
    fresh.load_state_dict(state)
    rest = [b["images"].copy() for b in fresh.epoch(3)]
    assert len(rest) == len(full) - 4
    assert all(np.array_equal(x, y) for x, y in zip(rest, full[4:]))
    assert fresh.state_dict()["epoch"] == 4 and fresh.state_dict()["batches_consumed"] == 0
    # iter() continues from the position too.
    fresh.load_state_dict(state)
    assert len(list(iter(fresh))) == len(full) - 4
    with pytest.raises(ValueError, match="batch_size"):
        KuatDataset(arch, batch_size=8).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        KuatDataset(arch, batch_size=7, seed=1).load_state_dict(state)


def test_held_batches_survive_and_memory_stays_bounded():
    arch, *_ = make_archive(n=40)
    ds = KuatDataset(arch, batch_size=4, prefetch=2, num_threads=2)
    held = list(ds.epoch(0))  # holding all 10 batches must not stall the workers
    copies = [b["images"].copy() for b in held]
    for e in range(1, 4):
        for last in ds.epoch(e):
            pass
    assert all(np.array_equal(b["images"], c) for b, c in zip(held, copies))
    assert ds._loader.buffers_alive >= len(held) + 1
    del held, last  # `last` holds the final batch of epoch 3: one more buffer
    gc.collect()
    assert ds._loader.buffers_alive <= 2 + 2  # prefetch + 2 idle


def test_abandoned_iteration_leaves_no_thread():
    arch, *_ = make_archive(n=400, h=32, w=32)
    ds = KuatDataset(arch, batch_size=8, num_threads=3)
    before = thread_count()
    for e in range(5):
        for i, _ in enumerate(ds.epoch(e)):
            if i == 2:
                break
    gc.collect()
    assert thread_count() == before


def test_corrupt_sample_raises_with_its_index():
    arch, idx, codebook, labels = make_archive(n=20, k=5)  # 3 bits: values 5..7 are invalid
    packed = np.stack([kd._engine.pack_indices(row, 3) for row in idx])
    packed[13] = kd._engine.pack_indices(np.full(idx.shape[1], 6, dtype=np.uint32), 3)
    bad = MemoryArchive(codebook, packed, labels, 10, 9, 3, 2)
    ds = KuatDataset(bad, batch_size=4, shuffle=False)
    before = thread_count()
    with pytest.raises(OSError, match="sample 13 is corrupt"):
        for _ in ds.epoch(0):
            pass
    gc.collect()
    assert thread_count() == before


def test_files_lists_and_globs(tmp_path):
    for name in ("a.kuat", "b.kuat"):
        shutil.copy(GOLDEN, tmp_path / name)
    ds = KuatDataset(str(tmp_path / "*.kuat"), batch_size=2, shuffle=False)
    assert ds.num_samples == 6 and ds.paths == [str(tmp_path / "a.kuat"), str(tmp_path / "b.kuat")]
    labels = np.concatenate([b["labels"] for b in ds.epoch(0)])
    assert list(labels) == [0, 1, -1, 0, 1, -1]
    assert KuatDataset([GOLDEN, tmp_path / "a.kuat"], batch_size=4).num_samples == 6


def test_bad_arguments_name_themselves(tmp_path):
    arch, *_ = make_archive(n=10)
    other, *_ = make_archive(n=10, codebook_seed=2)
    cases = [
        (dict(path_or_paths=str(tmp_path / "missing.kuat")), "path_or_paths: .*does not exist"),
        (dict(path_or_paths=str(tmp_path)), "path_or_paths: .*directory"),
        (dict(path_or_paths=str(tmp_path / "*.kuat")), "path_or_paths: .*matches no file"),
        (dict(path_or_paths=[]), "path_or_paths: no archive"),
        (dict(path_or_paths=[arch, other]), "path_or_paths: .*different codebook"),
        (dict(path_or_paths=[GOLDEN, arch]), "path_or_paths: .*archive 1 holds"),
        (dict(path_or_paths=arch, batch_size=0), "batch_size"),
        (dict(path_or_paths=arch, batch_size=-3), "batch_size"),
        (dict(path_or_paths=arch, rank=2, world_size=2), "rank must be < world_size"),
        (dict(path_or_paths=arch, world_size=0), "world_size"),
        (dict(path_or_paths=arch, layout="NWHC"), "layout"),
        (dict(path_or_paths=arch, dtype="float16"), "dtype"),
        (dict(path_or_paths=arch, mean=[0.5]), "mean/std.*float32"),
        (dict(path_or_paths=arch, dtype="float32", std=[0.0]), "std"),
        (dict(path_or_paths=arch, random_crop_padding=-1), "random_crop_padding"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            KuatDataset(**kwargs)
    with pytest.raises(ValueError, match="epoch"):
        KuatDataset(arch).epoch(-1)
    (tmp_path / "junk.kuat").write_bytes(b"not an archive at all")
    with pytest.raises(OSError, match="junk.kuat"):
        KuatDataset(str(tmp_path / "junk.kuat"))


def test_written_archives_decode_like_the_reader_and_mixed_codebooks_fail(tmp_path):
    # Smooth images (gradients with a per-image tint): easy to quantize well with 64 codewords.
    yy, xx = np.mgrid[0:12, 0:16]
    tint = np.random.default_rng(3).integers(0, 128, (40, 1, 1, 3))
    images = (tint + 8 * yy[None, :, :, None] + 4 * xx[None, :, :, None]).clip(0, 255).astype(np.uint8)
    labels = np.arange(40, dtype=np.int32)
    kd._engine.write_archive(str(tmp_path / "a.kuat"), images[:20], labels[:20], 64)
    kd._engine.write_archive(str(tmp_path / "b.kuat"), images[20:], labels[20:], 64)
    ds = KuatDataset(str(tmp_path / "a.kuat"), batch_size=6, shuffle=False)
    got = np.concatenate([b["images"] for b in ds.epoch(0)])
    assert got.shape == (20, 12, 16, 3)
    # Vector quantization is lossy but must stay close to the source pixels.
    assert np.abs(got.astype(int) - images[:20]).mean() < 12
    with pytest.raises(ValueError, match="path_or_paths: .*different codebook.*a.kuat.*b.kuat"):
        KuatDataset([tmp_path / "a.kuat", tmp_path / "b.kuat"])

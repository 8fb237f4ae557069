"""convert_dataset on every input kind, with real data where the machine has it."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import kuat
import lowbit
from kuat_helpers import (REAL_PHOTOS, SKIMAGE_DATA, gzip_supported, needs_image_files, python2_cifar_bytes,
                          write_cifar10, write_cifar100, write_idx)

FASHION = Path("/usr/share/datasets/fashion-mnist")


def leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.mark.skipif(not FASHION.exists() or not gzip_supported(),
                    reason="Fashion-MNIST is not installed at /usr/share/datasets (or this build reads no gzip)")
def test_fashion_mnist_subset_round_trip(tmp_path):
    out = tmp_path / "fm.kuat"
    stats = kuat.convert_dataset(FASHION, out, format="idx", codebook_size=64, bits=4, limit=2000)
    assert stats["samples"] == 2000 and stats["skipped"] == 0
    assert stats["compression_ratio"] > 3.0
    assert 15.0 < stats["psnr_worst"] <= stats["psnr"] < 60.0
    a = kuat.KuatArchive(out)
    assert len(a) == 2000 and a.info()["height"] == 28 and a.info()["width"] == 28
    assert a.metadata["quality"]["psnr"] == pytest.approx(stats["psnr"])
    # Labels come from the matching labels file; the first training label of Fashion-MNIST is 9.
    assert a[0]["label"] == 9
    assert set(np.unique(a.labels)) <= set(range(10))
    # The PSNR stored is the one of the decoded images against the originals.
    import gzip
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[: 2000 * 784].reshape(2000, 28, 28, 1)
    dec = a.get_batch(np.arange(2000))["images"]
    mse = ((dec.astype(np.float64) - raw) ** 2).reshape(2000, -1).mean(axis=1)
    psnr = np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), 100.0)
    assert psnr.mean() == pytest.approx(stats["psnr"], abs=1e-6)
    assert psnr.min() == pytest.approx(stats["psnr_worst"], abs=1e-6)


def test_idx_synthetic_plain_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (50, 9, 7), dtype=np.uint8)
    labels = rng.integers(0, 10, 50).astype(np.uint8)
    if not gzip_supported():  # a build without zlib refuses gzip with the reason, reads plain files
        d = write_idx(tmp_path / "gz", imgs, labels, gz=True)
        with pytest.raises(OSError, match="built without zlib"):
            kuat.convert_dataset(d, tmp_path / "gz.kuat", codebook_size=256, bits=8)
    for gz in (True, False) if gzip_supported() else (False,):
        d = write_idx(tmp_path / f"idx{gz}", imgs, labels, gz=gz)
        stats = kuat.convert_dataset(d, tmp_path / f"i{gz}.kuat", codebook_size=256, bits=8)
        a = kuat.KuatArchive(tmp_path / f"i{gz}.kuat")
        assert a.metadata["format"] == "idx" and stats["samples"] == 50
        assert a[3]["image"].shape == (9, 7, 1)  # odd sizes: padded internally, cropped on decode
        np.testing.assert_array_equal(a.labels, labels.astype(np.int32))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10_python3_pickles(tmp_path, protocol):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=10, protocol=protocol)
    out = tmp_path / "c.kuat"
    stats = kuat.convert_dataset(folder, out, codebook_size=32)
    a = kuat.KuatArchive(out)
    assert stats["samples"] == 50 and a.metadata["format"] == "cifar"
    assert a.classes[:3] == ["airplane", "automobile", "bird"]
    with open(folder / "data_batch_1", "rb") as f:
        batch1 = pickle.load(f)
    assert [a[i]["label"] for i in range(10)] == batch1[b"labels"]
    assert a[0]["image"].shape == (32, 32, 3)
    # Channel-planar CIFAR rows become HWC: compare the decoded image with the original.
    original = batch1[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0).astype(np.float64)
    mse = ((a[0]["image"] - original) ** 2).mean()
    assert 10 * np.log10(255 ** 2 / mse) > 20
    test = kuat.convert_dataset(folder, tmp_path / "t.kuat", codebook_size=32, split="test")
    assert test["samples"] == 10


def test_cifar10_python2_cpickle_stream(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    pixels = rng.integers(0, 256, (12, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, 12)]
    (folder / "data_batch_1").write_bytes(python2_cifar_bytes(pixels, labels))
    stats = kuat.convert_dataset(folder, tmp_path / "p2.kuat", format="cifar", codebook_size=256, bits=8)
    a = kuat.KuatArchive(tmp_path / "p2.kuat")
    assert stats["samples"] == 12 and list(a.labels) == labels


def test_cifar100_layout(tmp_path):
    folder = write_cifar100(tmp_path / "cifar-100-python", n=20, protocol=4)
    kuat.convert_dataset(folder, tmp_path / "c100.kuat", codebook_size=16)
    a = kuat.KuatArchive(tmp_path / "c100.kuat")
    assert len(a) == 20 and len(a.classes) == 100 and a.classes[1] == "fine1"
    with open(folder / "train", "rb") as f:
        assert list(a.labels) == pickle.load(f)[b"fine_labels"]


def test_malicious_and_malformed_pickles_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(OSError, match="data_batch_1.*(posix.system|os.system).*not allowed"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": [1, 2, 3], b"labels": [1]}, protocol=2))
    with pytest.raises(OSError, match="no 'data' array"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat")
    (folder / "data_batch_1").write_bytes(b"\x80\x02}q\x01(U\x04da")
    with pytest.raises(OSError, match="unexpected end"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat")
    assert not (tmp_path / "x.kuat").exists() and leftovers(tmp_path) == []


def photo_folder(tmp_path: Path, broken: bool = True) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for name in REAL_PHOTOS[:4]:
        shutil.copy(SKIMAGE_DATA / name, d / name)
    if broken:
        (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        (d / "truncated.png").write_bytes((SKIMAGE_DATA / "coffee.png").read_bytes()[:5000])
        (d / "notes.txt").write_text("ignored: not an image extension")
    return d


@needs_image_files
def test_images_folder_resized_with_broken_files(tmp_path):
    d = photo_folder(tmp_path)
    stats = kuat.convert_dataset(d, tmp_path / "p.kuat", format="images", width=64, height=48, codebook_size=64)
    assert stats["samples"] == 4 and stats["skipped"] == 2
    assert any("broken.jpg" in r for r in stats["skipped_reasons"])
    assert any("truncated.png" in r for r in stats["skipped_reasons"])
    a = kuat.KuatArchive(tmp_path / "p.kuat")
    assert a[0]["image"].shape == (48, 64, 3) and a[0]["label"] == -1
    with pytest.raises(OSError, match="strict"):
        kuat.convert_dataset(d, tmp_path / "s.kuat", width=64, height=48, codebook_size=64, strict=True)
    assert not (tmp_path / "s.kuat").exists() and leftovers(tmp_path) == []


@needs_image_files
def test_native_sizes_grayscale_and_stretch(tmp_path):
    d = photo_folder(tmp_path, broken=False)
    kuat.convert_dataset(d, tmp_path / "n.kuat", codebook_size=32, channels=1)
    a = kuat.KuatArchive(tmp_path / "n.kuat")
    assert not a.fixed_shape
    from PIL import Image
    names = sorted(REAL_PHOTOS[:4])
    for i, name in enumerate(names):
        w, h = Image.open(SKIMAGE_DATA / name).size
        assert a[i]["image"].shape == (h, w, 1)
    kuat.convert_dataset(d, tmp_path / "s.kuat", codebook_size=32, width=40, height=20, resize="stretch")
    assert kuat.KuatArchive(tmp_path / "s.kuat")[0]["image"].shape == (20, 40, 3)


@needs_image_files
def test_imagenet_class_folders_and_labels(tmp_path):
    root = tmp_path / "train"
    for cls, names in (("n02_cat", REAL_PHOTOS[1:2]), ("n01_person", REAL_PHOTOS[0:1] + REAL_PHOTOS[3:4])):
        (root / cls).mkdir(parents=True)
        for n in names:
            shutil.copy(SKIMAGE_DATA / n, root / cls / n)
    stats = kuat.convert_dataset(root, tmp_path / "in.kuat", width=32, height=32, codebook_size=16)
    a = kuat.KuatArchive(tmp_path / "in.kuat")
    assert stats["format"] == "imagenet" and a.classes == ["n01_person", "n02_cat"]
    assert list(a.labels) == [0, 0, 1]


def test_codebook_reuse_and_shards(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=10, protocol=2, batches=2)
    full = kuat.convert_dataset(folder, tmp_path / "full.kuat", codebook_size=32)
    shards = [kuat.convert_dataset(folder, tmp_path / f"s{i}.kuat", codebook_size=32, shard=f"{i}/3") for i in range(3)]
    # Every shard trains the same codebook (from the same deterministic sample), so they read as one.
    assert {s["codebook_hash"] for s in shards} == {full["codebook_hash"]}
    assert sum(s["samples"] for s in shards) == full["samples"] == 20
    a_full = kuat.KuatArchive(tmp_path / "full.kuat")
    a1 = kuat.KuatArchive(tmp_path / "s1.kuat")
    np.testing.assert_array_equal(a1[2]["image"], a_full[1 + 2 * 3]["image"])
    val = kuat.convert_dataset(folder, tmp_path / "val.kuat", split="test", codebook=tmp_path / "full.kuat")
    assert val["codebook_hash"] == full["codebook_hash"] and val["training_seconds"] == 0
    np.testing.assert_array_equal(kuat.KuatArchive(tmp_path / "val.kuat").codebook, a_full.codebook)


@needs_image_files
def test_bad_inputs_and_options(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="does not exist"):
        kuat.convert_dataset(tmp_path / "missing", tmp_path / "o.kuat")
    with pytest.raises(OSError, match="empty.*no dataset found"):
        kuat.convert_dataset(tmp_path / "empty", tmp_path / "o.kuat")
    with pytest.raises(OSError, match="no .jpg"):
        kuat.convert_dataset(tmp_path / "empty", tmp_path / "o.kuat", format="images")
    d = photo_folder(tmp_path, broken=False)
    for kwargs, msg in (({"bits": 9}, "bits"), ({"codebook_size": 1}, "codebook_size"), ({"patch": 3}, "patch"),
                        ({"width": 10}, "together"), ({"shard": "3/3"}, "shard"), ({"format": "tar"}, "unknown format"),
                        ({"resize": "zoom"}, "resize")):
        with pytest.raises(ValueError, match=msg):
            kuat.convert_dataset(d, tmp_path / "o.kuat", **kwargs)
    with pytest.raises(OSError, match="output folder does not exist"):
        kuat.convert_dataset(d, tmp_path / "no" / "o.kuat")
    assert not (tmp_path / "o.kuat").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(lowbit.build_info().get("image_codecs", True), reason="image codecs are built in")
def test_image_sources_raise_without_codecs(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not decoded")
    for fmt in ("images", "auto"):
        with pytest.raises(OSError, match="LOWBIT_IMAGE_CODECS=OFF"):
            kuat.convert_dataset(d, tmp_path / "o.kuat", format=fmt)
    assert not (tmp_path / "o.kuat").exists()

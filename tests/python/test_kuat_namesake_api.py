"""Kuat-Beta's API on lowbit's Kuat: archive accessors, len = samples, exports, kuat.gpu
(GPUDecoder with the seed notebook's calls, GPUDataset), on every available torch device."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kuat  # noqa: E402
from kuat import KuatArchive, KuatDataset, KuatEpochIterator  # noqa: E402
from kuat import dataset as kd  # noqa: E402


@pytest.fixture(scope="module")
def archive_file(tmp_path_factory):
    """A fixed-size archive of 21 RGB 10x14 images (K = 64: 6-bit indices), labels i % 4, label -1 at 5."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (21, 10, 14, 3), dtype=np.uint8)
    labels = (np.arange(21) % 4).astype(np.int32)
    labels[5] = -1
    path = tmp_path_factory.mktemp("ns") / "a.kuat"
    kd._engine.write_archive(str(path), images, labels, 64)
    return str(path)


def test_version_and_exports():
    assert kuat.__version__.startswith("0.1.0")
    for name in ("KuatArchive", "KuatDataset", "KuatEpochIterator", "convert_dataset", "GPUDecoder", "GPUDataset"):
        assert hasattr(kuat, name), name
    gpu = importlib.import_module("kuat.gpu")
    assert gpu.GPUDecoder is kuat.GPUDecoder and gpu.GPUDataset is kuat.GPUDataset


def test_kuat_gpu_is_available_after_plain_import():
    # A fresh interpreter: `import kuat` alone, then the documented module as an attribute.
    import subprocess
    import sys

    code = ("import kuat, sys; assert 'kuat.gpu' not in sys.modules; "
            "print(kuat.gpu.GPUDecoder is kuat.GPUDecoder, kuat.gpu.__name__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "kuat.gpu"]


def test_archive_accessors(archive_file):
    a = KuatArchive(archive_file)
    assert a.len() == len(a) == 21
    assert a.dimensions == (14, 10) and a.patch_size == 2 and a.grid_size == (7, 5)
    image, label = a.decode(3)
    assert image.shape == (10, 14, 3) and image.dtype == np.uint8 and label == 3
    np.testing.assert_array_equal(image, a[3]["image"])
    assert a.decode(5)[1] is None and a.label(5) is None and a.label(-1) == 20 % 4
    assert a.all_labels() == [None if i == 5 else i % 4 for i in range(21)]
    batch = a.decode_batch([0, 4, -1])
    assert batch.shape == (3, 10, 14, 3)
    np.testing.assert_array_equal(batch, a.get_batch([0, 4, 20])["images"])
    cb = a.codebook_numpy()
    assert cb.shape == (64, 12) and cb.dtype == np.uint8 and cb.flags.writeable
    np.testing.assert_array_equal(cb, a.codebook.reshape(64, 12))
    idx, labels = a.get_indices_batch([2, 5])
    assert idx.shape == (2, 35) and idx.dtype == np.uint32 and labels == [2, None]
    # The indices decode to the image with the seed notebook's own numpy recipe.
    img = cb[idx[0]].reshape(5, 7, 2, 2, 3).transpose(0, 2, 1, 3, 4).reshape(10, 14, 3)
    np.testing.assert_array_equal(img, a.decode(2)[0])
    info = a.info()
    assert info["samples"] == 21 and info["width"] == 14 and info["height"] == 10 and "bits" in info
    assert info["path"] == archive_file and info["classes"] == []
    with pytest.raises(IndexError):
        a.decode(21)
    with pytest.raises(IndexError):
        a.get_indices_batch([0, 99])


def test_info_bits_is_the_converters_bits(tmp_path):
    from kuat_helpers import write_cifar10

    src = write_cifar10(tmp_path / "c", per_batch=4, batches=1)
    kuat.convert_dataset(src, tmp_path / "c.kuat", format="cifar", bits=5, codebook_size=16)
    assert KuatArchive(tmp_path / "c.kuat").info()["bits"] == 5


def test_dataset_len_counts_samples_and_epoch_is_a_kuat_epoch_iterator(archive_file):
    ds = KuatDataset(archive_file, batch_size=8)
    assert len(ds) == 21 and ds.batch_count() == 3
    dropping = KuatDataset(archive_file, batch_size=8, drop_last=True)
    assert dropping.batch_count() == 2 and len(dropping) == 21  # len: the samples, as Kuat-Beta
    assert dropping.samples_per_epoch == 16 == sum(len(b["labels"]) for b in dropping.epoch(0))
    assert KuatDataset(archive_file, batch_size=8).samples_per_epoch == 21
    assert len(KuatDataset(archive_file, batch_size=8, world_size=2, rank=1)) == 11
    it = ds.epoch(0)
    assert isinstance(it, KuatEpochIterator) and len(it) == 3 and it.epoch == 0
    assert sum(b["images"].shape[0] for b in it) == 21


def test_gpu_decoder_seed_notebook_calls(device):
    from kuat.gpu import GPUDecoder

    rng = np.random.default_rng(0)
    codebook = rng.integers(0, 256, (65536, 12), dtype=np.uint8)  # the notebook's simulated 16-bit codebook
    indices = rng.integers(0, 65536, (3, 6 * 5), dtype=np.uint16)
    decoder = GPUDecoder(codebook, device=device)
    images = decoder.decode_batch(indices, 10, 12)  # width 10, height 12: NCHW by default
    assert images.shape == (3, 3, 12, 10) and images.dtype == torch.uint8 and images.device.type == device.type
    want = codebook[indices.astype(np.int64)].reshape(3, 6, 5, 2, 2, 3).transpose(0, 1, 3, 2, 4, 5).reshape(3, 12, 10, 3)
    np.testing.assert_array_equal(images.cpu().numpy(), want.transpose(0, 3, 1, 2))
    nhwc = decoder.decode_batch(torch.from_numpy(indices.astype(np.int64)), 10, 12, layout="NHWC")
    np.testing.assert_array_equal(nhwc.cpu().numpy(), want)
    floats = decoder.decode_float(indices, 10, 12)
    assert floats.dtype == torch.float32
    assert torch.equal(floats.cpu(), torch.from_numpy(want.transpose(0, 3, 1, 2).copy()).float() / 255.0)
    with pytest.raises(ValueError, match=r"indices must be \(B, 30\)"):
        decoder.decode_batch(indices[:, :29], 10, 12)
    with pytest.raises(ValueError, match="width and height"):
        decoder.decode_batch(indices)


def test_gpu_decoder_from_archive_and_bad_inputs(archive_file, device):
    from kuat.gpu import GPUDecoder

    a = KuatArchive(archive_file)
    decoder = GPUDecoder(a, device=device, dtype=torch.uint8)
    assert (decoder.width, decoder.height, decoder.grid_w, decoder.grid_h, decoder.patches_per_image) == (14, 10, 7, 5, 35)
    idx, _ = a.get_indices_batch([0, 1])
    images = decoder.decode(idx, layout="NHWC")
    np.testing.assert_array_equal(images.cpu().numpy(), a.decode_batch([0, 1]))
    f = GPUDecoder(archive_file, device=device).decode(idx, normalize=True)  # ImageNet normalisation
    want = (a.decode_batch([0, 1]).astype(np.float64) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(f.cpu().numpy(), want.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6)
    bad = idx.copy()
    bad[1, 8] = 64
    with pytest.raises(ValueError, match=r"sample 1: patch \(1, 1\) has index 64 >= codebook size 64"):
        decoder.decode(bad)
    bad = bad.astype(np.int64)
    bad[1, 8] = -3
    with pytest.raises(ValueError, match=r"sample 1: patch \(1, 1\) has index -3, which is negative") as neg:
        decoder.decode(bad)
    assert ">= codebook size" not in str(neg.value)
    with pytest.raises(ValueError, match="is on device meta"):
        decoder.decode(torch.zeros((1, 35), dtype=torch.int64, device="meta"))
    with pytest.raises(ValueError, match="integers"):
        decoder.decode(np.zeros((1, 35), dtype=np.float32))


def test_gpu_dataset_indexing_and_epochs(archive_file, device):
    from kuat.gpu import GPUDataset

    a = KuatArchive(archive_file)
    ds = GPUDataset(archive_file, device=device, normalize=True, batch_size=8)
    assert len(ds) == 21 and ds.batch_count() == 3
    images, labels = ds[[0, 5, 10]]
    assert images.shape == (3, 3, 10, 14) and images.dtype == torch.float32 and images.device.type == device.type
    assert labels.dtype == torch.int64 and labels.tolist() == [0, -1, 2]
    want = KuatDataset(archive_file, batch_size=21, shuffle=False, layout="NCHW", dtype="float32",
                       mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    full = next(iter(want.epoch(0)))["images"]
    assert torch.equal(images.cpu(), torch.from_numpy(full[[0, 5, 10]]))
    sliced, _ = ds[0:4]
    assert torch.equal(sliced.cpu(), torch.from_numpy(full[:4]))
    one, label = ds[-1]
    assert one.shape == (1, 3, 10, 14) and label.tolist() == [0]
    raw = GPUDataset(a, device=device, normalize=False, dtype=torch.uint8, layout="NHWC", preload=False)
    np.testing.assert_array_equal(raw[[3, 4]][0].cpu().numpy(), a.decode_batch([3, 4]))
    order = KuatDataset(archive_file, batch_size=8, seed=42).sample_order(1)
    seen = torch.cat([lab.cpu() for _, lab in ds.epoch(1)])
    assert seen.tolist() == [-1 if s == 5 else int(s) % 4 for s in order]
    with pytest.raises(IndexError, match="out of range"):
        ds[[0, 21]]
    mask = torch.zeros(21, dtype=torch.bool)
    mask[[0, 5, 10]] = True  # a boolean mask selects, as in numpy and torch (it was read as rows 0 and 1)
    assert torch.equal(ds[mask][0], images) and torch.equal(ds[mask.numpy()][0], images)
    assert torch.equal(ds[list(mask.tolist())][0], images)
    backwards, _ = ds[::-2]
    assert torch.equal(backwards.cpu(), torch.from_numpy(full[::-2].copy()))
    assert torch.equal(ds[np.array(5)][0], ds[5][0]) and torch.equal(ds[np.int64(5)][0], ds[5][0])
    assert ds[[]][0].shape[0] == 0
    for bad in (np.array([1.9]), torch.tensor([1.0]), [0.5], True, "3"):
        with pytest.raises(TypeError, match="integer"):
            ds[bad]
    with pytest.raises(IndexError, match=r"boolean mask of shape \(3,\) for 21 samples"):
        ds[torch.ones(3, dtype=torch.bool)]
    idx, _ = a.get_indices_batch([0, 5, 10])
    assert torch.equal(ds.decoder.decode(idx, normalize=True), images)  # Kuat-Beta's dataset.decoder


def test_gpu_decoder_codebook_and_device_attributes_read_as_in_kuat_beta(archive_file, device):
    # Kuat-Beta code gathers from decoder.codebook itself (as its GPUDataset did) and compares
    # decoder.device with the string it passed: both must mean what they meant there.
    from kuat.gpu import GPUDataset, GPUDecoder

    a = KuatArchive(archive_file)
    name = str(device)
    decoder = GPUDecoder(a, device=name)
    assert decoder.device == name and isinstance(decoder.device, str)
    cb = decoder.codebook
    assert cb.shape == (64, 12) and cb.dtype == torch.float32 and cb.device.type == device.type
    assert torch.equal(cb.cpu(), torch.from_numpy(a.codebook_numpy()).float() / 255.0)
    assert decoder.codebook is cb  # made once
    idx, _ = a.get_indices_batch([0, 1, 2])
    gathered = decoder.codebook[torch.from_numpy(idx.astype(np.int64)).to(device)]
    images = gathered.view(3, decoder.grid_h, decoder.grid_w, 2, 2, 3).permute(0, 1, 3, 2, 4, 5).reshape(3, 10, 14, 3)
    assert torch.equal(images.permute(0, 3, 1, 2), decoder.decode(idx))
    raw = GPUDecoder(a, device=device, dtype=torch.uint8).codebook
    assert raw.dtype == torch.uint8 and torch.equal(raw.cpu(), torch.from_numpy(a.codebook_numpy()))
    half = GPUDecoder(a, device=device, dtype=torch.float16).codebook
    assert half.dtype == torch.float16 and torch.equal(half.cpu(), torch.from_numpy(a.codebook_numpy()).half() / 255.0)
    ds = GPUDataset(a, device=name, normalize=False)
    assert ds.device == name and ds.decoder.device == name
    assert ds.mean == [0.485, 0.456, 0.406] and ds.std == [0.229, 0.224, 0.225]  # kept, as Kuat-Beta
    x, _ = ds[[0, 1, 2]]
    assert torch.equal(x, decoder.decode(idx))  # normalize=False still means x / 255 only
    assert GPUDataset(a, device=device, normalize=False, mean=[0.5] * 3).mean == [0.5] * 3


def test_prototype_notebook_decode_batch_float_and_class_name(device):
    # notebooks/gpu_decode_prototype.py: decode_batch_float(indices, w, h, layout="NCHW",
    # normalize=True) where normalize means x / 255 (not ImageNet), and the class name both notebooks use.
    from kuat.gpu import GPUCodebookDecoder, GPUDecoder

    assert GPUCodebookDecoder is GPUDecoder
    rng = np.random.default_rng(1)
    codebook = rng.integers(0, 256, (300, 12), dtype=np.uint8)
    indices = rng.integers(0, 300, (2, 4 * 3), dtype=np.uint16)
    decoder = GPUCodebookDecoder(codebook, device=device)
    bytes_nchw = decoder.decode_batch(indices, 8, 6, layout="NCHW")
    f = decoder.decode_batch_float(indices, 8, 6)
    assert f.shape == (2, 3, 6, 8) and f.dtype == torch.float32
    assert torch.equal(f, bytes_nchw.float() / 255.0)
    unscaled = decoder.decode_batch_float(indices, 8, 6, normalize=False)
    assert torch.equal(unscaled, bytes_nchw.float()) and float(unscaled.max()) > 1.0
    nhwc = decoder.decode_batch_float(indices, 8, 6, layout="NHWC")
    assert torch.equal(nhwc, decoder.decode_batch(indices, 8, 6, layout="NHWC").float() / 255.0)
    with pytest.raises(ValueError, match=r"indices must be \(B, 12\)"):
        decoder.decode_batch_float(indices[:, :5], 8, 6)


def test_writes_into_decoder_codebook_are_used_or_refused_never_ignored(archive_file, device):
    # Kuat-Beta decodes from decoder.codebook, so code that edits it in place expects the edit to
    # show: the uint8 codebook is the decoder's bytes (decodes follow the edit); a float codebook
    # is a copy, and decoding after an edit is an error rather than the old values.
    from kuat.gpu import GPUDecoder

    a = KuatArchive(archive_file)
    idx, _ = a.get_indices_batch([0, 1])
    raw = GPUDecoder(a, device=device, dtype=torch.uint8)
    before = raw.decode_batch(idx)
    raw.codebook[:, 0] = 255 - raw.codebook[:, 0]
    after = raw.decode_batch(idx)
    assert torch.equal(after[:, 0, 0::2, 0::2], 255 - before[:, 0, 0::2, 0::2])  # channel 0 of patch pixel (0, 0)
    assert torch.equal(after[:, 1:], before[:, 1:])
    floats = GPUDecoder(a, device=device)
    floats.decode(idx)
    floats.codebook.mul_(0.5)
    with pytest.raises(ValueError, match="decoder.codebook was written in place"):
        floats.decode(idx)

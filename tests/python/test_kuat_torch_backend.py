"""Kuat's pure-PyTorch decode and KuatDataset(device=...): bit-identical to the C++ loader on CPU
tensors, the same order/ranks/resume, the same errors, and no native or numpy call in the decode."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowbit  # noqa: E402
from kuat import _torch_decode as td  # noqa: E402
from kuat._augment import augmentation  # noqa: E402
from kuat.dataset import KuatDataset, MemoryArchive  # noqa: E402
from kuat import dataset as kd  # noqa: E402

from test_kuat_loader import make_archive  # noqa: E402

FORMATS = [
    dict(),
    dict(layout="NCHW"),
    dict(dtype="float32"),
    dict(dtype="float32", layout="NCHW", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    dict(dtype="float32", mean=0.5, std=0.25, random_crop_padding=3, random_flip=True),
    dict(layout="NCHW", random_crop_padding=2, random_flip=True),
    dict(random_flip=True),
    dict(layout="NCHW", dtype="float32", random_crop_padding=40),  # shifts past the whole image
]


def numpy_epoch(arch, epoch, **kwargs):
    return [(b["images"].copy(), b["labels"].copy()) for b in KuatDataset(arch, **kwargs).epoch(epoch)]


def assert_same_batches(got, want):
    assert len(got) == len(want)
    for (images, labels), (w_images, w_labels) in zip(got, want):
        assert isinstance(images, torch.Tensor) and images.device.type == "cpu"
        assert images.dtype == {np.uint8: torch.uint8, np.float32: torch.float32}[w_images.dtype.type]
        assert labels.dtype == torch.int32
        # Bit for bit (float32 compared as raw bits, so -0.0 vs 0.0 or a last-ulp change would fail).
        assert torch.equal(images.contiguous().view(torch.uint8), torch.from_numpy(w_images).view(torch.uint8))
        assert torch.equal(labels, torch.from_numpy(w_labels))


SHAPES = [(11, 12, 3, 2), (7, 9, 1, 2), (10, 13, 3, 4), (16, 16, 3, 2)]
CASES = [(fmt, shape) for fmt in FORMATS for shape in SHAPES
         if not (isinstance(fmt.get("mean"), list) and shape[2] != 3)]  # per-channel mean needs 3 channels


@pytest.mark.parametrize("fmt,shape", CASES,
                         ids=[(",".join(f"{k}={v}" for k, v in f.items()) or "default") + f"-{s}" for f, s in CASES])
def test_device_dataset_equals_the_cpp_loader_bit_for_bit(fmt, shape, backend_name):
    h, w, c, p = shape
    arch, *_ = make_archive(n=23, h=h, w=w, c=c, p=p, k=300)
    want = numpy_epoch(arch, 3, batch_size=5, **fmt)
    ds = KuatDataset(arch, batch_size=5, device="cpu", **fmt)
    got = [(b["images"], b["labels"]) for b in ds.epoch(3)]
    assert_same_batches(got, want)


@pytest.mark.parametrize("k", [2, 3, 16, 17, 300, 512, 4097, 65536])
def test_every_index_width_power_of_two_or_not(k):
    arch, *_ = make_archive(n=9, h=9, w=10, k=k)
    want = numpy_epoch(arch, 0, batch_size=4, layout="NCHW")
    with lowbit.backend("torch"):
        got = [(b["images"], b["labels"]) for b in KuatDataset(arch, batch_size=4, layout="NCHW", device="cpu").epoch(0)]
    assert_same_batches(got, want)


def test_unpack_indices_matches_the_native_packer():
    rng = np.random.default_rng(3)
    for bits in range(1, 17):
        for count in (1, 7, 8, 9, 33, 100):
            values = rng.integers(0, 1 << bits, (3, count)).astype(np.uint32)
            packed = np.stack([kd._engine.pack_indices(row, bits) for row in values])
            got = td.unpack_indices(torch.from_numpy(packed), count, bits)
            assert got.dtype == torch.int32
            np.testing.assert_array_equal(got.numpy(), values)


def test_augmentation_port_equals_the_native_draws():
    arch, *_ = make_archive(n=40)
    for seed in (0, 42, 2**63 + 12345, 2**64 - 1):
        for crop, flip in ((3, True), (0, True), (5, False), (1, True)):
            ds = KuatDataset(arch, batch_size=8, seed=seed, random_crop_padding=crop, random_flip=flip)
            for epoch in (0, 1, 7, 123456789):
                samples = np.arange(40)
                sy, sx, fl = augmentation(seed, epoch, samples, crop, flip)
                want = [ds._loader.transform(epoch, int(s)) for s in samples]
                assert [(int(a), int(b), bool(f)) for a, b, f in zip(sy, sx, fl)] == want


def test_order_ranks_drop_last_and_resume_are_the_cpp_loaders(backend_name):
    arch, *_ = make_archive(n=53)
    for world in (1, 3):
        for rank in range(world):
            for drop_last in (False, True):
                kw = dict(batch_size=4, rank=rank, world_size=world, drop_last=drop_last, random_flip=True)
                ds = KuatDataset(arch, device="cpu", **kw)
                assert len(ds) == KuatDataset(arch, **kw).samples_per_rank
                assert_same_batches([(b["images"], b["labels"]) for b in ds.epoch(2)], numpy_epoch(arch, 2, **kw))
    # Resume mid-epoch from a state_dict: the rest of the epoch, then the next one.
    ds = KuatDataset(arch, batch_size=4, device="cpu")
    it = ds.epoch(1)
    for _ in range(5):
        next(it)
    state = ds.state_dict()
    assert state["epoch"] == 1 and state["batches_consumed"] == 5
    fresh = KuatDataset(arch, batch_size=4, device="cpu")
    fresh.load_state_dict(state)
    rest = [(b["images"], b["labels"]) for b in fresh.epoch(1)]
    assert_same_batches(rest, numpy_epoch(arch, 1, batch_size=4)[5:])


def test_multiple_archives_on_the_device_path():
    a, idx, codebook, labels = make_archive(n=11)
    b = MemoryArchive(codebook, np.stack([kd._engine.pack_indices(r, 9) for r in idx[:6]]), labels[:6] + 100, 10, 9, 3)
    want = numpy_epoch([a, b], 0, batch_size=4, layout="NCHW")
    with lowbit.backend("torch"):
        got = [(x["images"], x["labels"]) for x in KuatDataset([a, b], batch_size=4, layout="NCHW", device="cpu").epoch(0)]
    assert_same_batches(got, want)


def corrupt_archive():
    arch, idx, codebook, labels = make_archive(n=20, k=5)  # 3 bits: values 5..7 are invalid
    packed = np.stack([kd._engine.pack_indices(row, 3) for row in idx])
    row = idx[13].copy()
    row[4] = 6  # patch (0, 4) of a 5x5 grid
    packed[13] = kd._engine.pack_indices(row, 3)
    return MemoryArchive(codebook, packed, labels, 10, 9, 3, 2)


def test_corrupt_sample_gives_the_cpp_error_on_the_device_path():
    bad = corrupt_archive()
    with pytest.raises(OSError) as native:
        for _ in KuatDataset(bad, batch_size=4, shuffle=False).epoch(0):
            pass
    with lowbit.backend("torch"):
        with pytest.raises(OSError) as torch_path:
            for _ in KuatDataset(bad, batch_size=4, shuffle=False, device="cpu").epoch(0):
                pass
    assert str(native.value) == str(torch_path.value)
    assert "sample 13 is corrupt: patch (0, 4) has index 6 >= codebook size 5" in str(torch_path.value)


def test_bad_device_is_a_value_error():
    arch, *_ = make_archive(n=5)
    with pytest.raises(ValueError, match="device"):
        KuatDataset(arch, device="no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            KuatDataset(arch, device="cuda")


def test_float_table_is_the_cpp_formula_evaluated_in_double():
    cb = torch.arange(256, dtype=torch.uint8).repeat(3, 1).t().reshape(256, 1, 1, 3).expand(256, 2, 2, 3).contiguous()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    table, pad = td.make_table(cb, "float32", mean, std)
    m = np.float32(mean).astype(np.float64)
    s = np.float32(std).astype(np.float64)
    want = ((np.arange(256)[:, None] / 255.0 - m) / s).astype(np.float32)
    assert np.array_equal(table[:, 0, 0, :].numpy().view(np.uint32), want.view(np.uint32))
    assert np.array_equal(pad.numpy(), want[0])


@pytest.fixture
def decode_inputs():
    """Inputs and expected outputs of the torch decode, made before the native/numpy ban starts."""
    arch, idx, codebook, _ = make_archive(n=6, h=11, w=12, k=300)
    packed = torch.from_numpy(np.stack([kd._engine.pack_indices(r, 9) for r in idx]))
    cb = torch.from_numpy(codebook.reshape(300, 2, 2, 3).copy())
    kw = dict(batch_size=6, shuffle=False, layout="NCHW", dtype="float32", mean=[0.5, 0.4, 0.3], std=[0.2, 0.3, 0.4],
              random_crop_padding=2, random_flip=True)
    want = torch.from_numpy(numpy_epoch(arch, 4, **kw)[0][0])
    sy, sx, fl = (torch.from_numpy(a) for a in augmentation(42, 4, np.arange(6), 2, True))
    return packed, cb, want, (sy, sx, fl)


def test_torch_decode_never_touches_native_or_numpy(decode_inputs, no_native_no_numpy):
    from kuat.gpu import GPUDecoder

    packed, cb, want, (sy, sx, fl) = decode_inputs
    table, pad = td.make_table(cb, "float32", [0.5, 0.4, 0.3], [0.2, 0.3, 0.4])
    idx = td.unpack_indices(packed, 36, 9)
    assert td.first_bad_index(idx, 300) is None
    got = td.decode_packed(packed, table, pad, 11, 12, 9, "NCHW", sy, sx, fl)
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    decoder = GPUDecoder(cb, device="cpu")
    plain = decoder.decode_batch(idx, 12, 11, layout="NHWC")
    assert torch.equal(plain, td.decode_indices(idx, cb, torch.zeros(3, dtype=torch.uint8), 11, 12))
    with pytest.raises(ValueError, match="sample 1: patch"):
        decoder.decode_batch(torch.cat([idx[:1], torch.full_like(idx[:1], 300)]), 12, 11)


@pytest.mark.parametrize("fmt", [FORMATS[1], FORMATS[4], FORMATS[5]], ids=["nchw", "float-crop-flip", "nchw-crop-flip"])
def test_every_device_gives_the_cpu_bytes(fmt, device):
    # Every decode step is a copy of table values made on the CPU, so every device must agree exactly.
    arch, *_ = make_archive(n=13, h=11, w=12, k=300)
    want = numpy_epoch(arch, 1, batch_size=4, **fmt)
    ds = KuatDataset(arch, batch_size=4, device=device, **fmt)
    got = [(b["images"], b["labels"]) for b in ds.epoch(1)]
    assert all(images.device.type == device.type and labels.device.type == device.type for images, labels in got)
    assert_same_batches([(i.cpu(), l.cpu()) for i, l in got], want)

"""Builders of small test inputs for the Kuat tests (CIFAR pickles, IDX files, image folders)."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import pytest


def cifar_batch(n: int, seed: int, hundred: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    # Smooth images (gradients + noise) so a small codebook has something to learn.
    base = np.linspace(0, 255, 32, dtype=np.float64)
    imgs = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            img = np.add.outer(base * rng.random(), base * rng.random()) / 2 + rng.normal(0, 8, (32, 32))
            imgs[i, c] = np.clip(img, 0, 255).astype(np.uint8)
    batch = {b"batch_label": b"testing batch 1", b"data": imgs.reshape(n, 3072),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    labels = [int(v) for v in rng.integers(0, 100 if hundred else 10, n)]
    if hundred:
        batch[b"fine_labels"] = labels
        batch[b"coarse_labels"] = [v // 5 for v in labels]
    else:
        batch[b"labels"] = labels
    return batch


def write_cifar10(folder: Path, per_batch: int = 20, protocol: int = 2, batches: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(1, batches + 1):
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump(cifar_batch(per_batch, b), f, protocol=protocol)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(cifar_batch(per_batch, 99), f, protocol=protocol)
    meta = {b"label_names": [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                    "horse", "ship", "truck"]], b"num_cases_per_batch": per_batch}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return folder


def write_cifar100(folder: Path, n: int = 30, protocol: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in (("train", 1), ("test", 2)):
        with open(folder / name, "wb") as f:
            pickle.dump(cifar_batch(n, seed, hundred=True), f, protocol=protocol)
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return folder


def python2_cifar_bytes(pixels: np.ndarray, labels: list) -> bytes:
    """A CIFAR batch as Python 2's cPickle (protocol 2) writes it: BINSTRING keys and pixel data,
    numpy.core.multiarray._reconstruct + BUILD, labels as BININT1 in APPENDS."""
    n = pixels.shape[0]
    data = pixels.astype(np.uint8).tobytes()
    out = b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05("
    out += b"K\x01" + b"M" + struct.pack("<H", n) + b"M\x00\x0c\x86"
    out += b"cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<I", len(data)) + data + b"tbU\x06labels]q\x08("
    out += b"".join(b"K" + bytes([v]) for v in labels)
    out += b"eU\x0bbatch_labelU\x0ftesting batch 1u."
    return out


def gzip_supported() -> bool:
    """Whether this build reads gzip-compressed IDX files (zlib was found when it was built)."""
    import lowbit

    return bool(lowbit.build_info().get("gzip", True))


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "train",
              gz: Optional[bool] = None) -> Path:
    """IDX files, gzip-compressed by default where the build reads gzip (``gz=None``)."""
    if gz is None:
        gz = gzip_supported()
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    img_bytes = struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes()
    lab_bytes = struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(img_bytes)
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(lab_bytes)
    return folder


def _skimage_data() -> Path:
    """scikit-image's sample photos: Debian's package, else wherever python finds scikit-image."""
    debian = Path("/usr/lib/python3/dist-packages/skimage/data")
    if debian.exists():
        return debian
    spec = importlib.util.find_spec("skimage")
    return Path(spec.origin).parent / "data" if spec is not None and spec.origin else debian


SKIMAGE_DATA = _skimage_data()
REAL_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "motorcycle_left.png", "hubble_deep_field.jpg"]


def _image_files_skip_reason() -> str:
    import lowbit

    if not lowbit.build_info().get("image_codecs", True):
        return "lowbit built with LOWBIT_IMAGE_CODECS=OFF (no libjpeg/libpng/libwebp): image files cannot be read or written"
    missing = [n for n in REAL_PHOTOS if not (SKIMAGE_DATA / n).exists()]
    if missing:
        return f"scikit-image's sample photos are not installed ({', '.join(missing)} missing in {SKIMAGE_DATA})"
    return ""


def _codecs_skip_reason() -> str:
    import lowbit

    if not lowbit.build_info().get("image_codecs", True):
        return "lowbit built with LOWBIT_IMAGE_CODECS=OFF (no libjpeg/libpng/libwebp): image files cannot be read or written"
    return ""


# Tests that decode or write image files (JPEG/PNG/WebP) they make themselves: they need the codecs.
needs_image_codecs = pytest.mark.skipif(bool(_codecs_skip_reason()), reason=_codecs_skip_reason() or "-")

# Tests that read or write image files (JPEG/PNG/WebP): they need the codecs and the sample photos.
needs_image_files = pytest.mark.skipif(bool(_image_files_skip_reason()), reason=_image_files_skip_reason() or "-")

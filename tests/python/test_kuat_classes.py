"""Class names given by the user (--classes / classes=): stored for any source, checked against the labels."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import kuat
from kuat_helpers import REAL_PHOTOS, SKIMAGE_DATA, needs_image_files, write_idx

FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx_folder(tmp_path, labels):
    rng = np.random.default_rng(3)
    return write_idx(tmp_path / "idx", rng.integers(0, 256, (len(labels), 8, 8), dtype=np.uint8), np.asarray(labels))


def test_idx_classes_from_a_list_and_from_a_file(tmp_path):
    d = idx_folder(tmp_path, np.arange(30) % 10)
    kuat.convert_dataset(d, tmp_path / "plain.kuat", codebook_size=16)
    assert kuat.KuatArchive(tmp_path / "plain.kuat").classes == []  # IDX files name no classes
    kuat.convert_dataset(d, tmp_path / "list.kuat", codebook_size=16, classes=FASHION_NAMES)
    a = kuat.KuatArchive(tmp_path / "list.kuat")
    assert a.classes == FASHION_NAMES and a.metadata["classes"] == FASHION_NAMES
    names = tmp_path / "names.txt"
    names.write_text("\r\n".join(FASHION_NAMES) + "\r\n\n")  # CRLF and trailing blank lines are fine
    kuat.convert_dataset(d, tmp_path / "file.kuat", codebook_size=16, classes=names)
    assert kuat.KuatArchive(tmp_path / "file.kuat").classes == FASHION_NAMES


def test_class_count_must_match_the_labels(tmp_path):
    d = idx_folder(tmp_path, np.arange(30) % 10)
    for wrong in (FASHION_NAMES[:9], FASHION_NAMES + ["extra"]):
        with pytest.raises(ValueError, match=rf"lists {len(wrong)} class names but the labels run from 0 to 9 \(10 classes\)"):
            kuat.convert_dataset(d, tmp_path / "bad.kuat", codebook_size=16, classes=wrong)
    assert not (tmp_path / "bad.kuat").exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(ValueError, match="non-empty list of str"):
        kuat.convert_dataset(d, tmp_path / "bad.kuat", codebook_size=16, classes=[1, 2])
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\n")
    with pytest.raises(OSError, match=r"blank.txt.*line 2 is blank"):
        kuat.convert_dataset(d, tmp_path / "bad.kuat", codebook_size=16, classes=blank)
    with pytest.raises(OSError, match="nope.txt"):
        kuat.convert_dataset(d, tmp_path / "bad.kuat", codebook_size=16, classes=tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(OSError, match="empty"):
        kuat.convert_dataset(d, tmp_path / "bad.kuat", codebook_size=16, classes=empty)


@needs_image_files
def test_classes_on_sources_with_their_own_names_or_no_labels(tmp_path):
    root = tmp_path / "train"
    for cls, name in (("n01", REAL_PHOTOS[0]), ("n02", REAL_PHOTOS[1])):
        (root / cls).mkdir(parents=True)
        shutil.copy(SKIMAGE_DATA / name, root / cls / name)
    kuat.convert_dataset(root, tmp_path / "in.kuat", width=16, height=16, codebook_size=8, classes=["person", "cat"])
    assert kuat.KuatArchive(tmp_path / "in.kuat").classes == ["person", "cat"]
    with pytest.raises(ValueError, match="lists 3 class names but the imagenet source has 2 classes"):
        kuat.convert_dataset(root, tmp_path / "x.kuat", width=16, height=16, codebook_size=8, classes=["a", "b", "c"])
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(SKIMAGE_DATA / REAL_PHOTOS[0], flat / REAL_PHOTOS[0])
    with pytest.raises(ValueError, match="source has no labels"):
        kuat.convert_dataset(flat, tmp_path / "x.kuat", width=16, height=16, codebook_size=8, classes=["a"])


def test_cli_classes_flag(kuat_cli, tmp_path):
    d = idx_folder(tmp_path, np.arange(12) % 3)
    names = tmp_path / "names.txt"
    names.write_text("zero\none\ntwo\n")
    out = tmp_path / "c.kuat"
    subprocess.run([kuat_cli, "convert", d, out, "--codebook-size", "8", "--classes", names, "-q"], check=True)
    assert kuat.KuatArchive(out).classes == ["zero", "one", "two"]
    names.write_text("zero\none\n")
    p = subprocess.run([kuat_cli, "convert", d, tmp_path / "b.kuat", "--classes", names, "-q"], capture_output=True, text=True)
    assert p.returncode != 0 and "names.txt' lists 2 class names but the labels run from 0 to 2" in p.stderr
    assert not (tmp_path / "b.kuat").exists()

"""KuatArchive on the golden files and on corrupted copies."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import kuat

GOLDEN = "tests/data/kuat/golden_v1_fixed.kuat"
GOLDEN_VARIABLE = "tests/data/kuat/golden_v1_variable.kuat"


def test_golden_fixed_pixels_and_labels(repo_root):
    a = kuat.KuatArchive(repo_root / GOLDEN)
    assert len(a) == 3
    assert a.classes == ["zero", "one"]
    assert a.codebook.shape == (4, 2, 2, 1)
    # Codeword k holds 16k .. 16k+3 in (py, px) order; sample 0 uses indices 0 1 2 / 3 0 1.
    expected = np.array([[0, 1, 16, 17, 32], [2, 3, 18, 19, 34], [48, 49, 0, 1, 16]], dtype=np.uint8)[..., None]
    s = a[0]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (3, 5, 1)
    np.testing.assert_array_equal(s["image"], expected)
    assert [a[i]["label"] for i in range(3)] == [0, 1, -1]
    assert a[-3]["label"] == 0
    batch = a.get_batch([0, 2])
    assert batch["images"].shape == (2, 3, 5, 1)
    np.testing.assert_array_equal(batch["images"][0], expected)
    np.testing.assert_array_equal(batch["labels"], np.array([0, -1], dtype=np.int32))
    info = a.info()
    assert info["samples"] == 3 and info["height"] == 3 and info["width"] == 5 and info["codebook_size"] == 4
    a.verify()


def test_golden_variable_sizes(repo_root):
    a = kuat.KuatArchive(repo_root / GOLDEN_VARIABLE)
    assert not a.fixed_shape
    assert a[0]["image"].shape == (2, 2, 3)
    assert a[1]["image"].shape == (3, 5, 3)
    assert a.shape(1) == (3, 5, 3)
    b = a.get_batch([1, 0])
    assert [im.shape for im in b["images"]] == [(3, 5, 3), (2, 2, 3)]
    assert a.info()["height"] is None


def test_index_errors(repo_root):
    a = kuat.KuatArchive(repo_root / GOLDEN)
    with pytest.raises(IndexError):
        a[3]
    with pytest.raises(IndexError, match="sample index 7 out of range for 3 samples"):
        a.get_batch([0, 7])  # as a[7] and decode_batch: IndexError, naming the index given
    with pytest.raises(IndexError, match="sample index -4 out of range for 3 samples"):
        a.get_batch([-4])
    assert a.get_batch([-1])["labels"].tolist() == a.get_batch([2])["labels"].tolist()
    for bad in ([1.7], ["0"]):  # never truncated to an int
        with pytest.raises(TypeError, match="sample indices must be integers"):
            a.get_batch(bad)
        with pytest.raises(TypeError, match="sample indices must be integers"):
            a.decode_batch(bad)
    # bools are a mask (as numpy, torch and GPUDataset read them), never row 1: of another length,
    # IndexError; of the archive's length, the rows it selects
    with pytest.raises(IndexError, match=r"boolean mask of shape \(1,\) for 3 samples"):
        a.get_batch([True])
    assert a.get_batch([True, False, True])["labels"].tolist() == a.get_batch([0, 2])["labels"].tolist()
    with pytest.raises(TypeError, match="sample index must be an int, got bool"):
        a[True]


def test_missing_truncated_and_flipped_files(repo_root, tmp_path):
    with pytest.raises(OSError, match="nope.kuat"):
        kuat.KuatArchive(tmp_path / "nope.kuat")
    data = (repo_root / GOLDEN).read_bytes()
    cut = tmp_path / "cut.kuat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="cut.kuat.*truncated"):
        kuat.KuatArchive(cut)
    # A flipped byte in the index section passes the O(1) open but verify() finds it.
    flipped = tmp_path / "flip.kuat"
    raw = bytearray(data)
    raw[4096] ^= 0x01
    flipped.write_bytes(bytes(raw))
    a = kuat.KuatArchive(flipped)
    with pytest.raises(OSError, match="indices section checksum"):
        a.verify()
    # A flipped byte in padding is found too.
    raw = bytearray(data)
    raw[-1] ^= 0x80
    flipped.write_bytes(bytes(raw))
    with pytest.raises(OSError, match="padding"):
        kuat.KuatArchive(flipped).verify()


_NO_TORCH = """
import sys
sys.modules["torch"] = None  # as if torch were not installed: find_spec gives None, import fails
import kuat
assert sys.modules["torch"] is None, "import kuat imported torch"
assert not hasattr(kuat, "gpu")
try:
    kuat.gpu
except AttributeError as e:
    assert "kuat.gpu needs PyTorch" in str(e), e
else:
    raise AssertionError("kuat.gpu without torch")
assert "GPUDecoder" not in kuat.__all__
print("ok")
"""


def test_import_kuat_without_torch_stays_torch_free():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr

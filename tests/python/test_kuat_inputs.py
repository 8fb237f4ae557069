"""Inputs people really have: decompression-bomb headers and memory limits, hidden files and
symbolic-link loops in folders, CIFAR binary batches, IDX images without labels."""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kuat
from kuat_helpers import cifar_batch, needs_image_codecs, write_idx


def run(cli, *args, expect=0, limit_bytes=None):
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    p = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120,
                       preexec_fn=cap if limit_bytes else None)
    assert expect is None or p.returncode == expect, f"rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


def leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def jpeg_claiming(side_w: int, side_h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "JPEG", quality=90)
    b = bytearray(buf.getvalue())
    sof = b.find(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, side_h, side_w)
    return bytes(b)


def bomb_folder(tmp_path: Path, w: int, h: int) -> Path:
    d = tmp_path / f"bomb{w}x{h}"
    d.mkdir()
    (d / "bomb.jpg").write_bytes(jpeg_claiming(w, h))
    Image.new("RGB", (16, 16), (1, 2, 3)).save(d / "ok.png")
    return d


# --- Rule 2: resource limits ---

@needs_image_codecs
@pytest.mark.parametrize("side", [15000, 60000])
def test_header_bomb_is_skipped_by_the_pixel_limit(kuat_cli, tmp_path, side):
    d = bomb_folder(tmp_path, side, side)
    p = run(kuat_cli, "convert", d, tmp_path / "x.kuat", "-f", "images", "--threads", "1", "--codebook-size", "16",
            limit_bytes=3 << 30)
    assert "bomb.jpg" in p.stderr and "over the limit of 178956970" in p.stderr
    # The summary calls an image over the limit refused, not broken.
    assert "refused 1 input(s) over --max-pixels" in p.stderr and "broken input" not in p.stderr
    assert len(kuat.KuatArchive(tmp_path / "x.kuat")) == 1
    p = run(kuat_cli, "convert", d, tmp_path / "s.kuat", "-f", "images", "--strict", "--codebook-size", "16", expect=1)
    assert "bomb.jpg" in p.stderr and "over the limit" in p.stderr
    assert not (tmp_path / "s.kuat").exists() and leftovers(tmp_path) == []


def solid_png(path: Path, side: int) -> None:
    """A side x side RGB PNG of one colour, written row by row (a few hundred KB)."""
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    row = b"\0" + bytes([10, 20, 30]) * side
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@needs_image_codecs
def test_memory_running_out_after_decoding_is_that_images_error(kuat_cli, tmp_path):
    # Kind 2: an allocation failure while a decoded image's patches were sampled or encoded ended
    # the whole run with "kuat convert: error: std::bad_alloc" (no file name): a valid 4000 x 4000
    # PNG under a 100-110 MB address-space limit. Every limit now converts the other image, and
    # names the big one when it cannot be done (fatal with --strict).
    d = tmp_path / "imgs"
    d.mkdir()
    solid_png(d / "big.png", 4000)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(d / "ok.png")
    skipped_after_decoding = 0
    for mib in range(40, 260, 10):
        out = tmp_path / f"x{mib}.kuat"
        p = run(kuat_cli, "convert", d, out, "-f", "images", "--threads", "1", "--codebook-size", "16",
                expect=None, limit_bytes=mib << 20)
        assert "bad_alloc" not in p.stderr, f"{mib} MiB: {p.stderr}"
        if p.returncode != 0:  # too little memory for the run itself: an error that says so, no archive
            assert "kuat convert: error: " in p.stderr and not out.exists(), f"{mib} MiB: {p.stderr}"
            continue
        if "big.png" in p.stderr:
            assert "out of memory while" in p.stderr and len(kuat.KuatArchive(out)) == 1, f"{mib} MiB: {p.stderr}"
            skipped_after_decoding += "while encoding" in p.stderr or "while sampling" in p.stderr
            if skipped_after_decoding == 1 and ("while encoding" in p.stderr or "while sampling" in p.stderr):
                s = run(kuat_cli, "convert", d, tmp_path / "s.kuat", "-f", "images", "--threads", "1", "--strict",
                        "--codebook-size", "16", expect=1, limit_bytes=mib << 20)
                assert "big.png': out of memory while" in s.stderr and "(--strict)" in s.stderr, s.stderr
        else:
            assert len(kuat.KuatArchive(out)) == 2
    assert skipped_after_decoding > 0


@needs_image_codecs
def test_max_pixels_option_cli_and_python(kuat_cli, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (20, 10), (9, 9, 9)).save(d / "big.png")   # 200 pixels
    Image.new("RGB", (10, 10), (9, 9, 9)).save(d / "small.webp", lossless=True)  # 100 pixels
    p = run(kuat_cli, "convert", d, tmp_path / "a.kuat", "--max-pixels", "100", "--codebook-size", "16")
    assert "big.png" in p.stderr and "20 x 10 = 200 pixels, over the limit of 100" in p.stderr
    assert "refused 1 input(s) over --max-pixels" in p.stderr and "broken input" not in p.stderr
    stats = kuat.convert_dataset(d, tmp_path / "b.kuat", codebook_size=16, max_pixels=199)
    assert stats["samples"] == 1 and "over the limit of 199" in stats["skipped_reasons"][0]
    assert stats["skipped"] == 1 and stats["refused"] == 1
    assert kuat.KuatArchive(tmp_path / "b.kuat").metadata["conversion"]["max_pixels"] == 199
    # One message for every bad value: text, negative, zero.
    for bad in ("abc", "-1", "0"):
        p = run(kuat_cli, "convert", d, tmp_path / "c.kuat", "--max-pixels", bad, expect=2)
        assert f"--max-pixels needs a positive integer, got '{bad}'" in p.stderr, p.stderr
    with pytest.raises(ValueError, match="max_pixels"):
        kuat.convert_dataset(d, tmp_path / "c.kuat", max_pixels=0)


@needs_image_codecs
def test_every_image_refused_or_broken_lists_the_reasons(kuat_cli, tmp_path):
    d = tmp_path / "imgs_flat"
    d.mkdir()
    Image.new("RGB", (20, 10), (9, 9, 9)).save(d / "big.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (d / "._big.png").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
    p = run(kuat_cli, "convert", d, tmp_path / "a.kuat", "--max-pixels", "100", "--codebook-size", "16", expect=1)
    err = p.stderr
    assert "no readable images to train a codebook on" in err
    assert "none of the 2 input(s) read for it could be used (1 refused over --max-pixels)" in err, err
    assert "big.png" in err and "over the limit of 100" in err and "broken.png" in err
    assert "ignored 1 hidden entry: ._big.png" in err
    assert not (tmp_path / "a.kuat").exists() and leftovers(tmp_path) == []
    with pytest.raises(OSError, match="broken.png"):
        kuat.convert_dataset(d, tmp_path / "b.kuat", codebook_size=16, max_pixels=100)


@needs_image_codecs
def test_output_path_is_checked_before_any_work(kuat_cli, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(d / "a.png")
    (tmp_path / "out.kuat").mkdir()
    p = run(kuat_cli, "convert", d, tmp_path / "out.kuat", "--codebook-size", "16", expect=1)
    assert "out.kuat" in p.stderr and "is a directory" in p.stderr and "rename" not in p.stderr, p.stderr
    assert "codebook" not in p.stdout  # nothing was converted
    p = run(kuat_cli, "convert", d, tmp_path / "missing" / "o.kuat", "--codebook-size", "16", expect=1)
    assert "output folder does not exist" in p.stderr
    with pytest.raises(OSError, match="is a directory"):
        kuat.convert_dataset(d, tmp_path / "out.kuat", codebook_size=16)


@needs_image_codecs
def test_tiny_archive_says_larger_than_raw(kuat_cli, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(d / "a.png")
    p = run(kuat_cli, "convert", d, tmp_path / "t.kuat", "--codebook-size", "16")
    line = [x for x in p.stdout.splitlines() if "raw pixels" in x][0]
    assert "x larger than raw pixels" in line and "smaller" not in line, line
    ratio = float(line.split("x larger")[0].rsplit(" ", 1)[1])
    assert ratio > 1


def test_python_errors_name_the_python_arguments(tmp_path):
    for kwargs, message in (({"bits": 0}, "bits must be between 1 and 8, got 0"),
                            ({"bits": 9}, "bits must be between 1 and 8, got 9"),
                            ({"codebook_size": 1}, "codebook_size must be between 2 and 65536, got 1"),
                            ({"patch": 3}, "patch must be 2 or 4, got 3"),
                            ({"width": 70000, "height": 8}, "width must be at most 65535"),
                            ({"iterations": 0}, "iterations must be at least 1"),
                            ({"shard": "2/1"}, "shard must look like 'i/N'"),
                            ({"exif_transpose": "yes"}, "exif_transpose must be True or False")):
        with pytest.raises(ValueError) as e:
            kuat.convert_dataset(tmp_path / "nope", tmp_path / "o.kuat", **kwargs)
        assert str(e.value).startswith(message) and "--" not in str(e.value), (kwargs, str(e.value))


@needs_image_codecs
def test_allocation_failure_is_that_images_error(kuat_cli, tmp_path):
    # Under the raised limit the 30000 x 30000 header asks for 2.7 GB; with 1.5 GB of address
    # space that allocation fails, and the run goes on without that one file.
    d = bomb_folder(tmp_path, 30000, 30000)
    p = run(kuat_cli, "convert", d, tmp_path / "x.kuat", "-f", "images", "--threads", "1", "--codebook-size", "16",
            "--max-pixels", str(10 ** 10), limit_bytes=3 << 29)
    assert "bomb.jpg" in p.stderr and "out of memory" in p.stderr and "skipped 1" in p.stderr
    assert len(kuat.KuatArchive(tmp_path / "x.kuat")) == 1


@needs_image_codecs
def test_background_option_cli_and_python(kuat_cli, tmp_path):
    d = tmp_path / "alpha"
    d.mkdir()
    Image.new("RGBA", (16, 16), (200, 100, 50, 0)).save(d / "clear.png")
    Image.new("LA", (16, 16), (80, 128)).save(d / "half.webp", lossless=True)
    for bg in ((0, 0, 0), (255, 255, 255), (10, 20, 30)):
        out = tmp_path / f"{bg[0]}.kuat"
        run(kuat_cli, "convert", d, out, "--background", ",".join(map(str, bg)), "--codebook-size", "16", "--bits", "8", "-q")
        a = kuat.KuatArchive(out)
        assert a.metadata["conversion"]["background"] == ",".join(map(str, bg))
        names = [a._native.source_name(i) for i in range(len(a))]
        clear = a[names.index("clear.png")]["image"]
        assert (clear == np.array(bg, np.uint8)).all()
        # 80 at alpha 128 over bg: PIL's alpha_composite rounding.
        half = a[names.index("half.webp")]["image"][0, 0]
        want = [((((x << 7) + (0x80 << 7)) >> 8) + ((x << 7) + (0x80 << 7)) >> 8) >> 7
                for x in (80 * 128 + c * 127 for c in bg)]
        assert list(half) == want
        py = kuat.convert_dataset(d, tmp_path / f"p{bg[0]}.kuat", codebook_size=16, bits=8, background=bg)
        assert py["samples"] == 2
        np.testing.assert_array_equal(kuat.KuatArchive(tmp_path / f"p{bg[0]}.kuat")[0]["image"], a[0]["image"])
    for bad in ("1,2", "1,2,256", "a,b,c", "1,2,3,4", "-1,0,0"):
        p = run(kuat_cli, "convert", d, tmp_path / "bad.kuat", "--background", bad, expect=2)
        assert "background" in p.stderr
    with pytest.raises(ValueError, match="background"):
        kuat.convert_dataset(d, tmp_path / "bad.kuat", background=(1, 2))


@needs_image_codecs
def test_exif_transpose_option(kuat_cli, tmp_path):
    d = tmp_path / "exif"
    d.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (32, 16), (50, 60, 70)).save(d / "a.jpg", exif=exif.tobytes())
    run(kuat_cli, "convert", d, tmp_path / "n.kuat", "--codebook-size", "16", "-q")
    assert kuat.KuatArchive(tmp_path / "n.kuat")[0]["image"].shape == (16, 32, 3)
    run(kuat_cli, "convert", d, tmp_path / "t.kuat", "--codebook-size", "16", "-q", "--exif-transpose")
    assert kuat.KuatArchive(tmp_path / "t.kuat")[0]["image"].shape == (32, 16, 3)
    kuat.convert_dataset(d, tmp_path / "p.kuat", codebook_size=16, exif_transpose=True, width=8, height=16)
    a = kuat.KuatArchive(tmp_path / "p.kuat")
    assert a[0]["image"].shape == (16, 8, 3) and a.metadata["conversion"]["exif_transpose"] is True


# --- Rule 3: folder scanning ---

def hidden_tree(root: Path) -> Path:
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 255, 0))):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(root / cls / "a.jpg")
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (16, 16)).save(root / ".ipynb_checkpoints" / "a-checkpoint.jpg")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
    (root / "cat" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
    (root / "cat" / ".thumbs").mkdir()
    Image.new("RGB", (16, 16)).save(root / "cat" / ".thumbs" / "t.jpg")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "dog" / ".hidden.png").write_bytes(b"not even a png")
    return root


HIDDEN = [".DS_Store", ".ipynb_checkpoints", "__MACOSX", "cat/._a.jpg", "cat/.thumbs", "dog/.hidden.png"]


@needs_image_codecs
def test_hidden_entries_are_never_classes_or_samples(kuat_cli, tmp_path):
    root = hidden_tree(tmp_path / "data")
    stats = kuat.convert_dataset(root, tmp_path / "x.kuat", codebook_size=16)
    a = kuat.KuatArchive(tmp_path / "x.kuat")
    assert stats["format"] == "imagenet" and a.classes == ["cat", "dog"] and list(a.labels) == [0, 1]
    assert stats["skipped"] == 0 and sorted(stats["ignored"]) == sorted(HIDDEN)
    assert a.metadata["stats"]["ignored_hidden"] == len(HIDDEN)
    p = run(kuat_cli, "convert", root, tmp_path / "c.kuat", "--codebook-size", "16")
    assert f"ignored {len(HIDDEN)} hidden entries" in p.stdout and ".ipynb_checkpoints" in p.stdout
    assert "skipped" not in p.stderr


@needs_image_codecs
def test_hidden_entries_in_a_flat_folder_and_detection(tmp_path):
    d = tmp_path / "flat"
    d.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(d / "a.png")
    (d / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
    (d / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (16, 16)).save(d / ".ipynb_checkpoints" / "a-checkpoint.png")
    stats = kuat.convert_dataset(d, tmp_path / "f.kuat", codebook_size=16)  # auto: a flat folder, not classes
    assert stats["format"] == "images" and stats["samples"] == 1 and stats["skipped"] == 0
    assert stats["ignored"] == ["._a.png", ".ipynb_checkpoints"]


@needs_image_codecs
def test_symlink_loops_are_errors_naming_the_path(kuat_cli, tmp_path):
    root = tmp_path / "loop"
    (root / "cat").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "cat" / "a.jpg")
    os.symlink("..", root / "cat" / "up")
    with pytest.raises(OSError, match=r"cat/up.*symbolic link loop"):
        kuat.convert_dataset(root, tmp_path / "x.kuat", format="imagenet", codebook_size=16)
    p = run(kuat_cli, "convert", root, tmp_path / "x.kuat", "-f", "imagenet", expect=1)
    assert "cat/up" in p.stderr and "symbolic link loop" in p.stderr and not (tmp_path / "x.kuat").exists()
    flat = tmp_path / "self"
    flat.mkdir()
    Image.new("RGB", (16, 16)).save(flat / "a.jpg")
    os.symlink("b.jpg", flat / "b.jpg")
    with pytest.raises(OSError, match=r"b\.jpg.*symbolic link loop"):
        kuat.convert_dataset(flat, tmp_path / "y.kuat", format="images", codebook_size=16)
    # A link to a folder elsewhere (no loop) is followed.
    other = tmp_path / "elsewhere"
    other.mkdir()
    Image.new("RGB", (16, 16)).save(other / "b.jpg")
    os.unlink(root / "cat" / "up")
    os.symlink(other, root / "dog")
    stats = kuat.convert_dataset(root, tmp_path / "z.kuat", format="imagenet", codebook_size=16)
    assert stats["samples"] == 2 and kuat.KuatArchive(tmp_path / "z.kuat").classes == ["cat", "dog"]


# --- Rule 4: CIFAR binary batches, IDX without labels ---

def write_cifar10_bin(folder: Path, per_batch=6, batches=5) -> dict:
    folder.mkdir(parents=True)
    data = {}
    for name, seed in [(f"data_batch_{b}.bin", b) for b in range(1, batches + 1)] + [("test_batch.bin", 99)]:
        batch = cifar_batch(per_batch, seed)
        labels = np.asarray(batch[b"labels"], np.uint8)
        recs = np.concatenate([labels[:, None], batch[b"data"]], axis=1)
        (folder / name).write_bytes(recs.tobytes())
        data[name] = (batch[b"data"], labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return data


def hwc(planar: np.ndarray) -> np.ndarray:
    return planar.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar10_binary_matches_its_pixels(kuat_cli, tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    data = write_cifar10_bin(folder)
    stats = kuat.convert_dataset(folder, tmp_path / "c.kuat", codebook_size=256, bits=8)
    a = kuat.KuatArchive(tmp_path / "c.kuat")
    assert stats["format"] == "cifar" and len(a) == 30 and a.classes[9] == "truck"
    px = np.concatenate([data[f"data_batch_{b}.bin"][0] for b in range(1, 6)])
    labels = np.concatenate([data[f"data_batch_{b}.bin"][1] for b in range(1, 6)])
    np.testing.assert_array_equal(a.labels, labels.astype(np.int32))
    # The stored image is the VQ of these pixels: its PSNR against them is the one recorded.
    dec = a.get_batch(np.arange(30))["images"].astype(np.float64)
    mse = ((dec - hwc(px)) ** 2).reshape(30, -1).mean(1)
    assert np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))) == pytest.approx(stats["psnr"], abs=1e-6)
    t = kuat.convert_dataset(folder, tmp_path / "t.kuat", split="test", codebook=tmp_path / "c.kuat")
    assert t["samples"] == 6
    one = kuat.convert_dataset(folder / "data_batch_2.bin", tmp_path / "one.kuat", codebook=tmp_path / "c.kuat")
    assert one["samples"] == 6
    np.testing.assert_array_equal(kuat.KuatArchive(tmp_path / "one.kuat")[0]["image"], a[6]["image"])
    run(kuat_cli, "convert", folder, tmp_path / "cli.kuat", "--codebook-size", "16", "-q")


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    rng = np.random.default_rng(4)
    fine = {}
    for name in ("train", "test"):
        px = rng.integers(0, 256, (8, 3072), dtype=np.uint8)
        f = rng.integers(0, 100, 8).astype(np.uint8)
        recs = np.concatenate([(f // 5)[:, None], f[:, None], px], axis=1)
        (folder / f"{name}.bin").write_bytes(recs.tobytes())
        fine[name] = f
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)) + "\n")
    kuat.convert_dataset(folder, tmp_path / "c.kuat", codebook_size=16, split="test")
    a = kuat.KuatArchive(tmp_path / "c.kuat")
    assert list(a.labels) == list(fine["test"]) and len(a.classes) == 100 and a.classes[7] == "fine7"


def test_cifar_binary_broken_files_name_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10_bin(folder, batches=2)
    good = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(good[:-100])
    with pytest.raises(OSError, match=r"data_batch_2\.bin.*not a whole number of 3073-byte CIFAR-10 records"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat", codebook_size=16)
    bad_label = bytearray(good)
    bad_label[3073] = 10
    (folder / "data_batch_2.bin").write_bytes(bytes(bad_label))
    with pytest.raises(OSError, match=r"data_batch_2\.bin.*record 1 has label 10"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat", codebook_size=16)
    (folder / "data_batch_2.bin").write_bytes(b"")
    with pytest.raises(OSError, match=r"data_batch_2\.bin.*empty"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat", codebook_size=16)
    (folder / "data_batch_2.bin").write_bytes(good)
    (folder / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(OSError, match=r"batches\.meta\.txt.*2 class names, expected 10"):
        kuat.convert_dataset(folder, tmp_path / "x.kuat", codebook_size=16)
    hundred = tmp_path / "cifar-100-binary"
    hundred.mkdir()
    (hundred / "train.bin").write_bytes(bytes(3073 * 2))  # CIFAR-10-sized records
    with pytest.raises(OSError, match=r"train\.bin.*3074-byte CIFAR-100 records"):
        kuat.convert_dataset(hundred, tmp_path / "x.kuat", codebook_size=16)
    assert not (tmp_path / "x.kuat").exists() and leftovers(tmp_path) == []


def test_idx_images_without_labels_warn(kuat_cli, tmp_path):
    rng = np.random.default_rng(0)
    d = write_idx(tmp_path / "idx", rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), np.zeros(20, np.uint8))
    (d / "train-labels-idx1-ubyte.gz").unlink()
    (d / "._train-images-idx3-ubyte.gz").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble: not a second IDX file
    with pytest.warns(UserWarning, match=r"train-images-idx3-ubyte\.gz.*no labels file.*every label is -1"):
        stats = kuat.convert_dataset(d, tmp_path / "i.kuat", codebook_size=16)
    assert list(kuat.KuatArchive(tmp_path / "i.kuat").labels) == [-1] * 20 and len(stats["warnings"]) == 1
    p = run(kuat_cli, "convert", d, tmp_path / "c.kuat", "--codebook-size", "16")
    assert "warning:" in p.stderr and "every label is -1" in p.stderr


def test_idx_gzip_longer_than_its_header_is_refused(tmp_path):
    import gzip
    d = tmp_path / "gz"
    d.mkdir()
    body = struct.pack(">IIII", 0x803, 2, 4, 4) + bytes(32) + bytes(10 ** 6)
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(body))
    with pytest.raises(OSError, match="longer than the 48 bytes its IDX header gives"):
        kuat.convert_dataset(d, tmp_path / "x.kuat", codebook_size=16)


@needs_image_codecs
def test_image_files_of_types_kuat_does_not_read_are_counted_in_a_warning(kuat_cli, tmp_path):
    cat = tmp_path / "data" / "cat"
    cat.mkdir(parents=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(cat / "a.png")
    for name in ("b.bmp", "c.TIF", "d.gif", "e.ppm"):  # left out by extension, whatever they hold
        (cat / name).write_bytes(b"not read")
    (cat / "notes.txt").write_text("metadata files are not images: no warning for them")
    p = run(kuat_cli, "convert", tmp_path / "data", tmp_path / "x.kuat", "-f", "imagenet", "--codebook-size", "8",
            "--threads", "1")
    assert "1 samples" in p.stdout
    assert ("warning: left out 4 image file(s) of a type kuat does not read (samples are .jpg, .jpeg, .jpe, .png "
            "and .webp files; convert the others first): cat/b.bmp, cat/c.TIF, cat/d.gif, cat/e.ppm") in p.stderr
    assert "notes.txt" not in p.stderr


# --- Rules 3 and 4: layouts auto-detection must not miss or mangle ---

@needs_image_codecs
def test_auto_detection_finds_class_folders_at_any_depth_and_never_raises_raw_errors(tmp_path):
    # Kind 3/4: format imagenet scans class folders recursively, so auto-detection must see
    # class folders whose images sit in sub-folders (it said "no dataset found"), and a link
    # loop met while detecting is the error naming the link (it was a raw filesystem_error).
    root = tmp_path / "nested"
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 255, 0))):
        (root / cls / "2024" / "batch1").mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(root / cls / "2024" / "batch1" / "a.png")
    (root / "dog" / ".thumbs").mkdir()
    Image.new("RGB", (16, 16)).save(root / "dog" / ".thumbs" / "t.png")
    stats = kuat.convert_dataset(root, tmp_path / "n.kuat", codebook_size=16)
    arch = kuat.KuatArchive(tmp_path / "n.kuat")
    assert stats["samples"] == 2 and arch.classes == ["cat", "dog"] and sorted(arch.labels) == [0, 1]
    only_hidden = tmp_path / "only_hidden"
    (only_hidden / "cat" / ".cache").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(only_hidden / "cat" / ".cache" / "a.png")
    with pytest.raises(OSError, match="no dataset found"):
        kuat.convert_dataset(only_hidden, tmp_path / "h.kuat", codebook_size=16)
    for where in ("", "cat"):  # two links pointing at each other, at the root and in a class
        loop = tmp_path / f"loop_{where or 'root'}"
        (loop / "cat").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(loop / "cat" / "a.jpg")
        os.symlink("b", loop / where / "a")
        os.symlink("a", loop / where / "b")
        for fmt in ("auto", "imagenet"):
            with pytest.raises(OSError, match=r"symbolic link loop"):
                kuat.convert_dataset(loop, tmp_path / "l.kuat", format=fmt, codebook_size=16)
    circle = tmp_path / "circle"  # cat/x -> dog, dog/y -> cat: auto-detection ends
    for cls in ("cat", "dog"):
        (circle / cls).mkdir(parents=True)
    os.symlink("../dog", circle / "cat" / "x")
    os.symlink("../cat", circle / "dog" / "y")
    with pytest.raises(OSError, match="no dataset found"):
        kuat.convert_dataset(circle, tmp_path / "c.kuat", codebook_size=16)


def test_idx_folders_as_torchvision_and_emnist_leave_them(tmp_path):
    # Kind 4: torchvision's MNIST/raw holds every file twice (X.gz and its extraction X); EMNIST
    # names the split inside the name (emnist-balanced-train-images-idx3-ubyte). Both are read.
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (6, 4, 4)), np.arange(6) % 3
    test = rng.integers(0, 256, (4, 4, 4)), np.arange(4) % 2
    raw = tmp_path / "MNIST" / "raw"
    for gz in (False, True):
        write_idx(raw, *train, prefix="train", gz=gz)
        write_idx(raw, *test, prefix="t10k", gz=gz)
    for split, (images, labels) in (("train", train), ("test", test)):
        stats = kuat.convert_dataset(raw, tmp_path / f"{split}.kuat", split=split, codebook_size=16, bits=8)
        arch = kuat.KuatArchive(tmp_path / f"{split}.kuat")
        assert stats["samples"] == len(labels) and list(arch.labels) == list(labels)
    # The folder above a dataset folder is refused naming the folder to pass.
    with pytest.raises(OSError, match=r"MNIST/raw'.*pass that folder"):
        kuat.convert_dataset(tmp_path / "MNIST", tmp_path / "m.kuat", codebook_size=16)
    emnist = tmp_path / "emnist"
    write_idx(emnist, *train, prefix="emnist-balanced-train")
    write_idx(emnist, *test, prefix="emnist-balanced-test")
    for split, (images, labels) in (("train", train), ("test", test)):
        kuat.convert_dataset(emnist, tmp_path / f"e{split}.kuat", split=split, codebook_size=16)
        assert list(kuat.KuatArchive(tmp_path / f"e{split}.kuat").labels) == list(labels)
    write_idx(emnist, *train, prefix="emnist-letters-train")  # two subsets: which one is not guessed
    with pytest.raises(OSError, match="selects 2 of the IDX files"):
        kuat.convert_dataset(emnist, tmp_path / "x.kuat", codebook_size=16)


@needs_image_codecs
def test_no_sample_errors_name_the_hidden_entries_left_out(tmp_path):
    # Kind 3: a folder of AppleDouble copies (macOS zips) has no sample; the error says the
    # hidden entries were seen and left out, as the summary does when there are samples.
    root = tmp_path / "mac"
    (root / "dog").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "dog" / "._b.jpg", format="JPEG")
    (root / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(OSError, match=r"no images in any class folder \(ignored 2 hidden entries.*\.DS_Store, dog/\._b\.jpg"):
        kuat.convert_dataset(root, tmp_path / "a.kuat", format="imagenet", codebook_size=16)
    with pytest.raises(OSError, match=r"no \.jpg.*\(ignored 1 hidden entry.*\._b\.jpg"):
        kuat.convert_dataset(root / "dog", tmp_path / "b.kuat", format="images", codebook_size=16)
    with pytest.raises(OSError, match=r"no dataset found.*2 hidden entries"):
        kuat.convert_dataset(root, tmp_path / "c.kuat", codebook_size=16)


def test_cifar10_training_folder_missing_batches_warns(tmp_path):
    # Kind 4: a CIFAR-10 folder with some of data_batch_1..5 gone (an interrupted extraction)
    # was converted silently as a smaller training set; the missing batches are now named.
    from kuat_helpers import write_cifar10

    py = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=4, batches=5)
    (py / "data_batch_3").unlink()
    with pytest.warns(UserWarning, match=r"CIFAR-10 training batch data_batch_3 missing; converting the 4 found"):
        stats = kuat.convert_dataset(py, tmp_path / "py.kuat", codebook_size=16)
    assert stats["samples"] == 16
    binary = tmp_path / "cifar-10-batches-bin"
    write_cifar10_bin(binary, batches=2)
    with pytest.warns(UserWarning, match=r"batches data_batch_3\.bin, data_batch_4\.bin, data_batch_5\.bin missing"):
        kuat.convert_dataset(binary, tmp_path / "bin.kuat", codebook_size=16)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole set, or one batch file given on purpose: no warning
        kuat.convert_dataset(binary / "data_batch_1.bin", tmp_path / "one.kuat", codebook_size=16)
        kuat.convert_dataset(py, tmp_path / "test.kuat", split="test", codebook_size=16)


def test_target_size_is_held_to_the_pixel_limit(tmp_path):
    # Kind 2: the resized images are held in memory like decoded ones; a --width x --height above
    # --max-pixels (up to 65535 x 65535 = 4.3 G pixels, 12.9 GB per image) is refused before any work.
    src = write_idx(tmp_path / "idx", np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"20000 x 20000 = 400000000 pixels per image, over the limit of 178956970"):
        kuat.convert_dataset(src, tmp_path / "a.kuat", width=20000, height=20000, codebook_size=16)
    with pytest.raises(ValueError, match=r"64 x 64 = 4096 pixels per image, over the limit of 4095"):
        kuat.convert_dataset(src, tmp_path / "a.kuat", width=64, height=64, max_pixels=4095, codebook_size=16)
    assert not (tmp_path / "a.kuat").exists()
    assert kuat.convert_dataset(src, tmp_path / "b.kuat", width=64, height=64, max_pixels=4096, codebook_size=16)["samples"] == 4


@needs_image_codecs
def test_folder_and_file_names_that_are_not_utf8(tmp_path):
    # Kind 3: names are bytes on POSIX. A Latin-1 class folder ("caf\xe9", from an old zip) made
    # an archive whose metadata Python could not read (UnicodeDecodeError on open), a Latin-1
    # hidden entry made convert_dataset raise after writing, and error messages naming such a
    # file came out empty. Names are now kept as os.fsdecode gives them.
    root = os.fsencode(tmp_path) + b"/d\xe9j\xe0"
    for cls in (b"caf\xe9", b"dog"):
        os.makedirs(root + b"/" + cls)
        Image.new("RGB", (16, 16)).save(os.fsdecode(root + b"/" + cls + b"/a\xff.png"))
    (Path(os.fsdecode(root)) / os.fsdecode(b"dog/.hid\xe9")).write_bytes(b"x")
    (Path(os.fsdecode(root)) / os.fsdecode(b"dog/bad\xe9.jpg")).write_bytes(b"not an image")
    out = os.fsencode(tmp_path) + b"/\xe9.kuat"
    for src in (os.fsdecode(root), root):
        stats = kuat.convert_dataset(src, os.fsdecode(out), codebook_size=16)
        assert stats["samples"] == 2 and stats["ignored"] == [os.fsdecode(b"dog/.hid\xe9")]
        assert os.fsencode(stats["skipped_reasons"][0]).startswith(b"'" + root + b"/dog/bad\xe9.jpg'")
        arch = kuat.KuatArchive(os.fsdecode(out))
        assert arch.classes == ["caf\u00e9", "dog"]  # the byte's code point: readable metadata
        names = [os.fsencode(arch._native.source_name(i)) for i in range(len(arch))]
        assert names == [b"caf\xe9/a\xff.png", b"dog/a\xff.png"]
        assert len(kuat.KuatArchive(out)) == 2
    with pytest.raises(OSError) as e:
        kuat.convert_dataset(os.fsdecode(root + b"/dog"), tmp_path / "x.kuat", format="images", strict=True,
                             codebook_size=16)
    assert os.fsencode(str(e.value)).startswith(b"'" + root + b"/dog/bad\xe9.jpg'")

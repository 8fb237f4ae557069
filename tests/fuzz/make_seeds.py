"""Writes a small seed corpus for each fuzz target: python tests/fuzz/make_seeds.py OUT_DIR.

OUT_DIR/<target>/ gets valid inputs of every kind the target reads (image pixel formats and
containers, IDX plain and gzip, CIFAR records, .npy versions, a BitLab model), so the fuzzer
starts from the structures it must explore. Needs numpy and PIL."""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def save(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def image_seeds(out: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (9, 13, 4), dtype=np.uint8), "RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {
        "rgb.jpg": encoded(rgb, "JPEG"), "gray.jpg": encoded(rgb.convert("L"), "JPEG"),
        "progressive.jpg": encoded(rgb, "JPEG", progressive=True), "cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG"),
        "exif.jpg": encoded(rgb, "JPEG", exif=exif.tobytes()),
        "rgb.png": encoded(rgb, "PNG"), "rgba.png": encoded(rgba, "PNG"), "la.png": encoded(rgba.convert("LA"), "PNG"),
        "p.png": encoded(rgba.convert("P"), "PNG", transparency=3), "1bit.png": encoded(rgb.convert("1"), "PNG"),
        "i16.png": encoded(rgb.convert("L").convert("I"), "PNG"), "exif.png": encoded(rgb, "PNG", exif=exif.tobytes()),
        "lossy.webp": encoded(rgb, "WEBP"), "lossless.webp": encoded(rgba, "WEBP", lossless=True),
        "alpha.webp": encoded(rgba, "WEBP", quality=50),
        "anim.webp": encoded(rgb, "WEBP", save_all=True, append_images=[rgba], duration=50, lossless=True),
    }
    for name, data in seeds.items():
        save(out / "fuzz_kuat_image", name, data)


def idx_seeds(out: Path) -> None:
    imgs = struct.pack(">IIII", 0x803, 3, 5, 4) + bytes(range(60))
    labels = struct.pack(">II", 0x801, 3) + bytes([1, 2, 3])
    for name, data in {"images.idx": imgs, "images.idx.gz": gzip.compress(imgs), "labels.idx": labels,
                       "labels.idx.gz": gzip.compress(labels)}.items():
        save(out / "fuzz_kuat_idx", name, data)


def cifar_seeds(out: Path) -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (2, 3072), dtype=np.uint8).tobytes()
    save(out / "fuzz_kuat_cifar_bin", "ten.bin", bytes([3]) + px[:3072] + bytes([9]) + px[3072:])
    save(out / "fuzz_kuat_cifar_bin", "hundred.bin", bytes([4, 23]) + px[:3072])


def npy_seeds(out: Path) -> None:
    for name, arr, version in (("v1.npy", np.arange(6, dtype=np.float32).reshape(2, 3), (1, 0)),
                               ("scalar.npy", np.array(1.5, np.float32), (1, 0)),
                               ("v2.npy", np.zeros((0, 4), np.float32), (2, 0)),
                               ("v3.npy", np.ones(5, np.float32), (3, 0))):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, version=version)
        save(out / "fuzz_bitlab_npy", name, buf.getvalue())


def model_seeds(out: Path) -> None:
    def layer(inf, outf, bias, relu, int8):
        trits = np.random.default_rng(inf * outf).integers(-1, 2, inf * outf)
        packed = bytearray()
        for i in range(0, len(trits), 5):
            group = list(trits[i:i + 5] + 1) + [1] * (5 - len(trits[i:i + 5]))
            v = 0
            for code in reversed(group):
                v = v * 3 + int(code)
            packed.append(v)
        rec = struct.pack("<IIBBBBI", inf, outf, 0 if int8 else 1, 1 if int8 else 0, bias, relu, 0)
        rec += np.full(outf, 0.5, np.float32).tobytes()
        if bias:
            rec += np.full(outf, -0.25, np.float32).tobytes()
        return rec + bytes(packed)

    body = layer(7, 5, 1, 1, True) + layer(5, 3, 0, 0, False)
    head = b"LBBITMLP" + struct.pack("<IIIIQ", 1, 2, 7, 3, len(body))
    data = head + body
    data += struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)
    save(out / "fuzz_bitlab_model", "mlp.bitlab", data)
    save(out / "fuzz_bitlab_model", "mlp_odd.bitlab", data + b"\x00")  # odd size: the harness fixes CRC and size


if __name__ == "__main__":
    root = Path(sys.argv[1])
    image_seeds(root)
    idx_seeds(root)
    cifar_seeds(root)
    npy_seeds(root)
    model_seeds(root)
    print(f"seeds written under {root}")

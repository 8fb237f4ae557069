"""Kuat conversion benchmark: end-to-end throughput per core, quality vs plain Lloyd, K sweep.

Prints one Markdown section. Inputs are real photographs (scikit-image samples and the system
wallpapers) cut into ImageNet-sized JPEGs (500x375, quality 90) in a cache folder, laid out as
ImageNet class folders (symlinks) for `kuat convert -f imagenet`.

End to end means the whole `kuat convert` process (listing, codebook training, decoding,
resizing, encoding, writing), timed from outside; per core = img/s divided by the threads. CPU
seconds (user + sys of the process) are reported beside wall time because the machine may be
shared: img per CPU-second is the per-core rate that other load cannot inflate.

    PYTHONPATH=python .venv/bin/python bench/bench_kuat_convert.py [--images 2000] [--kuat PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kuat
from lowbit import _native

PHOTO_DIRS = [Path("/usr/lib/python3/dist-packages/skimage/data"), Path("/usr/share/backgrounds"),
              Path("/usr/share/ukui-wallpapers")]


def make_jpegs(folder: Path, count: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= count:
        return folder
    sources = []
    for d in PHOTO_DIRS:
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    try:
                        im = Image.open(p).convert("RGB")
                    except Exception:
                        continue
                    if min(im.size) >= 300:
                        sources.append(im)
    rng = np.random.default_rng(0)
    for i in range(count):
        im = sources[i % len(sources)]
        w, h = im.size
        scale = rng.uniform(0.45, 1.0)
        cw, ch = int(min(w, h * 4 / 3) * scale), int(min(w, h * 4 / 3) * scale * 3 / 4)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BICUBIC)
        crop.save(folder / f"img_{i:05d}.jpg", quality=90)
    return folder


def lloyd_numpy(x: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    """Plain Lloyd k-means (random init from the data, float32 BLAS distances)."""
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), k, replace=False)].astype(np.float32)
    xf = x.astype(np.float32)
    xx = (xf * xf).sum(1)
    for _ in range(iterations):
        assign = np.empty(len(x), dtype=np.int64)
        cc = (c * c).sum(1)
        for s in range(0, len(x), 65536):
            d = xx[s:s + 65536, None] - 2 * xf[s:s + 65536] @ c.T + cc[None, :]
            assign[s:s + 65536] = d.argmin(1)
        sums = np.zeros_like(c, dtype=np.float64)
        np.add.at(sums, assign, xf)
        counts = np.bincount(assign, minlength=k)
        nonempty = counts > 0
        c[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
    return c


def patches_of(images, p: int = 2) -> np.ndarray:
    out = []
    for im in images:
        h, w, ch = im.shape
        out.append(im[: h - h % p, : w - w % p].reshape(h // p, p, w // p, p, ch).transpose(0, 2, 1, 3, 4).reshape(-1, p * p * ch))
    return np.concatenate(out)


def run_cli(cli: str, *args) -> float:
    t = time.perf_counter()
    subprocess.run([cli, *map(str, args)], check=True, capture_output=True)
    return time.perf_counter() - t


def timed_cli(cli: str, *args) -> tuple:
    """(wall seconds, CPU seconds = user + sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run_cli(cli, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imagenet_layout(folder: Path, root: Path, count: int, classes: int = 10) -> Path:
    """Class folders of symlinks to the first `count` cached JPEGs (round-robin over classes)."""
    for i, jpg in enumerate(sorted(folder.glob("*.jpg"))[:count]):
        d = root / f"n{i % classes:08d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / jpg.name).symlink_to(jpg)
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--sweep-images", type=int, default=0, help="images for the K sweep (default: all)")
    ap.add_argument("--kuat", default=os.environ.get("KUAT_CLI", str(Path(sys.executable).parent / "kuat")))
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "kuat_bench_jpegs"))
    args = ap.parse_args()
    folder = make_jpegs(Path(args.cache), args.images)
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="kuat_bench_"))
    lines = ["## Kuat conversion", "",
             f"Machine: {platform.processor() or platform.machine()}, {cores} cores; "
             f"SIMD {_native.simd_level()}; {args.images} JPEGs of 500x375 (q90) cut from real photographs.", ""]

    # 1. End-to-end `kuat convert -f imagenet` to 224x224 (K=512, --bits 4 defaults), 1 and `cores` threads.
    root = imagenet_layout(folder, work / "imagenet", args.images)
    lines += [f"End to end: `kuat convert {args.images} JPEGs -f imagenet -W 224 -H 224` (K=512, --bits 4; "
              "codebook training included):", "",
              "| threads | wall s | img/s | img/s per core | CPU s | img per CPU-second | train s | PSNR (worst) |",
              "|---|---|---|---|---|---|---|---|"]
    for threads in sorted({1, cores}):
        out = work / f"e2e{threads}.kuat"
        wall, cpu = timed_cli(args.kuat, "convert", root, out, "-f", "imagenet", "-W", 224, "-H", 224, "--threads", threads, "-q")
        meta = kuat.KuatArchive(out).metadata
        n = meta["stats"]["samples"]
        lines.append(f"| {threads} | {wall:.2f} | {n / wall:.0f} | {n / wall / threads:.0f} | {cpu:.2f} | {n / cpu:.0f} | "
                     f"{meta['stats']['training_seconds']:.2f} | {meta['quality']['psnr']:.2f} dB "
                     f"({meta['quality']['psnr_worst']:.2f}) |")
    enc1, enc1_cpu = timed_cli(args.kuat, "convert", root, work / "t1.kuat", "-f", "imagenet", "-W", 224, "-H", 224,
                               "--codebook", work / f"e2e{cores}.kuat", "--threads", 1, "-q")
    lines += ["", f"Encode pass alone (`--codebook` reuse, no training), 1 thread: {args.images / enc1:.0f} img/s wall, "
              f"{args.images / enc1_cpu:.0f} img per CPU-second.", ""]
    # 2. Quality vs a plain 15-iteration Lloyd k-means on the same training patches (first 400 images).
    images = _native.kuat.load_images(str(folder), "images", 224, 224, 0, 400)
    allp = patches_of(images)
    rng = np.random.default_rng(1)
    sample = np.ascontiguousarray(allp[rng.choice(len(allp), 256 * 512, replace=False)])
    t = time.perf_counter()
    ours = _native.kuat.train_codebook(sample, 512, 8, 20, 1234)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = lloyd_numpy(sample, 512, 15, 1234)
    t_base = time.perf_counter() - t
    base_u8 = np.ascontiguousarray(np.clip(np.floor(base + 0.5), 0, 255).astype(np.uint8))
    p_ours = _native.kuat.encode_psnr(images, ours["codebook"], 2)
    p_base = _native.kuat.encode_psnr(images, base_u8, 2)
    lines += [f"Quality on the same {len(sample)} training patches (K=512, 2x2 RGB), PSNR over all {len(images)} images at 224x224:", "",
              "| codebook | mean PSNR | worst PSNR | training time |", "|---|---|---|---|",
              f"| kuat (k-means++, --bits 8 coreset, 20 Lloyd iterations max) | {p_ours.mean():.2f} dB | {p_ours.min():.2f} dB | {t_ours:.2f} s |",
              f"| plain Lloyd, 15 iterations, random init (numpy/BLAS) | {p_base.mean():.2f} dB | {p_base.min():.2f} dB | {t_base:.2f} s |",
              f"| difference (kuat - Lloyd) | {p_ours.mean() - p_base.mean():+.2f} dB | {p_ours.min() - p_base.min():+.2f} dB | "
              f"{t_base / t_ours:.1f}x faster |", ""]

    # 3. Size / quality trade-off over K.
    lines += ["Size and quality by codebook size (224x224, --bits 4, 2x2 patches):", "",
              "| K | images | bits/index | bits/pixel | compression | mean PSNR | worst PSNR | train s | encode img/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for k, extra in ((256, {}), (512, {}), (4096, {}), (65536, {"training_patches": 262144, "iterations": 5})):
        s = kuat.convert_dataset(folder, work / f"k{k}.kuat", width=224, height=224, codebook_size=k,
                                 limit=args.sweep_images or args.images, **extra)
        bits = int(np.ceil(np.log2(k)))
        note = f"{s['samples']}" + (" (262144 training patches, 5 iterations)" if extra else "")
        lines.append(f"| {k} | {note} | {bits} | {bits / 4:.2f} | {s['compression_ratio']:.1f}x | {s['psnr']:.2f} dB | "
                     f"{s['psnr_worst']:.2f} dB | {s['training_seconds']:.1f} | {s['samples'] / s['encoding_seconds']:.0f} |")
    lines += ["", f"Command: `PYTHONPATH=python .venv/bin/python bench/bench_kuat_convert.py --images {args.images}`"
              + (f" --sweep-images {args.sweep_images}" if args.sweep_images else "")]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

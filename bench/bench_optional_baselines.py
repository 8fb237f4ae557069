"""Optional PyPI baselines: faiss k-means, bitsandbytes and FFCV against ours, when they install.

`make bench` first tries to install each line of requirements-bench.txt with `pip --no-deps`
(bench/install_optional.py). This script then prints ONE Markdown section: a table per baseline
that imports and runs, and "skipped: <reason>" for each one that does not (the import error plus
any pip failure recorded by the installer).
  * faiss.Kmeans vs Kuat codebook training: the same 2x2 RGB patches of real photographs
    (1024 JPEGs made as bench_kuat_convert.py makes its own), K = 512, the same iteration cap
    and thread count;
    time, and MSE / PSNR of each (uint8) codebook on those patches.
  * bitsandbytes vs deployed BitLinear, 4096 x 4096, batch 1 and 64: every bnb layer kind that
    runs on this CPU and torch, time and weight memory; the kinds that do not run are named with
    the exception they raise.
  * FFCV Loader vs KuatDataset on the same 224x224 images, batch 256, shuffled, uint8 NHWC.
Progress and library chatter go to stderr; only the section goes to stdout.

    PYTHONPATH=python .venv/bin/python bench/bench_optional_baselines.py [--quick] [--hide MODULE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench scripts: same data, same timing
INSTALL_LOG = ROOT / "build" / "optional-baselines-install.json"
HIDE_ENV = "LOWBIT_BENCH_HIDE"  # comma-separated modules to treat as not installed (tests use it)
CODEBOOK_SIZE = 512
PATCH = 2
SIZE = 224
CORES = os.cpu_count() or 1


@dataclass
class Sizes:
    """Workload sizes: the full run, or --quick (seconds; for the tests)."""
    images: int
    training_patches: int
    iterations: int
    layer: int
    seconds: float


FULL = Sizes(images=1024, training_patches=256 * CODEBOOK_SIZE, iterations=20, layer=4096, seconds=3.0)
QUICK = Sizes(images=12, training_patches=40 * CODEBOOK_SIZE, iterations=4, layer=256, seconds=0.2)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def describe(error: BaseException) -> str:
    """Exception type and message, with where it was raised when the message is empty."""
    text = " ".join(str(error).split())
    if not text:
        frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        text = f"(no message) at {Path(frame.filename).name}:{frame.lineno}" if frame else "(no message)"
    return f"{type(error).__name__}: {text}"


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------ shared data
class Photos:
    """The converter benchmark's JPEGs (real photographs, 500x375 q90), decoded once at 224x224."""

    def __init__(self, sizes: Sizes, cache: Path):
        self.sizes = sizes
        self.cache = cache
        self._images = None

    @property
    def folder(self) -> Path:
        from bench_kuat_convert import make_jpegs

        return make_jpegs(self.cache, self.sizes.images)

    @property
    def images(self) -> list:
        if self._images is None:
            from lowbit import _native

            self._images = _native.kuat.load_images(str(self.folder), "images", SIZE, SIZE, 0, 0)
        return self._images


# ------------------------------------------------------------------ faiss k-means
def patch_mse(faiss, patches: np.ndarray, codebook_u8: np.ndarray) -> float:
    """Mean squared error per value of every patch against its nearest codeword (exact search)."""
    index = faiss.IndexFlatL2(codebook_u8.shape[1])
    index.add(codebook_u8.astype(np.float32))
    distances, _ = index.search(patches.astype(np.float32), 1)
    return float(distances.mean()) / patches.shape[1]


def psnr(mse: float) -> float:
    return 10 * np.log10(255.0 ** 2 / mse)


def run_faiss(faiss, photos: Photos, sizes: Sizes) -> list:
    from bench_kuat_convert import patches_of
    from lowbit import _native

    images = photos.images
    allp = patches_of(images, PATCH)
    rng = np.random.default_rng(1)
    sample = np.ascontiguousarray(allp[rng.choice(len(allp), min(sizes.training_patches, len(allp)), replace=False)])
    threads = _native.num_threads()
    faiss.omp_set_num_threads(threads)

    log("faiss: training the Kuat codebook")
    t0 = time.perf_counter()
    ours = _native.kuat.train_codebook(sample, CODEBOOK_SIZE, 8, sizes.iterations, 1234)
    t_ours = time.perf_counter() - t0
    rows = [("Kuat `train_codebook` (k-means++ on an 8-bit coreset, Lloyd, early stop)",
             ours["iterations_run"], t_ours, ours["codebook"])]

    sample_f32 = sample.astype(np.float32)
    caps = [sizes.iterations] + ([ours["iterations_run"]] if ours["iterations_run"] != sizes.iterations else [])
    for niter in caps:
        log(f"faiss: faiss.Kmeans niter={niter}")
        km = faiss.Kmeans(sample.shape[1], CODEBOOK_SIZE, niter=niter, seed=1234,
                          max_points_per_centroid=max(256, len(sample) // CODEBOOK_SIZE + 1))
        t0 = time.perf_counter()
        km.train(sample_f32)
        t_faiss = time.perf_counter() - t0
        codebook = np.clip(np.floor(km.centroids + 0.5), 0, 255).astype(np.uint8)
        rows.append((f"faiss `Kmeans` (random init, Lloyd), niter={niter}", niter, t_faiss, codebook))

    lines = [f"Same {len(sample):,} training patches ({PATCH}x{PATCH} RGB, sampled from {len(images)} real photographs "
             f"at {SIZE}x{SIZE}), K = {CODEBOOK_SIZE}, {threads} threads each (lowbit pool / faiss OpenMP), "
             f"iteration cap {sizes.iterations}. Both codebooks rounded to uint8 (what the archive stores); "
             f"MSE per value over all training patches with exact nearest-codeword search, image PSNR by the Kuat encoder.",
             "",
             "| codebook training | iterations | time | patch MSE | patch PSNR | mean image PSNR | training time |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, iterations, seconds, codebook in rows:
        mse = patch_mse(faiss, sample, codebook)
        image_psnr = float(_native.kuat.encode_psnr(images, np.ascontiguousarray(codebook), PATCH).mean())
        if name.startswith("Kuat"):
            ratio = "-"
        elif t_ours <= seconds:
            ratio = f"Kuat {seconds / t_ours:.1f}x faster"
        else:
            ratio = f"Kuat {t_ours / seconds:.1f}x slower"
        lines.append(f"| {name} | {iterations} | {seconds:.2f} s | {mse:.2f} | {psnr(mse):.2f} dB | "
                     f"{image_psnr:.2f} dB | {ratio} |")
    return lines


# ------------------------------------------------------------------ bitsandbytes
def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def bnb_int8(bnb, linear):
    import torch

    layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=True, has_fp16_weights=False,
                                threshold=0.0)
    layer.weight = bnb.nn.Int8Params(linear.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    layer.bias = torch.nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    layer = layer.to("cpu").eval()  # newer bnb quantizes the weight here; 0.44 only on .cuda()
    return layer, lambda: tensor_bytes(layer.state_dict().values())


def bnb_nf4(bnb, linear):
    import torch

    layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=True, compute_dtype=torch.float32,
                              quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(linear.weight.data.clone(), requires_grad=False, quant_type="nf4")
    layer.bias = torch.nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    layer = layer.to("cpu").eval()
    if not getattr(layer.weight, "bnb_quantized", True):
        # This bnb quantizes 4-bit weights only on the move to an accelerator. Quantizing on the CPU
        # directly raises the precise reason when there is no CPU kernel.
        bnb.functional.quantize_4bit(linear.weight.data, quant_type="nf4")
    return layer, lambda: tensor_bytes(layer.state_dict().values())


def bnb_blockwise(bnb, linear):
    """bnb's CPU blockwise 8-bit weight format, dequantized for every call (weight-only quantization)."""
    import torch
    import bitsandbytes.functional as F

    q, state = F.quantize_blockwise(linear.weight.data)
    bias = linear.bias.data.clone()

    def forward(x):
        return torch.nn.functional.linear(x, F.dequantize_blockwise(q, state), bias)

    return forward, lambda: tensor_bytes([q, state.absmax, state.code, bias])


BNB_KINDS = [
    ("`bnb.nn.Linear8bitLt` (LLM.int8(), int8 weights, threshold 0)", bnb_int8),
    ("`bnb.nn.Linear4bit` (NF4 weights, float32 compute)", bnb_nf4),
    ("`bnb.functional.quantize_blockwise` 8-bit weights, `dequantize_blockwise` each call + torch `F.linear`",
     bnb_blockwise),
]


def time_call(fn, x, budget: float) -> float:
    """Median seconds of one call over 5 repeats, each repeat about budget / 5 long."""
    fn(x)
    t0 = time.perf_counter()
    fn(x)
    once = time.perf_counter() - t0
    reps = max(1, min(50, int(budget / 5 / max(once, 1e-6))))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(x)
        times.append((time.perf_counter() - t0) / reps)
    return float(np.median(times))


def run_bnb(bnb, sizes: Sizes) -> list:
    import torch

    from bitlayers.bitlinear import BitLinear

    torch.set_num_threads(CORES)
    torch.manual_seed(0)
    n = sizes.layer
    linear = torch.nn.Linear(n, n).eval()
    bit = BitLinear.from_linear(linear).deploy()
    bit_bytes = tensor_bytes([bit.packed_2bit, bit.weight_scale, bit.bias])
    float_bytes = tensor_bytes([linear.weight, linear.bias])

    runs, failures = [], []
    for name, build in BNB_KINDS:
        log(f"bitsandbytes: {name}")
        try:
            forward, weight_bytes = build(bnb, linear)
            with torch.no_grad():
                out = forward(torch.randn(2, n))
            if tuple(out.shape) != (2, n):
                raise RuntimeError(f"output shape {tuple(out.shape)}, expected (2, {n})")
            runs.append((name, forward, weight_bytes()))
        except Exception as error:  # a bnb kind without CPU kernels for this torch: reported, not fatal
            failures.append(f"- {name}: does not run on CPU here: {describe(error)}")

    lines = [f"{n} x {n} layer, float32 in and out, {CORES} threads (torch and the lowbit pool); median time per "
             f"call. Weight memory = weights + scales/statistics + bias.", "",
             "| layer | weight memory | batch 1 | batch 64 | BitLinear faster by (batch 1 / 64) |",
             "|---|---:|---:|---:|---:|"]
    timings = {}
    with torch.no_grad():
        for name, forward in [("BitLinear deployed (ours; I2_S 2-bit ternary, int8 activations)", bit),
                              ("torch float32 `nn.Linear` (reference)", linear)] + [(r[0], r[1]) for r in runs]:
            timings[name] = [time_call(forward, torch.randn(b, n), sizes.seconds) for b in (1, 64)]
    ours = timings["BitLinear deployed (ours; I2_S 2-bit ternary, int8 activations)"]
    memory = {"BitLinear deployed (ours; I2_S 2-bit ternary, int8 activations)": bit_bytes,
              "torch float32 `nn.Linear` (reference)": float_bytes}
    memory.update({r[0]: r[2] for r in runs})
    for name, (t1, t64) in timings.items():
        ratio = "-" if name.startswith("BitLinear") else f"{t1 / ours[0]:.1f}x / {t64 / ours[1]:.1f}x"
        lines.append(f"| {name} | {memory[name] / 2**20:.2f} MiB | {t1 * 1e6:,.0f} us | {t64 * 1e6:,.0f} us | {ratio} |")
    if failures:
        lines += ["", f"bitsandbytes {bnb.__version__} layer kinds that do not run on this CPU with torch "
                  f"{version_of('torch')}:"] + failures
    return lines


# ------------------------------------------------------------------ FFCV
class _Images:
    """(image, label) pairs for ffcv.writer.DatasetWriter."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


def run_ffcv(ffcv, photos: Photos, sizes: Sizes, workdir: Path) -> list:
    import kuat
    from bench_kuat_loader import BATCH, bench_kuat, timed_epochs
    from ffcv.fields import IntField, RGBImageField
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.writer import DatasetWriter

    images = photos.images
    archive = workdir / "photos.kuat"
    log("ffcv: converting the photographs with kuat")
    stats = kuat.convert_dataset(photos.folder, archive, width=SIZE, height=SIZE, codebook_size=CODEBOOK_SIZE)
    _, kuat_ips, kuat_threads = bench_kuat(archive, sizes.seconds)
    rows = [("Kuat `KuatDataset` (K=512, 2x2 patches)", kuat_threads, kuat_ips, archive.stat().st_size)]
    for mode, label in (("raw", "raw uint8 pixels"), ("jpg", "JPEG q90")):
        path = workdir / f"photos_{mode}.beton"
        log(f"ffcv: writing {path.name}")
        writer = DatasetWriter(str(path), {"image": RGBImageField(write_mode=mode, max_resolution=SIZE, jpeg_quality=90),
                                           "label": IntField()}, num_workers=CORES)
        writer.from_indexed_dataset(_Images(images))
        loader = Loader(str(path), batch_size=BATCH, num_workers=CORES, order=OrderOption.RANDOM, os_cache=True,
                        drop_last=False, seed=0, pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()]})

        def epoch(_):
            count = 0
            for batch_images, _labels in loader:
                count += batch_images.shape[0]
            return count

        epoch(0)  # warm: numba compiles the pipeline, the page cache fills
        done, seconds = timed_epochs(epoch, sizes.seconds)
        rows.append((f"FFCV `Loader` ({label}, `SimpleRGBImageDecoder`, os_cache)", CORES, done / seconds,
                     path.stat().st_size))
    raw_bytes = sum(im.nbytes for im in images)
    lines = [f"The same {len(images)} photographs at {SIZE}x{SIZE} (Kuat PSNR {stats['psnr']:.2f} dB), batch {BATCH}, "
             f"shuffled, uint8 NHWC out; whole epochs for at least {sizes.seconds:g} s after a warm-up epoch.", "",
             "| loader | threads / workers | img/s | file size | vs raw pixels | Kuat is |", "|---|---:|---:|---:|---:|---:|"]
    for name, threads, ips, nbytes in rows:
        ratio = "-" if name.startswith("Kuat") else f"{kuat_ips / ips:.2f}x"
        smaller = raw_bytes / nbytes
        versus = f"{smaller:.1f}x smaller" if smaller >= 1 else f"{1 / smaller:.1f}x larger"
        lines.append(f"| {name} | {threads} | {ips:,.0f} | {nbytes / 2**20:.1f} MiB | {versus} | {ratio} |")
    return lines


# ------------------------------------------------------------------ the section
@dataclass
class Baseline:
    title: str
    module: str
    dists: tuple  # the requirements-bench.txt lines it needs, for the skip note
    versions: tuple  # distributions whose versions the section states when it ran
    install_hint: str = ""  # what a failed install usually lacks


BASELINES = [
    Baseline("faiss k-means vs Kuat codebook training", "faiss", ("faiss-cpu",), ("faiss-cpu",)),
    Baseline("bitsandbytes vs BitLinear", "bitsandbytes", ("bitsandbytes",), ("bitsandbytes",)),
    Baseline("FFCV vs KuatDataset", "ffcv",
             ("ffcv", "numba", "llvmlite", "opencv-python-headless", "assertpy", "terminaltables", "tqdm"),
             ("ffcv", "numba", "opencv-python-headless"),
             "the ffcv sdist compiles against pkg-config's opencv4 and libturbojpeg "
             "(Debian: libopencv-dev libturbojpeg0-dev, which `scripts/install-deps.sh --bench` installs)"),
]


def install_failures(log_path: Path, dists) -> list:
    try:
        record = json.loads(log_path.read_text())
    except (OSError, ValueError):
        return []
    return [f"`pip install {record[d]['requirement']}` failed: {record[d]['reason']}"
            for d in dists if d in record and not record[d]["ok"]]


def import_baseline(baseline: Baseline, hidden: set):
    if baseline.module in hidden:
        raise ModuleNotFoundError(f"No module named '{baseline.module}' (hidden by --hide/{HIDE_ENV})")
    return importlib.import_module(baseline.module)


def section(args, sizes: Sizes) -> str:
    hidden = set(args.hide) | {m.strip() for m in os.environ.get(HIDE_ENV, "").split(",") if m.strip()}
    photos = Photos(sizes, Path(args.cache))
    workdir = Path(tempfile.mkdtemp(prefix="lowbit-optional-baselines-"))
    runners = {"faiss": lambda m: run_faiss(m, photos, sizes), "bitsandbytes": lambda m: run_bnb(m, sizes),
               "ffcv": lambda m: run_ffcv(m, photos, sizes, workdir)}
    body, skipped, ran = [], [], []
    for baseline in BASELINES:
        try:
            module = import_baseline(baseline, hidden)
        except Exception as error:  # not installed, or installed but unusable here (ABI, missing torch APIs)
            reasons = [f"import {baseline.module} failed: {describe(error)}"]
            failed = install_failures(Path(args.install_log), baseline.dists)
            reasons += failed + ([baseline.install_hint] if failed and baseline.install_hint else [])
            skipped.append(f"- {baseline.title}: skipped: {'; '.join(reasons)}")
            continue
        log(f"== {baseline.title}")
        try:
            lines = runners[baseline.module](module)
        except Exception as error:
            skipped.append(f"- {baseline.title}: skipped: imported, but the run failed: {describe(error)}")
            traceback.print_exc()
            continue
        ran += [f"{d} {version_of(d)}" for d in baseline.versions]
        body += [f"### {baseline.title}", ""] + lines + [""]
    shutil.rmtree(workdir, ignore_errors=True)  # the .beton files and the archive: ~200 MB in a full run

    import lowbit

    torch_version = version_of("torch")
    head = ["## Optional PyPI baselines", "",
            f"Baselines from PyPI that `make bench` tries to install (requirements-bench.txt, `pip install --no-deps`, "
            f"one at a time) and measures here when they import. {platform.processor() or platform.machine()}, {CORES} cores; "
            f"lowbit {lowbit.build_info()['version']}, numpy {np.__version__}, torch {torch_version}, "
            f"Python {platform.python_version()}.", "",
            f"Ran: {', '.join(ran) if ran else 'none'}.", ""]
    tail = (["### Skipped", ""] + skipped + [""]) if skipped else []
    mode = " --quick" if args.quick else ""
    command = [f"Command: `PYTHONPATH=python .venv/bin/python bench/bench_optional_baselines.py{mode}`"]
    return "\n".join(head + body + tail + command)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads (seconds), for the tests")
    parser.add_argument("--hide", action="append", default=[], metavar="MODULE",
                        help="treat MODULE (faiss, bitsandbytes, ffcv) as not installed")
    parser.add_argument("--install-log", default=str(INSTALL_LOG), help="the JSON written by bench/install_optional.py")
    parser.add_argument("--cache", default=None, help="folder for the generated JPEGs")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.cache is None:
        args.cache = os.path.join(tempfile.gettempdir(), f"lowbit-optional-baselines-jpegs-{sizes.images}")
    # Library chatter (tqdm bars, bnb's CUDA warnings, C-level prints) must not land in the Markdown on stdout.
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        text = section(args, sizes)
    finally:
        sys.stdout.flush()
    report.write(text + "\n")
    report.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

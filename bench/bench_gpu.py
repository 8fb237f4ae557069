"""GPU benchmark of lowbit's CUDA kernels: one table, every row against its strongest baseline here.

Run by ``make gpu-check`` (scripts/gpu-check.sh) after the build, or alone::

    python bench/bench_gpu.py [--out bench_gpu.md] [--quick]

Timing: CUDA events around each run after warm-up runs, the median of many runs; small ops are
captured in a CUDA graph and replayed, so the figure is GPU time rather than Python launch
overhead (the row says "graph" or "eager"). Bandwidth fractions are against a device-to-device
copy measured in the same run (bytes read + bytes written). Every row that cannot run here (no
GPU, no CUDA build, an API this build lacks) prints the reason instead of a figure; the table
always completes.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Callable, List, Optional, Tuple

ROWS: List[Tuple[str, str, str, str]] = []  # (benchmark, result, versus baseline, note)


def row(name: str, result: str, versus: str = "", note: str = "") -> None:
    ROWS.append((name, result, versus, note))
    print(f"  {name}: {result} {versus} {note}".rstrip(), file=sys.stderr, flush=True)  # progress


def skip(name: str, reason: str) -> None:
    row(name, "skipped", "", reason)


class Skip(Exception):
    """A row that cannot run here; the message is the reason."""


# ---- timing --------------------------------------------------------------------------------------
def time_gpu(fn: Callable[[], object], runs: int, warmup: int = 3, graph: bool = False) -> Tuple[float, str]:
    """Median seconds of ``fn`` on the current stream, by CUDA events (graph replay when asked and possible)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    how = "eager"
    call = fn
    if graph:
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs advises
                fn()
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            g.replay()
            torch.cuda.synchronize()
            call = g.replay
            how = "graph"
        except Exception as exc:  # capture unsupported for this op: time it eagerly
            how = f"eager ({type(exc).__name__} in capture)"
            torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), how


def gbps(nbytes: float, seconds: float) -> float:
    return nbytes / seconds / 1e9


# ---- rows ----------------------------------------------------------------------------------------
def machine() -> None:
    import torch

    import lowbit

    info = lowbit.build_info()
    props = torch.cuda.get_device_properties(0)
    driver = "unknown"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        driver = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else driver
    except Exception:
        pass
    row("GPU", f"{props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB",
        "", f"compute capability {props.major}.{props.minor}")
    row("Versions", f"driver {driver}, CUDA (torch) {torch.version.cuda}, torch {torch.__version__}",
        "", f"Python {platform.python_version()}, lowbit {info['version']} ({info['compiler']})")


def copy_bandwidth() -> float:
    import torch

    n = 1 << 30  # 1 GiB: far beyond the 60 MB L2
    src = torch.randint(0, 255, (n,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    t, _ = time_gpu(lambda: dst.copy_(src), runs=20)
    bw = gbps(2 * n, t)
    row("Device-to-device copy", f"{bw:.0f} GB/s", "", "1 GiB, bytes read + written: the ceiling below")
    del src, dst
    return bw


def kuat_decode(copy_bw: float, quick: bool) -> None:
    import numpy as np
    import torch

    from lowbit import _cuda_ops

    if _cuda_ops.get("kuat.decode_packed") is None:
        raise Skip("no CUDA kernel registered for kuat.decode_packed")
    from lowbit import _cuda_kernels

    fn = _cuda_kernels.kuat_decode_batch
    batch, h, w, c, patch, k, bits = 256, 224, 224, 3, 2, 65536, 16
    gh, gw = h // patch, w // patch
    gen = torch.Generator(device="cuda").manual_seed(0)
    codebook = torch.randint(0, 256, (k, patch * patch * c), dtype=torch.uint8, device="cuda", generator=gen)
    idx = torch.randint(0, k, (batch, gh * gw), dtype=torch.int64, device="cuda", generator=gen)
    # 16-bit indices pack as little-endian uint16: the packed block is their bytes.
    packed = idx.to(torch.int32).to(torch.int16).view(torch.uint8).reshape(batch, gh * gw * 2).contiguous()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    mean_t = torch.tensor(mean, device="cuda").view(1, 3, 1, 1)
    std_t = torch.tensor(std, device="cuda").view(1, 3, 1, 1)
    kw = dict(height=h, width=w, channels=c, patch=patch, index_bits=bits, layout="NCHW")
    out_u8 = torch.empty(batch, c, h, w, dtype=torch.uint8, device="cuda")
    out_f = torch.empty(batch, c, h, w, dtype=torch.float32, device="cuda")
    flag = torch.zeros(1, dtype=torch.int32, device="cuda")

    def seed_u8():  # the seed notebook: codebook[indices], reshape, permute (to NCHW, materialised)
        p = codebook[idx].reshape(batch, gh, gw, patch, patch, c)
        return p.permute(0, 1, 3, 2, 4, 5).reshape(batch, h, w, c).permute(0, 3, 1, 2).contiguous()

    def seed_float():
        return (seed_u8().float() / 255.0 - mean_t) / std_t

    ours_u8 = lambda: fn(codebook, packed, out=out_u8, error_flag=flag, **kw)  # noqa: E731
    ours_f = lambda: fn(codebook, packed, dtype=torch.float32, mean=mean, std=std, out=out_f,  # noqa: E731
                        error_flag=flag, **kw)
    # Same pixels as the seed path (checked once, untimed).
    ours_u8()
    if not torch.equal(out_u8, seed_u8()):
        raise RuntimeError("CUDA decode differs from codebook[indices] + permute")
    if int(flag.item()) != 0:
        raise RuntimeError("CUDA decode flagged an out-of-range index on valid input")
    runs = 10 if quick else 50
    for name, ours, seed, esize in (("uint8 NCHW", ours_u8, seed_u8, 1), ("float32 NCHW normalised", ours_f, seed_float, 4)):
        t, how = time_gpu(ours, runs, graph=True)
        ts, _ = time_gpu(seed, max(5, runs // 5), graph=False)
        out_bytes = batch * c * h * w * esize
        bw = gbps(out_bytes, t)
        row(f"Kuat decode 224x224 K=65536 batch 256 -> {name}",
            f"{batch / t:,.0f} img/s, {bw:.0f} GB/s out ({bw / copy_bw:.0%} of copy)",
            f"{ts / t:.1f}x vs codebook[idx]+permute ({batch / ts:,.0f} img/s)", how)


def kuat_dataset(quick: bool) -> None:
    import numpy as np
    import torch

    try:
        from kuat import KuatDataset
        from lowbit._native import kuat_loader as engine
    except ImportError as exc:
        raise Skip(f"kuat not importable: {exc}")
    params = inspect.signature(KuatDataset).parameters
    if "device" not in params:
        raise Skip("KuatDataset has no device argument in this build")
    n, h, w = (512 if quick else 2048), 224, 224
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(64, h, w, 3), dtype=np.uint8)  # a few distinct images, repeated
    images = np.ascontiguousarray(base[np.arange(n) % 64])
    labels = (np.arange(n) % 10).astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.kuat")
        engine.write_archive(path, images, labels, codebook_size=256, patch=2, training_images=16)
        ds = KuatDataset(path, batch_size=256, shuffle=True, seed=0, device="cuda")
        for _ in ds.epoch(0):  # warm-up epoch (page cache, allocator, kernels)
            pass
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        count = 0
        for batch in ds.epoch(1):
            images_out = batch["images"] if isinstance(batch, dict) else batch[0]
            count += images_out.shape[0]
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    row("KuatDataset(device='cuda') end to end", f"{count / dt:,.0f} img/s", "",
        f"{count} images 224x224 uint8 NHWC, K=256, batch 256, shuffled, wall clock")


def coset_rows(copy_bw: float, quick: bool) -> None:
    import torch

    from lowbit import _cuda_ops

    if _cuda_ops.get("coset.encode") is None or _cuda_ops.get("coset.decode") is None:
        raise Skip("no CUDA kernels registered for coset.encode / coset.decode")
    from coset import QuantizationConfig

    from lowbit import _cuda_kernels as ck

    enc, dec = ck.coset_encode, ck.coset_decode

    for lattice, q, m in (("D4", 4, 2), ("E8", 16, 1)):
        d = 4 if lattice == "D4" else 8
        n = (1 << 24 if quick else 1 << 27) // d  # 64 MiB (quick) or 512 MiB of float32 input
        # The rate-optimal scale of docs/coset.md (alpha 1/4, beta q^M about 3): most vectors retry once or twice.
        cfg = QuantizationConfig(lattice_type=lattice, q=q, M=m, beta=3.0 / q**m, alpha=0.25)
        x = torch.randn(n, d, device="cuda")
        status = ck.coset_status("cuda")
        b, t = enc(x, cfg, status=status)
        retried, _ = ck.coset_check(status, cfg, warn_overload=False)
        te, how_e = time_gpu(lambda: enc(x, cfg, status=status), runs=10 if quick else 30, graph=True)
        td, how_d = time_gpu(lambda: dec(b, t, cfg, status=status), runs=10 if quick else 30, graph=True)
        enc_bytes = n * d * 4 + n * m * d + n
        dec_bytes = n * m * d + n + n * d * 4
        label = f"Coset {lattice} q={q} M={m} float32, {n / 1e6:.0f}M vectors"
        row(f"{label}: encode", f"{n / te / 1e9:.2f} G vec/s, {gbps(enc_bytes, te):.0f} GB/s "
            f"({gbps(enc_bytes, te) / copy_bw:.0%} of copy)", "",
            f"{how_e}; {retried / n:.1%} of vectors retried")
        row(f"{label}: decode", f"{n / td / 1e9:.2f} G vec/s, {gbps(dec_bytes, td):.0f} GB/s "
            f"({gbps(dec_bytes, td) / copy_bw:.0%} of copy)", "", how_d)
        del x, b, t


def qlinear_row(quick: bool) -> None:
    import torch

    try:
        from coset import QLinear, QuantizationConfig
    except ImportError as exc:
        raise Skip(f"coset not importable: {exc}")
    fin, fout, batch = 4096, 4096, 256
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.02)
    try:
        layer = QLinear(fin, fout, cfg, quantize_weights=True).cuda()
        x = torch.randn(batch, fin, device="cuda", requires_grad=True)
        layer(x).sum().backward()
    except Exception as exc:
        raise Skip(f"QLinear does not run on CUDA in this build: {type(exc).__name__}: {str(exc)[:120]}")
    ref = torch.nn.Linear(fin, fout).cuda()

    def step(mod):
        def run():
            mod.zero_grad(set_to_none=True)
            mod(x).sum().backward()
        return run

    runs = 5 if quick else 20
    tq, _ = time_gpu(step(layer), runs)
    tl, _ = time_gpu(step(ref), runs)
    row(f"QLinear D4 q=4 M=2 {fin}x{fout} batch {batch}: forward+backward", f"{tq * 1e3:.2f} ms",
        f"{tq / tl:.1f}x the time of nn.Linear ({tl * 1e3:.2f} ms)", "eager, float32")


def bitlab_rows(quick: bool) -> None:
    import torch
    import torch.nn.functional as F

    from lowbit import _cuda_ops

    if _cuda_ops.get("bitlab.linear_int8") is None:
        raise Skip("no CUDA kernel registered for bitlab.linear_int8")
    from lowbit import _cuda_kernels

    fn = _cuda_kernels.bitlinear_int8  # the layer without the NaN check's device read
    k = n = 8192
    gen = torch.Generator(device="cuda").manual_seed(1)
    codes = torch.randint(0, 3, (n, k), dtype=torch.uint8, device="cuda", generator=gen)  # trit + 1
    c = codes.reshape(n, k // 256, 4, 64)
    packed = (c[:, :, 0] | (c[:, :, 1] << 2) | (c[:, :, 2] << 4) | (c[:, :, 3] << 6)).reshape(n, k // 4).contiguous()
    scales = torch.rand(n, device="cuda", generator=gen) + 0.5
    w_bf16 = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    runs = 20 if quick else 100
    for batch in (1, 64):
        x = torch.randn(batch, k, device="cuda", generator=gen)
        xb = x.to(torch.bfloat16)
        t, how = time_gpu(lambda: fn(x, packed, k, scales, None, "per_tensor"), runs, graph=True)
        tb, how_b = time_gpu(lambda: F.linear(xb, w_bf16), runs, graph=True)
        weight_bw = gbps(packed.numel(), t)
        row(f"BitLab W2A8 {n}x{k} batch {batch}", f"{t * 1e6:.1f} us, weights at {weight_bw:.0f} GB/s",
            f"{tb / t:.2f}x vs torch bf16 F.linear ({tb * 1e6:.1f} us)", f"{how} / {how_b}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    args = ap.parse_args()
    started = time.perf_counter()
    print("## GPU (bench/bench_gpu.py: CUDA events after warm-up, median of many runs)", flush=True)
    ready = True
    try:
        import torch

        import lowbit
    except ImportError as exc:
        skip("everything", f"import failed: {exc}")
        ready = False
    if ready and not torch.cuda.is_available():
        skip("everything", "torch sees no CUDA device")
        ready = False
    if ready and not lowbit.build_info()["cuda_compiled"]:
        skip("everything", "lowbit was built without LOWBIT_CUDA=ON")
        ready = False
    copy_bw = None
    if ready:
        steps = [("Machine", machine), ("Device-to-device copy", None),
                 ("Kuat decode", lambda: kuat_decode(copy_bw, args.quick)),
                 ("KuatDataset(device='cuda')", lambda: kuat_dataset(args.quick)),
                 ("Coset encode/decode", lambda: coset_rows(copy_bw, args.quick)),
                 ("QLinear forward+backward", lambda: qlinear_row(args.quick)),
                 ("BitLab W2A8", lambda: bitlab_rows(args.quick))]
        for name, step in steps:
            try:
                if step is None:
                    copy_bw = copy_bandwidth()
                elif copy_bw is None and name in ("Kuat decode", "Coset encode/decode"):
                    skip(name, "no copy bandwidth measured")
                else:
                    step()
            except Skip as exc:
                skip(name, str(exc))
            except Exception as exc:  # a row never stops the table
                skip(name, f"failed: {type(exc).__name__}: {str(exc)[:200]}")
                traceback.print_exc()
            finally:
                try:
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
                except Exception:
                    pass
    lines = ["| benchmark | result | versus baseline | note |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ROWS]
    lines.append("")
    lines.append(f"Command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`; "
                 f"{time.perf_counter() - started:.0f} s in all.")
    table = "\n".join(lines)
    print("\n" + table, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

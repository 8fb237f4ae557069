"""BitLab benchmark: ternary layers vs float32 (OpenBLAS, torch), sizes, and QAT accuracy.

Prints one Markdown section. Parts:
1. 4096x4096 layer, batch 1 and 64: C++ (Google Benchmark `bench_bitlab_gemm`, preset `bench`)
   ours vs OpenBLAS sgemv/sgemm; Python: deployed BitLinear (eval) vs torch float32 nn.Linear.
   Each with 1 thread and with all cores.
2. Memory and disk size of the 4096x4096 layer vs float32.
3. QAT on Fashion-MNIST: MLP 784-256-10 of BitLinear (int8 activations, per-tensor and
   per-channel) vs the same MLP in float32, same training.

Usage: python bench/bench_bitlab.py [--epochs N]   (PYTHONPATH=python for an in-tree build)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_BINARY = ROOT / "build" / "bench" / "bench" / "cpp" / "bitlab" / "bench_bitlab_gemm"
FASHION = Path("/usr/share/datasets/fashion-mnist")
SIZE = 4096
ALL_CORES = os.cpu_count() or 1


# ------------------------------------------------------------------ C++ (Google Benchmark)
def ensure_cpp_bench() -> Path:
    if not BENCH_BINARY.exists():
        subprocess.run(["cmake", "--preset", "bench"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "build/bench", "--target", "bench_bitlab_gemm", "-j", "2"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    return BENCH_BINARY


def cpp_timings(threads: int) -> dict:
    env = dict(os.environ, LOWBIT_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([str(ensure_cpp_bench()), "--benchmark_format=json", "--benchmark_min_time=0.5",
                          "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"],
                         env=env, check=True, capture_output=True, text=True).stdout
    result = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            result[b["run_name"].replace("/real_time", "")] = b["real_time"]  # microseconds
    return result


# ------------------------------------------------------------------ Python (torch)
def python_worker(threads: int) -> None:
    """Runs in a subprocess so LOWBIT_NUM_THREADS takes effect before the pool starts."""
    import torch

    from bitlayers.bitlinear import BitLinear

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    linear = torch.nn.Linear(SIZE, SIZE)
    bit = BitLinear.from_linear(linear).deploy()
    result = {}
    with torch.no_grad():
        for batch in (1, 64):
            x = torch.randn(batch, SIZE)
            for name, module in (("torch", linear), ("bitlab", bit)):
                module(x)
                times = []
                for _ in range(5):
                    reps = 20 if batch == 1 else 3
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        module(x)
                    times.append((time.perf_counter() - t0) / reps)
                result[f"{name}/{batch}"] = float(np.median(times)) * 1e6
    print(json.dumps(result))


def python_timings(threads: int) -> dict:
    env = dict(os.environ, LOWBIT_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--worker-threads", str(threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ sizes
def sizes() -> dict:
    import torch

    from bitlayers.bitlinear import BitLinear
    from bitmodels import export_bitmlp

    torch.manual_seed(0)
    linear = torch.nn.Linear(SIZE, SIZE)
    bit = BitLinear.from_linear(linear).deploy()
    float_mem = sum(p.numel() * p.element_size() for p in linear.parameters())
    bit_mem = sum(t.numel() * t.element_size() for t in (bit.packed_2bit, bit.weight_scale, bit.bias))

    def saved(module) -> int:
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        return buffer.getbuffer().nbytes

    path = ROOT / "build" / "bench_bitlab_layer.blm"
    path.parent.mkdir(exist_ok=True)
    export_bitmlp(torch.nn.Sequential(bit), path)
    file_size = path.stat().st_size
    path.unlink()
    return {"float_mem": float_mem, "bit_mem": bit_mem, "float_disk": saved(linear), "bit_disk": saved(bit),
            "blm": file_size}


# ------------------------------------------------------------------ QAT on Fashion-MNIST
def load_idx(name: str) -> np.ndarray:
    with gzip.open(FASHION / name, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def qat(epochs: int) -> list:
    import torch
    import torch.nn as nn

    from bitcore.config import BitQuantConfig
    from bitlayers.bitlinear import BitLinear
    from bitmodels import deploy_model

    torch.set_num_threads(min(2, ALL_CORES))
    x_train = torch.from_numpy(load_idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y_train = torch.from_numpy(load_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    x_test = torch.from_numpy(load_idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y_test = torch.from_numpy(load_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    def make(kind: str) -> nn.Module:
        torch.manual_seed(0)
        if kind == "float32":
            return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        config = BitQuantConfig(weight_granularity=kind, activation_dtype="int8", activation_granularity=kind)
        return nn.Sequential(BitLinear(784, 256, quant_config=config), nn.ReLU(),
                             BitLinear(256, 10, quant_config=config))

    def accuracy(model) -> float:
        with torch.no_grad():
            return float((model(x_test).argmax(1) == y_test).float().mean()) * 100

    rows = []
    for kind in ("float32", "per_tensor", "per_channel"):
        model = make(kind)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        generator = torch.Generator().manual_seed(1)
        t0 = time.perf_counter()
        for _ in range(epochs):
            model.train()
            order = torch.randperm(x_train.shape[0], generator=generator)
            for i in range(0, len(order), 128):
                idx = order[i:i + 128]
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            scheduler.step()
        train_s = time.perf_counter() - t0
        model.eval()
        acc = accuracy(model)
        deployed = accuracy(deploy_model(model)) if kind != "float32" else acc
        rows.append((kind, acc, deployed, train_s))
    return rows


# ------------------------------------------------------------------ report
def ratio(base: float, ours: float) -> str:
    return f"{base / ours:.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--worker-threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_threads:
        python_worker(args.worker_threads)
        return 0

    lines = ["## BitLab: 1.58-bit layers", ""]
    lines += [f"4096 x 4096 layer, float32 in and out; ours = full layer (int8 activation quantization, packed "
              f"ternary GEMV/GEMM, float epilogue). Median times; {ALL_CORES} cores.", ""]
    lines += ["| side | batch | threads | float32 baseline | ours (int8 act.) | speed-up | ours (float act.) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for threads in sorted({1, ALL_CORES}):
        c = cpp_timings(threads)
        for batch in (1, 64):
            base = c[f"BM_OpenBLAS_F32/{batch}"]
            ours = c[f"BM_BitLab_Int8/{batch}"]
            name = "OpenBLAS sgemv" if batch == 1 else "OpenBLAS sgemm"
            lines.append(f"| C++ vs {name} | {batch} | {threads} | {base:.0f} us | {ours:.0f} us | "
                         f"**{ratio(base, ours)}** | {c[f'BM_BitLab_F32/{batch}']:.0f} us |")
        p = python_timings(threads)
        for batch in (1, 64):
            base, ours = p[f"torch/{batch}"], p[f"bitlab/{batch}"]
            lines.append(f"| Python vs torch nn.Linear | {batch} | {threads} | {base:.0f} us | {ours:.0f} us | "
                         f"**{ratio(base, ours)}** | |")
    s = sizes()
    lines += ["", "| size of the 4096 x 4096 layer (weights + bias) | float32 | BitLab | smaller by |",
              "|---|---:|---:|---:|",
              f"| memory (deployed: I2_S256 2-bit + scales + bias) | {s['float_mem'] / 2**20:.2f} MiB | "
              f"{s['bit_mem'] / 2**20:.2f} MiB | **{s['float_mem'] / s['bit_mem']:.1f}x** |",
              f"| disk, torch.save(state_dict) (TQ1_B3 1.6-bit) | {s['float_disk'] / 2**20:.2f} MiB | "
              f"{s['bit_disk'] / 2**20:.2f} MiB | **{s['float_disk'] / s['bit_disk']:.1f}x** |",
              f"| disk, LBBITMLP file for bitlab-run | {s['float_disk'] / 2**20:.2f} MiB | "
              f"{s['blm'] / 2**20:.2f} MiB | **{s['float_disk'] / s['blm']:.1f}x** |"]
    rows = qat(args.epochs)
    base = rows[0][1]
    lines += ["", f"QAT on Fashion-MNIST (MLP 784-256-10, Adam 1e-3 cosine, batch 128, {args.epochs} epochs, "
              f"same seed and data order; test set of 10,000):", "",
              "| model | test accuracy (eval) | after deploy() (packed C++ kernel) | vs float32 | training time |",
              "|---|---:|---:|---:|---:|"]
    for kind, acc, deployed, train_s in rows:
        label = "float32 nn.Linear" if kind == "float32" else f"BitLinear int8 act., {kind}"
        lines.append(f"| {label} | {acc:.2f}% | {deployed:.2f}% | {acc - base:+.2f} pt | {train_s:.0f} s |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PyTorch backend vs the C++ core on CPU tensors, side by side in one run (issue: every device).

The pure-PyTorch backend (``lowbit.backend("torch")``) is the device-generic twin of the C++
kernels: bit-identical on CPU, and what runs on any torch device without compiled kernels. This
script times the same op on the same CPU tensors under ``"auto"`` (C++) and ``"torch"``, one
thread for both (``torch.set_num_threads(1)``, ``LOWBIT_NUM_THREADS=1``), and prints a Markdown
section. The figures are for reference: the PyTorch twin exists for devices, not for CPU speed.

Usage: ``python bench/bench_backends.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LOWBIT_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lowbit  # noqa: E402


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def best_rate(fn, items: int, seconds: float, rounds: int = 3) -> float:
    """Items per second: best of ``rounds`` rounds, each running ``fn`` for at least ``seconds``."""
    fn()  # warm-up (table builds, allocations)
    best = 0.0
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, n * items / elapsed)
    return best


def side_by_side(fn, items: int, seconds: float):
    """(C++ rate, PyTorch rate, outputs identical) for ``fn`` run under each backend."""
    with lowbit.backend("auto"):
        ref = fn()
        cpp = best_rate(fn, items, seconds)
    with lowbit.backend("torch"):
        out = fn()
        tor = best_rate(fn, items, seconds)
    return cpp, tor, _identical(ref, out)


def _identical(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


def coset_rows(seconds: float):
    import coset

    rows = []
    for name, lattice, q, m in (("D4", coset.D4Lattice(), 4, 2), ("E8", coset.E8Lattice(), 16, 1)):
        config = coset.QuantizationConfig(lattice_type=name, q=q, M=m, beta=coset.optimal_beta(name, q, m))
        n = 1 << 16  # beta: the optimal fixed scale, as in bench_coset.py
        x = torch.randn(n, config.d)
        b, t = coset.encode(x, lattice, config)
        rows.append((f"Coset encode {name} q={q} M={m}", "vectors/s",
                     *side_by_side(lambda: coset.encode(x, lattice, config), n, seconds)))
        rows.append((f"Coset decode {name} q={q} M={m}", "vectors/s",
                     *side_by_side(lambda: coset.decode(b, lattice, config, t), n, seconds)))
    return rows


def bitlab_rows(seconds: float):
    from bitcore import BitQuantConfig
    from bitlayers import BitLinear

    rows = []
    torch.manual_seed(0)
    for act in ("int8", "float32"):
        layer = BitLinear(1024, 1024, bias=True, quant_config=BitQuantConfig(activation_dtype=act))
        layer.eval()
        layer.deploy()
        for batch in (1, 64):
            x = torch.randn(batch, 1024)
            with torch.no_grad():
                rows.append((f"BitLinear 1024x1024 {act} activations, batch {batch}", "rows/s",
                             *side_by_side(lambda: layer(x), batch, seconds)))
    return rows


def kuat_rows(seconds: float):
    import kuat

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        from kuat.dataset import _engine

        images = rng.integers(0, 256, (64, 224, 224, 3), dtype=np.uint8)
        labels = np.arange(64, dtype=np.int32) % 10
        archive = str(Path(tmp) / "bench.kuat")
        _engine.write_archive(archive, images, labels, 512)
        for layout, dtype in (("NHWC", "uint8"), ("NCHW", "uint8"), ("NCHW", "float32")):
            def epoch():
                ds = kuat.KuatDataset(archive, batch_size=32, shuffle=True, layout=layout, dtype=dtype,
                                      device="cpu", num_threads=1)
                return [b["images"] for b in ds.epoch(0)]
            rows.append((f"KuatDataset(device='cpu') 224x224 {dtype} {layout}", "img/s",
                         *side_by_side(epoch, 64, seconds)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum seconds per timed round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for product, fn in (("coset", coset_rows), ("bitlab", bitlab_rows), ("kuat", kuat_rows)):
        log(f"timing {product} under both backends")
        try:
            rows += fn(args.seconds)
        except Exception as e:  # a product's API missing must not hide the others
            rows.append((f"{product}: FAILED ({type(e).__name__}: {e})", "", 0.0, 0.0, False))
    print("## PyTorch backend vs C++ on CPU tensors\n")
    print("Same inputs, one thread each (`torch.set_num_threads(1)`, `LOWBIT_NUM_THREADS=1`); best of 3 rounds "
          f"of at least {args.seconds:g} s, C++ and PyTorch timed back to back. `identical`: the two outputs "
          "are equal bit for bit. The PyTorch backend is the device-generic twin (what runs on a non-CPU "
          "device without compiled kernels), not a CPU target. Command: `python bench/bench_backends.py`.\n")
    print("| op | unit | C++ (`auto`) | PyTorch (`torch`) | C++ / PyTorch | identical |")
    print("|---|---|---:|---:|---:|:---:|")
    for name, unit, cpp, tor, same in rows:
        ratio = f"{cpp / tor:.1f}x" if tor > 0 else "-"
        print(f"| {name} | {unit} | {cpp:,.0f} | {tor:,.0f} | {ratio} | {'yes' if same else 'NO'} |")
    print()
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

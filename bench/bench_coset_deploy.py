"""Coset deployed layers: speed, memory and distortion against float32 and llama.cpp's formats.

One run, one thread, the same data for every contender:

* speed: a 4096 x 4096 PackedLinear (E8 q=16 M=1 tuned, D4 q=4 M=2) at batch 1 and 64 against
  torch float32 ``F.linear`` and the system BLAS's sgemv/sgemm through numpy (OpenBLAS here);
* memory: the deployed layer's resident bytes and its state-dict bits per weight;
* distortion: dB above the Gaussian bound D(R) = 2^(-2R) (R = bits per weight, every side byte
  counted) on N(0,1) and Laplacian weights, against the PyPI ``gguf`` package's reference
  quantizers (Q4_0, Q4_1, Q5_0, MXFP4) when it is installed;
* llama.cpp (optional): ggml's own CPU mat-mul on Q4_0, IQ4_XS and Q4_K weights (and F32) in both tables,
  through our harness bench/ggml_matmul.c built against ggml's CPU library from the llama-cpp-python
  sdist outside our tree (bench/_llama_cpp.py); IQ4_XS / Q4_K distortion comes from that build too (the
  PyPI gguf package has no reference quantizer for them). Any failure is a "skipped: <reason>" row.

    PYTHONPATH=python .venv/bin/python bench/bench_coset_deploy.py [--quick] [--speed | --rd] [--no-llama-cpp]
"""

from __future__ import annotations

import os

for _var in ("LOWBIT_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread everywhere; set before the libraries load

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
try:
    import coset  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from coset import QuantizationConfig  # noqa: E402
from coset.deploy import PackedLinear, deployable_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _llama_cpp  # noqa: E402

QUICK = "--quick" in sys.argv
N = 1024 if QUICK else 4096
GGUF_TYPES = ("Q4_0", "Q4_1", "Q5_0", "MXFP4")
GGML_TYPES = (("Q4_0", "q4_0"), ("IQ4_XS", "iq4_xs"), ("Q4_K", "q4_K"))  # (label, ggml type name)
_GGML = {}  # the harness path, or the reason it could not be built (once per run)


def ggml_harness():
    """(path to the ggml harness, "") or (None, reason it is unavailable)."""
    if not _GGML:
        if "--no-llama-cpp" in sys.argv:
            _GGML["skip"] = "--no-llama-cpp"
        else:
            try:
                _GGML["exe"] = _llama_cpp.build_ggml_harness()
            except Exception as e:  # noqa: BLE001 - any failure is a skip with its reason
                _GGML["skip"] = _llama_cpp.skip_reason(e)
    return _GGML.get("exe"), _GGML.get("skip", "")


def ggml_run(exe, w: np.ndarray, types, repeat1=0, repeat64=0):
    """{type name: (bits/weight, mse, ms batch 1, ms batch 64)} from the harness on the weight `w`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.f32"
        np.ascontiguousarray(w, dtype=np.float32).tofile(path)
        proc = subprocess.run([str(exe), str(path), str(w.shape[0]), str(w.shape[1]), str(repeat1), str(repeat64),
                               *types], check=True, capture_output=True, text=True, timeout=1800,
                              env=dict(os.environ, GGML_N_THREADS="1"))
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5:
            out[parts[0]] = tuple(float(v) for v in parts[1:])
        elif len(parts) >= 3 and parts[1] == "skipped":
            out[parts[0]] = parts[2]
    return out


def best_time(fn, repeat):
    """Best CPU time over `repeat` runs: everything runs on this one thread, so CPU time is
    per-core time, unaffected by other jobs on the machine."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def blas_name() -> str:
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    for marker, name in (("openblas", "OpenBLAS"), ("libmkl", "MKL"), ("blis", "BLIS")):
        if marker in maps:
            return name
    return "system BLAS"


def formats():
    return [("E8 q=16 M=1 (tuned, T entropy-coded)", deployable_config("E8", 16, 1), "rms"),
            ("D4 q=4 M=2 (QLinear scale)", QuantizationConfig(lattice_type="D4", q=4, M=2), "qlinear")]


def section_speed(lines):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N, N, generator=g) / math.sqrt(N)
    w_np = w.numpy()
    layers = [(label, PackedLinear.from_weight(w, None, cfg, row_scale=rs)) for label, cfg, rs in formats()]
    blas = blas_name()
    lines += [f"### Speed, {N} x {N} layer, one thread, float32 in and out (CPU time, best of several)", "",
              "| batch | torch F.linear | numpy " + blas + (" sgemv/sgemm" if blas else "") + " | "
              + " | ".join(label for label, _ in layers) + " | speed-up vs F.linear |",
              "|---:|---:|---:|" + "---:|" * len(layers) + "---|"]
    ours = {}
    for batch in (1, 64):
        x = torch.randn(batch, N, generator=g)
        x_np = x.numpy()
        repeat = 20 if batch == 1 else 3
        t_torch = best_time(lambda: F.linear(x, w), repeat)
        if batch == 1:
            t_blas = best_time(lambda: w_np @ x_np[0], repeat)
        else:
            t_blas = best_time(lambda: x_np @ w_np.T, repeat)
        times = [best_time(lambda layer=layer: layer(x), repeat) for _, layer in layers]
        ours[batch] = times
        cells = " | ".join(f"{t * 1e3:.2f} ms" for t in times)
        ratios = ", ".join(f"{t_torch / t:.2f}x" for t in times)
        lines.append(f"| {batch} | {t_torch * 1e3:.2f} ms | {t_blas * 1e3:.2f} ms | {cells} | {ratios} |")
    lines += ["", f"| {N} x {N} layer | bytes the kernels read (T bits/block) | vs float32 | resident bytes "
              "(+ saved T stream) | vs float32 | state dict bits/weight |", "|---|---:|---:|---:|---:|---:|",
              f"| float32 | {4 * N * N:,} | 1 | {4 * N * N:,} | 1 | 32 |"]
    for label, layer in layers:
        mem, res = layer.memory_bytes(), layer.resident_bytes()
        lines.append(f"| {label} | {mem:,} ({layer.t_bits}) | 1/{4 * N * N / mem:.2f} | {res:,} | "
                     f"1/{4 * N * N / res:.2f} | {layer.bits_per_weight():.3f} |")
    lines.append("")
    speed_ggml(lines, w_np, layers, ours)


def speed_ggml(lines, w_np, layers, ours):
    """llama.cpp's ggml mat-mul on the same weight and shapes; ratio = ggml time / our time (> 1: ours faster)."""
    short = [label.split(" (")[0] for label, _ in layers]
    lines += [f"### llama.cpp's ggml mat-mul on the same {N} x {N} weight, one thread (CPU time, best of several; "
              "ratio = ggml time / our time, > 1 means ours is faster)", "",
              "| ggml weight type | bits/weight | batch 1 | batch 64 | "
              + " | ".join(f"{s} vs it, batch 1 | {s} vs it, batch 64" for s in short) + " |",
              "|---|---:|---:|---:|" + "---:|---:|" * len(short)]
    exe, why = ggml_harness()
    res = {}
    if exe is not None:
        try:
            res = ggml_run(exe, w_np, [t for _, t in GGML_TYPES] + ["f32"], 20, 3)
        except Exception as e:  # noqa: BLE001
            why = _llama_cpp.skip_reason(e)
    if not res:
        lines += ["| llama.cpp ggml (skipped: " + why.replace("|", "/") + ") | - | - | - | "
                  + " | ".join("- | -" for _ in short) + " |", ""]
        return
    for label, name in GGML_TYPES + (("F32", "f32"),):
        r = res.get(name)
        if not isinstance(r, tuple):
            lines.append(f"| ggml {label} (skipped: {r or 'no output'}) | - | - | - | "
                         + " | ".join("- | -" for _ in short) + " |")
            continue
        bits, _, t1, t64 = r

        def ms(t):
            return f"{t:.2f} ms" if t == t else "wrong result"

        def ratio(t, o):
            return f"{t / (o * 1e3):.2f}x" if t == t else "-"

        ratios = " | ".join(f"{ratio(t1, ours[1][i])} | {ratio(t64, ours[64][i])}" for i in range(len(short)))
        lines.append(f"| ggml {label} | {bits:.3f} | {ms(t1)} | {ms(t64)} | {ratios} |")
    lines += ["", "ggml here: plain `ggml_mul_mat` through `ggml_graph_compute` on a CPU context (activations "
              "converted to the weight type's dot-product format inside, as in llama.cpp; each result checked "
              "against the dequantized weight, \"wrong result\" when off by over 5 %); the CPU backend's "
              "optional repacked layouts (extra buffer types used by llama.cpp's model loader on some CPUs) are "
              "not used.", ""]


def gguf_quantizers():
    try:
        from gguf import quants
        from gguf.constants import GGMLQuantizationType
    except ImportError:
        return None, "the PyPI package `gguf` is not installed (requirements-bench.txt)"
    out = []
    for name in GGUF_TYPES:
        qt = getattr(GGMLQuantizationType, name, None)
        if qt is None:
            continue
        out.append((name, qt, quants))
    return out, ""


def db_above_bound(mse: float, var: float, bits: float) -> float:
    return 10 * math.log10(mse / var * 2 ** (2 * bits))


def section_distortion(lines):
    rows, cols = (256, 1024) if QUICK else (1024, 4096)
    rng = np.random.default_rng(0)
    data = {"N(0,1)": rng.standard_normal((rows, cols)).astype(np.float32),
            "Laplacian": (rng.laplace(size=(rows, cols)) / math.sqrt(2)).astype(np.float32)}
    lines += [f"### Distortion of a {rows} x {cols} weight, dB above D(R) = 2^(-2R) (R = bits per weight, every "
              "side byte counted; lower is better)", "",
              "| format | " + " | ".join(f"{k} bits/weight | {k} dB" for k in data) + " |",
              "|---|" + "---:|---:|" * len(data)]
    best_gguf = {}
    quantizers, why = gguf_quantizers()
    if quantizers:
        for name, qt, quants in quantizers:
            cells, bits = [], None
            for key, x in data.items():
                q = quants.quantize(x, qt)
                x_hat = quants.dequantize(q, qt).reshape(x.shape)
                bits = 8.0 * q.nbytes / x.size
                db = db_above_bound(float(((x_hat - x) ** 2).mean()), float(x.var()), bits)
                cells.append(f"{bits:.3f} | {db:.2f}")
                if name != "Q5_0" and bits <= 4.5 + 1e-9:
                    best_gguf[key] = min(best_gguf.get(key, float("inf")), db)
            lines.append(f"| GGUF {name} (gguf.quants reference) | " + " | ".join(cells) + " |")
    ggml_db = distortion_ggml(lines, data)
    ours = {}
    for label, cfg, rs in formats() + [("D4 q=4 M=2 (tuned, T entropy-coded)", deployable_config("D4", 4, 2), "rms"),
                                       ("E8 q=4 M=2 (tuned)", deployable_config("E8", 4, 2), "rms")]:
        cells, bits = [], None
        for key, x in data.items():
            layer = PackedLinear.from_weight(torch.from_numpy(x), None, cfg, row_scale=rs)
            x_hat = layer.decoded_weight().numpy()
            bits = layer.bits_per_weight()
            db = db_above_bound(float(((x_hat - x) ** 2).mean()), float(x.var()), bits)
            cells.append(f"{bits:.3f} | {db:.2f}")
            ours[(label, key)] = (db, bits)
        lines.append(f"| Coset {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if quantizers:
        e8 = formats()[0][0]
        for key in data:
            db, bits = ours[(e8, key)]
            lines.append(f"- {key}: Coset E8 at {bits:.3f} bits/weight is {best_gguf[key] - db:.2f} dB closer to the "
                         f"bound than the best GGUF 4-bit format (Q4_0 / Q4_1 / MXFP4).")
    else:
        lines.append(f"- GGUF comparison skipped: {why}.")
    e8 = formats()[0][0]
    for label, _ in GGML_TYPES[1:]:
        for key in data:
            if (label, key) in ggml_db:
                db, bits = ours[(e8, key)]
                g_db, g_bits = ggml_db[(label, key)]
                lines.append(f"- {key}: Coset E8 at {bits:.3f} bits/weight is {g_db - db:.2f} dB closer to the bound "
                             f"than ggml {label} at {g_bits:.3f} bits/weight (no importance matrix).")
    lines.append("")


def distortion_ggml(lines, data):
    """Rows for IQ4_XS and Q4_K quantized by ggml itself; {(label, data key): (dB, bits)}."""
    exe, why = ggml_harness()
    got, cells = {}, {}
    if exe is not None:
        try:
            for key, x in data.items():
                res = ggml_run(exe, x, [t for _, t in GGML_TYPES[1:]])
                for label, name in GGML_TYPES[1:]:
                    r = res.get(name)
                    if isinstance(r, tuple):
                        db = db_above_bound(r[1], float(x.var()), r[0])
                        got[(label, key)] = (db, r[0])
                        cells.setdefault(label, []).append(f"{r[0]:.3f} | {db:.2f}")
        except Exception as e:  # noqa: BLE001
            why, got, cells = _llama_cpp.skip_reason(e), {}, {}
    if not got:
        lines.append("| llama.cpp ggml IQ4_XS / Q4_K (skipped: " + why.replace("|", "/") + ") | "
                     + " | ".join("- | -" for _ in data) + " |")
    for label, _ in GGML_TYPES[1:]:
        if len(cells.get(label, [])) == len(data):
            lines.append(f"| ggml {label} (llama.cpp build, no imatrix) | " + " | ".join(cells[label]) + " |")
    return got


from _fashion import FASHION, load_fashion  # noqa: E402



def section_mlp(lines):
    """Post-training quantization of the demo's MLP (784-256-10): quantize_model + deploy_model."""
    import copy

    from coset import deploy_model, quantize_model

    if not FASHION.exists():
        lines += ["### Post-training quantization of the demo MLP", "", f"Skipped: {FASHION} not found.", ""]
        return
    xtr, ytr, xte, yte = load_fashion()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    epochs = 1 if QUICK else 2
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    def accuracy(m):
        with torch.no_grad():
            return float((m(xte).argmax(1) == yte).float().mean()) * 100

    base = accuracy(model)
    rows = [("float32", base, 32.0)]
    for label, cfg, rs in formats():
        m = quantize_model(copy.deepcopy(model), cfg)
        deploy_model(m, row_scale=rs)
        bits = sum(l.bits_per_weight() * l.in_features * l.out_features for l in m if hasattr(l, "bits_per_weight"))
        bits /= sum(l.in_features * l.out_features for l in m if hasattr(l, "bits_per_weight"))
        rows.append((f"Coset {label}, deployed (C++ kernels)", accuracy(m), bits))
    lines += [f"### Post-training quantization of the demo MLP (784-256-10, Fashion-MNIST, {epochs} epochs Adam "
              "float32, then `quantize_model` + `deploy_model`, no retraining)", "",
              "| model | bits/weight | test accuracy % | vs float32 |", "|---|---:|---:|---:|"]
    for label, acc, bits in rows:
        lines.append(f"| {label} | {bits:.2f} | {acc:.2f} | {acc - base:+.2f} pt |")
    lines.append("")


def main() -> int:
    lines = ["## Coset: deployed lattice-quantized layers", "",
             f"Command: `python bench/bench_coset_deploy.py{' --quick' if QUICK else ''}`; one thread for torch, "
             "BLAS and lowbit. Ours: int8 activations (one scale per row), lattice codes decoded per row in "
             "registers / through tables, exact integer block sums, float epilogue (docs/coset.md).", ""]
    if "--rd" not in sys.argv:
        section_speed(lines)
    if "--speed" not in sys.argv:
        section_distortion(lines)
    if "--speed" not in sys.argv and "--rd" not in sys.argv:
        section_mlp(lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

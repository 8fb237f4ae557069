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

* the demo's MLP (784-256-10 on Fashion-MNIST, trained here): test accuracy after post-training
  quantization, and the relative MSE of its trained weights under our formats, the gguf package's Q4_0 /
  MXFP4 and ggml's IQ4_NL / IQ4_XS / Q4_K (every stored bit counted, padding included).

    PYTHONPATH=python .venv/bin/python bench/bench_coset_deploy.py [--quick] [--speed] [--rd] [--mlp] [--other]
        [--fused] [--no-llama-cpp]

(--speed, --stream, --rd, --mlp, --other, --fused choose sections; none: the first four. --other: the speed of deployable
formats off the two fast paths: q not a power of two, |w| > 63 on the wide int32 path. --fused: the fused
small-batch GEMV against the panel path (LOWBIT_COSET_FUSED=0) at the active SIMD level, e.g. with
LOWBIT_SIMD=avx2.)
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
SPEED_ROUNDS = 1 if QUICK else 3  # the speed section's alternating rounds (ours, then ggml)
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


def ggml_run(exe, w: np.ndarray, types, repeat1=0, repeat64=0, dump_dir=None, copies=1):
    """{type name: (bits/weight, mse, ms batch 1, ms batch 64)} from the harness on the weight `w` (or the
    harness's skip reason for that type); with `dump_dir`, the harness also writes each type's dequantized
    weight to dump_dir/<type>.f32; with `copies` > 1 it multiplies that many copies of the weight in turn
    and reports the time per copy (weights streamed from DRAM)."""
    env = dict(os.environ, GGML_N_THREADS="1", LOWBIT_GGML_COPIES=str(copies))
    if dump_dir is not None:
        env["LOWBIT_GGML_DUMP_DIR"] = str(dump_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.f32"
        np.ascontiguousarray(w, dtype=np.float32).tofile(path)
        proc = subprocess.run([str(exe), str(path), str(w.shape[0]), str(w.shape[1]), str(repeat1), str(repeat64),
                               *types], check=True, capture_output=True, text=True, timeout=1800, env=env)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5:
            out[parts[0]] = tuple(float(v) for v in parts[1:])
        elif len(parts) >= 3 and parts[1] == "skipped":
            out[parts[0]] = parts[2]
    return out


def ggml_dequantize(exe, w: np.ndarray, types):
    """{type name: (bits per stored weight of `w`, ggml's dequantized `w`)} (or the skip reason for a type)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = ggml_run(exe, w, types, dump_dir=tmp)
        out = {}
        for name in types:
            r = res.get(name, "no output")
            out[name] = r if not isinstance(r, tuple) else (
                r[0], np.fromfile(Path(tmp) / f"{name}.f32", dtype=np.float32).reshape(w.shape))
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
    """(label, config, row_scale, t_group) of the deployed formats every section shows."""
    return [("E8 q=16 M=1 (tuned, T entropy-coded)", deployable_config("E8", 16, 1), "rms", 1),
            ("D4 q=4 M=2 (QLinear scale)", QuantizationConfig(lattice_type="D4", q=4, M=2), "qlinear", 1),
            ("D4 q=4 M=2 (tuned, one T per 16 weights)", deployable_config("D4", 4, 2, t_group=4), "auto", 4)]


def tuned_d4():
    """The tuned D4 with a T per block (its error is the lowest of the D4 formats, its kernel slower)."""
    return ("D4 q=4 M=2 (tuned, T entropy-coded)", deployable_config("D4", 4, 2), "rms", 1)


def speed_formats():
    """The speed section's formats: formats() and the tuned D4 with a T per block."""
    return formats() + [tuned_d4()]


def packed(w, cfg, rs, tg):
    return PackedLinear.from_weight(w, None, cfg, row_scale=rs, t_group=tg)


def rel_mse(layer, w) -> float:
    """Relative MSE of a deployed layer's decoded weight against the float weight `w`."""
    return float(((layer.decoded_weight() - w) ** 2).mean() / (w ** 2).mean())


def section_speed(lines):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N, N, generator=g) / math.sqrt(N)
    w_np = w.numpy()
    layers = [(label, packed(w, cfg, rs, tg)) for label, cfg, rs, tg in speed_formats()]
    blas = blas_name()
    lines += [f"### Speed, {N} x {N} layer, one thread, float32 in and out (CPU time, best of several in each of "
              f"{SPEED_ROUNDS} rounds that alternate with the ggml runs below; the best round)", "",
              "| batch | torch F.linear | numpy " + blas + (" sgemv/sgemm" if blas else "") + " | "
              + " | ".join(label for label, _ in layers) + " | speed-up vs F.linear |",
              "|---:|---:|---:|" + "---:|" * len(layers) + "---|"]
    # Rounds: ours (F.linear, BLAS, every layer at batch 1 and 64), then the ggml harness, and again:
    # a shared machine's slow spells then hit both sides, and each keeps its best round.
    exe, why = ggml_harness()
    inputs = {batch: torch.randn(batch, N, generator=g) for batch in (1, 64)}
    best = {}
    ggml_res = {}
    for _ in range(SPEED_ROUNDS):
        for batch, x in inputs.items():
            x_np = x.numpy()
            repeat = 20 if batch == 1 else 3
            timed = {"torch": best_time(lambda: F.linear(x, w), repeat),
                     "blas": best_time((lambda: w_np @ x_np[0]) if batch == 1 else (lambda: x_np @ w_np.T), repeat)}
            for i, (_, layer) in enumerate(layers):
                timed[i] = best_time(lambda layer=layer: layer(x), repeat)
            for k, v in timed.items():
                best[batch, k] = min(best.get((batch, k), float("inf")), v)
        if exe is not None:
            try:
                for name, r in ggml_run(exe, w_np, [t for _, t in GGML_TYPES] + ["f32"], 20, 3).items():
                    old = ggml_res.get(name)
                    if isinstance(r, tuple) and isinstance(old, tuple):  # NaN (a wrong result) stays NaN
                        r = (r[0], r[1], *(v if v != v or o != o else min(v, o) for v, o in zip(r[2:], old[2:])))
                    ggml_res[name] = r if old is None or isinstance(r, tuple) else old
            except Exception as e:  # noqa: BLE001
                exe, why = None, _llama_cpp.skip_reason(e)
    ours = {}
    for batch in (1, 64):
        t_torch, t_blas = best[batch, "torch"], best[batch, "blas"]
        times = [best[batch, i] for i in range(len(layers))]
        ours[batch] = times
        cells = " | ".join(f"{t * 1e3:.2f} ms" for t in times)
        ratios = ", ".join(f"{t_torch / t:.2f}x" for t in times)
        lines.append(f"| {batch} | {t_torch * 1e3:.2f} ms | {t_blas * 1e3:.2f} ms | {cells} | {ratios} |")
    lines += ["", f"| {N} x {N} layer | bytes the kernels read (T bits/block) | vs float32 | resident bytes "
              "(all it holds) | vs float32 | state dict bits/weight | relative MSE of this weight |",
              "|---|---:|---:|---:|---:|---:|---:|",
              f"| float32 | {4 * N * N:,} | 1 | {4 * N * N:,} | 1 | 32 | 0 |"]
    for label, layer in layers:
        mem, res = layer.memory_bytes(), layer.resident_bytes()
        lines.append(f"| {label} | {mem:,} ({layer.t_bits}) | 1/{4 * N * N / mem:.2f} | {res:,} | "
                     f"1/{4 * N * N / res:.2f} | {layer.bits_per_weight():.3f} | {rel_mse(layer, w):.5f} |")
    lines += ["", "Speed and error go together: compare a format's speed with a ggml type's only next to both "
              "errors (the ggml table's relative MSE column, same weight).", ""]
    speed_ggml(lines, w_np, layers, ours, ggml_res, why)


STREAM_COPIES = 4 if QUICK else 16  # --stream: copies of the layer evaluated in turn


def section_stream(lines):
    """Batch 1 with the weights streamed from DRAM: STREAM_COPIES copies of the N x N layer (each its own
    memory), evaluated in turn, as a model's layers are in token-by-token decoding; ours and ggml's
    harness (LOWBIT_GGML_COPIES) alternate over rounds, each side's best round; time per layer."""
    import copy

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N, N, generator=g) / math.sqrt(N)
    w_np = w.numpy()
    specs = [f for f in speed_formats() if not f[0].startswith("E8")]
    layers = []
    for label, cfg, rs, tg in specs:
        one = packed(w, cfg, rs, tg)
        layers.append((label, [one] + [copy.deepcopy(one) for _ in range(STREAM_COPIES - 1)]))
    x = torch.randn(1, N, generator=g)
    exe, why = ggml_harness()
    best, ggml_res = {}, {}
    for _ in range(SPEED_ROUNDS):
        for label, copies in layers:
            def run(copies=copies):
                for layer in copies:
                    layer(x)
            best[label] = min(best.get(label, float("inf")), best_time(run, 5) / STREAM_COPIES)
        if exe is not None:
            try:
                for name, r in ggml_run(exe, w_np, [t for _, t in GGML_TYPES], 5, 0, copies=STREAM_COPIES).items():
                    old = ggml_res.get(name)
                    if isinstance(r, tuple) and isinstance(old, tuple):
                        r = (r[0], r[1], r[2] if r[2] != r[2] or old[2] != old[2] else min(r[2], old[2]), r[3])
                    ggml_res[name] = r if old is None or isinstance(r, tuple) else old
            except Exception as e:  # noqa: BLE001
                exe, why = None, _llama_cpp.skip_reason(e)
    mib = {label: copies[0].memory_bytes() * STREAM_COPIES / 2**20 for label, copies in layers}
    lines += [f"### Batch 1 with the weights streamed from DRAM: {STREAM_COPIES} copies of the {N} x {N} layer "
              "evaluated in turn, one thread (CPU time per layer, best of 5 in each of "
              f"{SPEED_ROUNDS} alternating rounds, the best round)", "",
              "| format | bits/weight | all copies, MiB | ms per layer |", "|---|---:|---:|---:|"]
    for label, copies in layers:
        lines.append(f"| ours: {label} | {copies[0].bits_per_weight():.3f} | {mib[label]:.0f} | "
                     f"{best[label] * 1e3:.2f} |")
    for label, name in GGML_TYPES:
        r = ggml_res.get(name)
        if isinstance(r, tuple):
            size = r[0] * N * N / 8 * STREAM_COPIES / 2**20
            t1 = f"{r[2]:.2f}" if r[2] == r[2] else "wrong result"
            lines.append(f"| ggml {label} | {r[0]:.3f} | {size:.0f} | {t1} |")
        else:
            lines.append(f"| ggml {label} (skipped: {(r or why or 'no output').replace('|', '/')}) | - | - | - |")
    lines.append("")


def section_fused(lines):
    """The fused small-batch GEMV against the panel path it replaces (``LOWBIT_COSET_FUSED=0``) at the
    active SIMD level (``LOWBIT_SIMD=avx2`` forces AVX2), and F.linear: batch 1 and 4, one thread, CPU
    time, best of several per round, rounds interleaved, best round kept."""
    import lowbit

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N, N, generator=g) / math.sqrt(N)
    layers = [(label, packed(w, cfg, rs, tg)) for label, cfg, rs, tg in speed_formats()]
    level = lowbit.simd_level()
    lines += [f"### Fused GEMV vs panel path, {N} x {N} layer, SIMD level {level}, one thread (CPU time, best of "
              "several over 3 interleaved rounds; panel = `LOWBIT_COSET_FUSED=0`)", "",
              "| batch | format (T bits/block) | F.linear | panel path | fused | fused vs panel | fused vs F.linear "
              "| panel vs F.linear | same bits |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]

    def timed(layer, x, fused):
        if fused:
            os.environ.pop("LOWBIT_COSET_FUSED", None)
        else:
            os.environ["LOWBIT_COSET_FUSED"] = "0"
        try:
            return layer(x), best_time(lambda: layer(x), 20 if x.shape[0] == 1 else 10)
        finally:
            os.environ.pop("LOWBIT_COSET_FUSED", None)

    for batch in (1, 4):
        x = torch.randn(batch, N, generator=g)
        best = {}
        same = {}
        for _ in range(3):
            best["torch"] = min(best.get("torch", float("inf")), best_time(lambda: F.linear(x, w), 20))
            for label, layer in layers:
                y_f, t_f = timed(layer, x, True)
                y_p, t_p = timed(layer, x, False)
                best[label, True] = min(best.get((label, True), float("inf")), t_f)
                best[label, False] = min(best.get((label, False), float("inf")), t_p)
                same[label] = torch.equal(y_f, y_p)
        t_torch = best["torch"]
        for label, layer in layers:
            t_f, t_p = best[label, True], best[label, False]
            lines.append(f"| {batch} | {label} ({layer.t_bits}) | {t_torch * 1e3:.2f} ms | {t_p * 1e3:.2f} ms | "
                         f"{t_f * 1e3:.2f} ms | {t_p / t_f:.2f}x | {t_torch / t_f:.2f}x | {t_torch / t_p:.2f}x | "
                         f"{'yes' if same[label] else 'NO'} |")
    lines.append("")


# Deployable formats off the two fast paths: (label, lattice, q, M); --other only.
OTHER_FORMATS = (("E8 q=4 M=2 (int8, HNLQ decode)", "E8", 4, 2), ("D4 q=3 M=2 (int8, 2-bit codes)", "D4", 3, 2),
                 ("E8 q=6 M=1 (int8, 3-bit codes)", "E8", 6, 1), ("D4 q=4 M=4 (wide int32, w up to 340)", "D4", 4, 4),
                 ("E8 q=16 M=2 (wide int32, w up to 544)", "E8", 16, 2))


def section_other(lines):
    """Every other config has a deployed form on slower paths (docs/coset.md): their speed next to
    F.linear and the fast E8 q=16 M=1 on the same weight, one thread, CPU time."""
    torch.set_num_threads(1)
    n = 1024
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, n, generator=g) / math.sqrt(n)
    layers = [("E8 q=16 M=1 (fast path)", PackedLinear.from_weight(w, None, deployable_config("E8", 16, 1),
                                                                    row_scale="rms"))]
    for label, lattice, q, m in OTHER_FORMATS:
        cfg = QuantizationConfig(lattice_type=lattice, q=q, M=m, beta=3.3 / q ** m, alpha=0.25,
                                 max_scaling_iterations=15)
        layers.append((label, PackedLinear.from_weight(w, None, cfg, row_scale="rms")))
    lines += [f"### Other deployable formats (slower paths), {n} x {n} layer, one thread (CPU time, best of "
              "several; ratio = F.linear time / ours, > 1 means ours is faster)", "",
              "| format | bits/weight | batch 1 | vs F.linear | batch 64 | vs F.linear |", "|---|---:|---:|---:|---:|---:|"]
    cells = {label: [] for label, _ in layers}
    t_ref = {}
    for batch in (1, 64):
        x = torch.randn(batch, n, generator=g)
        repeat = 10 if batch == 1 else 3
        t_ref[batch] = best_time(lambda: F.linear(x, w), repeat)
        for label, layer in layers:
            t = best_time(lambda layer=layer: layer(x), repeat)
            cells[label].append(f"{t * 1e3:.2f} ms | {t_ref[batch] / t:.2f}x")
    lines.append(f"| torch F.linear (float32) | 32 | {t_ref[1] * 1e3:.2f} ms | 1 | {t_ref[64] * 1e3:.2f} ms | 1 |")
    for label, layer in layers:
        lines.append(f"| {label} | {layer.bits_per_weight():.3f} | " + " | ".join(cells[label]) + " |")
    lines.append("")


def speed_ggml(lines, w_np, layers, ours, res, why):
    """llama.cpp's ggml mat-mul on the same weight and shapes (`res`: ggml_run's results, best of the
    rounds, or empty with the skip reason `why`); ratio = ggml time / our time (> 1: ours faster)."""
    short = [label.replace(", T entropy-coded", "") for label, _ in layers]
    lines += [f"### llama.cpp's ggml mat-mul on the same {N} x {N} weight, one thread (CPU time, best of several; "
              "ratio = ggml time / our time, > 1 means ours is faster)", "",
              "| ggml weight type | bits/weight | relative MSE of this weight | batch 1 | batch 64 | "
              + " | ".join(f"{s} vs it, batch 1 | {s} vs it, batch 64" for s in short) + " |",
              "|---|---:|---:|---:|---:|" + "---:|---:|" * len(short)]
    if not res:
        lines += ["| llama.cpp ggml (skipped: " + why.replace("|", "/") + ") | - | - | - | - | "
                  + " | ".join("- | -" for _ in short) + " |", ""]
        return
    verdicts = []
    for label, name in GGML_TYPES + (("F32", "f32"),):
        r = res.get(name)
        if not isinstance(r, tuple):
            lines.append(f"| ggml {label} (skipped: {r or 'no output'}) | - | - | - | - | "
                         + " | ".join("- | -" for _ in short) + " |")
            continue
        bits, mse, t1, t64 = r

        def ms(t):
            return f"{t:.2f} ms" if t == t else "wrong result"

        def ratio(t, o):
            return f"{t / (o * 1e3):.2f}x" if t == t else "-"

        ratios = " | ".join(f"{ratio(t1, ours[1][i])} | {ratio(t64, ours[64][i])}" for i in range(len(short)))
        rel = mse / float((w_np.astype("float64") ** 2).mean())
        lines.append(f"| ggml {label} | {bits:.3f} | {rel:.5f} | {ms(t1)} | {ms(t64)} | {ratios} |")
        verdicts.append((label, bits, rel, t1))
    lines.append("")
    w_t = torch.from_numpy(w_np)
    for i, (label, layer) in enumerate(layers):  # the target: more accurate, not larger, not slower
        ours_rel, ours_bits = rel_mse(layer, w_t), layer.bits_per_weight()
        for g_label, g_bits, g_rel, g_t1 in verdicts:
            if g_label == "F32" or g_t1 != g_t1:
                continue
            holds = ours_rel < g_rel and ours_bits <= g_bits and ours[1][i] * 1e3 <= g_t1
            lines.append(f"- {short[i]} vs ggml {g_label}: relative MSE {ours_rel:.5f} vs {g_rel:.5f}, "
                         f"{ours_bits:.3f} vs {g_bits:.3f} bits/weight, batch 1 {ours[1][i] * 1e3:.2f} vs {g_t1:.2f} "
                         f"ms: {'more accurate, no larger and no slower' if holds else 'not all three'}")
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
    for label, cfg, rs, tg in formats() + [tuned_d4(), ("E8 q=4 M=2 (tuned)", deployable_config("E8", 4, 2), "rms", 1)]:
        cells, bits = [], None
        for key, x in data.items():
            layer = packed(torch.from_numpy(x), cfg, rs, tg)
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

_MLP = {}  # the trained demo MLP, once per run


def demo_mlp():
    """The demo's float32 MLP (784-256-10, examples/demo.py) trained deterministically on Fashion-MNIST
    (seed 0, Adam 1e-3, batch 128; 1 epoch with --quick, else 2): ``(model, epochs, x_test, y_test)``,
    or None when the data set is not installed. Trained once per run, shared by the MLP sections."""
    if "model" not in _MLP:
        if not FASHION.exists():
            _MLP["model"] = None
            return None
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
        _MLP.update(model=model, epochs=epochs, xte=xte, yte=yte)
    if _MLP["model"] is None:
        return None
    return _MLP["model"], _MLP["epochs"], _MLP["xte"], _MLP["yte"]


def section_mlp(lines):
    """Post-training quantization of the demo's MLP (784-256-10): quantize_model + deploy_model."""
    import copy

    from coset import deploy_model, quantize_model

    trained = demo_mlp()
    if trained is None:
        lines += ["### Post-training quantization of the demo MLP", "", f"Skipped: {FASHION} not found.", ""]
        return
    model, epochs, xte, yte = trained

    def accuracy(m):
        with torch.no_grad():
            return float((m(xte).argmax(1) == yte).float().mean()) * 100

    base = accuracy(model)
    rows = [("float32", base, 32.0)]
    for label, cfg, rs, tg in formats():
        m = quantize_model(copy.deepcopy(model), cfg)
        deploy_model(m, row_scale=rs, t_group=tg)
        bits = sum(l.bits_per_weight() * l.in_features * l.out_features for l in m if hasattr(l, "bits_per_weight"))
        bits /= sum(l.in_features * l.out_features for l in m if hasattr(l, "bits_per_weight"))
        rows.append((f"Coset {label}, deployed (C++ kernels)", accuracy(m), bits))
    lines += [f"### Post-training quantization of the demo MLP (784-256-10, Fashion-MNIST, {epochs} epochs Adam "
              "float32, then `quantize_model` + `deploy_model`, no retraining)", "",
              "| model | bits/weight | test accuracy % | vs float32 |", "|---|---:|---:|---:|"]
    for label, acc, bits in rows:
        lines.append(f"| {label} | {bits:.2f} | {acc:.2f} | {acc - base:+.2f} pt |")
    lines.append("")


# ggml formats quantized by the llama.cpp build for the MLP's weights: (label, ggml type name, block size).
MLP_GGML = (("IQ4_NL", "iq4_nl", 32), ("IQ4_XS", "iq4_xs", 256), ("Q4_K", "q4_K", 256))
MLP_GGUF = (("Q4_0", 32), ("MXFP4", 32))  # the gguf package's reference quantizers used on the MLP


def _pad_cols(w: np.ndarray, multiple: int) -> np.ndarray:
    pad = -w.shape[1] % multiple
    return np.pad(w, ((0, 0), (0, pad))) if pad else w


def _flat_rows(w: np.ndarray, multiple: int):
    """`w` as rows of 256 values read straight through its row-major storage (blocks run across row
    ends), or None when its size is not a multiple of 256 (and of the block size)."""
    return w.reshape(-1, 256) if w.size % 256 == 0 and 256 % multiple == 0 else None


def mlp_weight_errors(weights):
    """{(format label, layout): [per layer (squared error, squared norm, stored bits) or None] or a skip
    reason}, every format applied to each weight (out x in float32) of `weights` separately."""
    results = {}
    for label, cfg, rs, tg in formats() + [tuned_d4()]:
        per = []
        for w in weights:
            layer = packed(torch.from_numpy(w), cfg, rs, tg)
            w_hat = layer.decoded_weight().numpy()
            per.append((float(((w_hat - w) ** 2).sum()), float((w * w).sum()), layer.bits_per_weight() * w.size))
        results[(f"Coset {label}", "rows as they are (784 = 98 E8 / 196 D4 blocks)")] = per
    layouts = (("rows zero-padded to a multiple of the block", _pad_cols),
               ("blocks across row ends (storage only, no mat-mul layout)", _flat_rows))
    quantizers, why = gguf_quantizers()
    gguf_types = {name: (qt, quants) for name, qt, quants in (quantizers or [])}
    for name, block in MLP_GGUF:
        for layout, arrange in layouts:
            key = (f"GGUF {name} (gguf.quants reference)", layout)
            if name not in gguf_types:
                results[key] = why or f"no {name} in the gguf package"
                continue
            qt, quants = gguf_types[name]
            per = []
            for w in weights:
                x = arrange(w, block)
                if x is None:
                    per.append(None)
                    continue
                q = quants.quantize(x, qt)
                x_hat = quants.dequantize(q, qt).reshape(x.shape)
                w_hat = x_hat[:, : w.shape[1]] if arrange is _pad_cols else x_hat.reshape(w.shape)
                per.append((float(((w_hat - w) ** 2).sum()), float((w * w).sum()), 8.0 * q.nbytes))
            results[key] = per
    exe, why = ggml_harness()
    for label, name, block in MLP_GGML:
        for layout, arrange in layouts:
            key = (f"ggml {label} (llama.cpp build, no imatrix)", layout)
            if exe is None:
                results[key] = why
                continue
            per = []
            try:
                for w in weights:
                    x = arrange(w, block)
                    if x is None:
                        per.append(None)
                        continue
                    r = ggml_dequantize(exe, x, [name])[name]
                    if not isinstance(r, tuple):
                        raise RuntimeError(f"ggml skipped {name}: {r}")
                    bits, x_hat = r
                    w_hat = x_hat[:, : w.shape[1]] if arrange is _pad_cols else x_hat.reshape(w.shape)
                    per.append((float(((w_hat - w) ** 2).sum()), float((w * w).sum()), bits * x.size))
            except Exception as e:  # noqa: BLE001 - a failed ggml call is a skip with its reason
                results[key] = _llama_cpp.skip_reason(e)
                continue
            results[key] = per
    return results


def section_mlp_weights(lines):
    """Relative MSE ||W - W^||^2 / ||W||^2 of the demo MLP's trained weights, per layer and for the whole
    model, for our deployed formats and llama.cpp's 4-bit formats, every stored bit counted."""
    trained = demo_mlp()
    title = "### Distortion on the demo MLP's trained weights"
    if trained is None:
        lines += [title, "", f"Skipped: {FASHION} not found.", ""]
        return
    model, epochs = trained[0], trained[1]
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().numpy().astype(np.float32) for m in linears]
    names = [f"fc{i + 1} ({w.shape[0]} x {w.shape[1]})" for i, w in enumerate(weights)]
    results = mlp_weight_errors(weights)
    lines += [f"{title} (784-256-10 float32 MLP, Fashion-MNIST, {epochs} epoch(s) Adam; relative MSE "
              "= ||W - W^||^2 / ||W||^2, lower is better; bits/weight = every stored bit of the layer / its real "
              "weights, padding included)", "",
              "| format | layout | " + " | ".join(f"{n} bits/weight | {n} rel. MSE" for n in names)
              + " | model bits/weight | model rel. MSE |",
              "|---|---|" + "---:|---:|" * (len(names) + 1)]
    summary = {}
    for (label, layout), per in results.items():
        if not isinstance(per, list):
            lines.append(f"| {label} (skipped: {per.replace('|', '/')}) | {layout} | "
                         + " | ".join("- | -" for _ in range(len(names) + 1)) + " |")
            continue
        cells = []
        for r, w in zip(per, weights):
            cells.append("- | -" if r is None else f"{r[2] / w.size:.3f} | {r[0] / r[1]:.5f}")
        if all(r is not None for r in per):
            err, norm, bits = (sum(r[i] for r in per) for i in range(3))
            total = (bits / sum(w.size for w in weights), err / norm)
            cells.append(f"{total[0]:.3f} | {total[1]:.5f}")
        else:
            total = None
            cells.append("- | -")
        summary[(label, layout)] = [None if r is None else (r[2] / w.size, r[0] / r[1]) for r, w in zip(per, weights)]
        summary[(label, layout)].append(total)
        lines.append(f"| {label} | {layout} | " + " | ".join(cells) + " |")
    lines.append("")
    e8 = next(k for k in summary if k[0].startswith("Coset E8"))
    for (label, layout), per in summary.items():
        if not (label.startswith("GGUF Q4_0") or label.startswith("ggml IQ4_NL")):
            continue
        for i, part in enumerate(names + ["whole model"]):
            ours, theirs = summary[e8][i], per[i]
            if ours is None or theirs is None:
                continue
            holds = ours[1] < theirs[1] and ours[0] <= theirs[0] + 1e-9
            short = "padded rows" if layout.startswith("rows zero-padded") else "blocks across rows"
            lines.append(f"- {part}: Coset E8 {ours[1]:.5f} at {ours[0]:.3f} bits/weight vs {label.split(' (')[0]} "
                         f"({short}) {theirs[1]:.5f} at {theirs[0]:.3f}: relative MSE x{ours[1] / theirs[1]:.2f}; "
                         f"target (lower error at equal or fewer bits) {'holds' if holds else 'does NOT hold'}.")
    config_bytes = PackedLinear(8, 1, formats()[0][1]).get_extra_state().numel()
    lines += ["", "Coset bits/weight are `PackedLinear.bits_per_weight()`: codes, T's Huffman stream and lengths, "
              f"the float32 row scales and the config record (`_extra_state`, {config_bytes} bytes per layer: "
              f"{8 * config_bytes / weights[-1].size:.2f} bits/weight on the last layer's {weights[-1].size:,} "
              "weights; the ggml / GGUF rows count their block bytes only, not a GGUF file's per-tensor header). "
              "The ggml formats need rows that are a multiple of "
              "their block (IQ4_NL, Q4_0, MXFP4: 32; IQ4_XS, Q4_K: 256): with 784-wide rows each row is "
              "zero-padded (to 800 or 1024) and the padded blocks are counted; the second layout reads the "
              "weight's storage straight through in rows of 256 (no padding, but blocks span two rows, which no "
              "mat-mul can use) as the formats' best case. Errors are measured on the real weights only.", ""]


def main() -> int:
    lines = ["## Coset: deployed lattice-quantized layers", "",
             f"Command: `python bench/bench_coset_deploy.py{' --quick' if QUICK else ''}`; one thread for torch, "
             "BLAS and lowbit. Ours: int8 activations (one scale per row), lattice codes decoded per row in "
             "registers / through tables, exact integer block sums, float epilogue (docs/coset.md).", ""]
    chosen = ({a for a in ("--speed", "--stream", "--rd", "--mlp", "--other", "--fused") if a in sys.argv}
              or {"--speed", "--stream", "--rd", "--mlp"})
    if "--speed" in chosen:
        section_speed(lines)
    if "--stream" in chosen:
        section_stream(lines)
    if "--rd" in chosen:
        section_distortion(lines)
    if "--mlp" in chosen:
        section_mlp(lines)
        section_mlp_weights(lines)
    if "--other" in chosen:
        section_other(lines)
    if "--fused" in chosen:
        section_fused(lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

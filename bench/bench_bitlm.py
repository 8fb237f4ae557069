"""BitLM end to end: text generation speed of the C++ runtime against PyTorch and llama.cpp.

Prints one Markdown section. One BitNet b1.58 model (random weights: speed and agreement do not
depend on training; hidden 1024, 4 layers, 16 heads / 4 KV heads, SwiGLU FFN 2816, byte vocabulary),
exported once with bitmodels.export_gguf (TQ2_0), then, greedy, a 128-byte prompt and 64 new tokens:
  * `bitlab-run generate` (our C++ runtime, packed int8 kernels, KV cache);
  * PyTorch `BitLM.generate` on the deployed model (KV cache; projections on the same C++ kernels);
  * the float32 twin in PyTorch (same shapes, nn.Linear; KV cache);
  * llama.cpp (`llama-bench` for speed, `llama-simple` for the tokens) on the same GGUF file, built
    from the PyPI llama-cpp-python sdist (its vendored llama.cpp) in a cache folder outside our tree
    ($LOWBIT_LLAMA_CPP_DIR, default ~/.cache/lowbit-bench/llama.cpp). Any failure - no network for
    the sdist, a failed build, a file llama.cpp refuses - prints "skipped: <reason>" instead.
Token agreement is reported against PyTorch's greedy tokens: ours must match all of them; llama.cpp
quantizes activations per 256-weight block (Q8_K) rather than per token, so it may diverge.
The model uses SwiGLU because the llama.cpp vendored by llama-cpp-python 0.3.36 hard-codes SiLU for
the bitnet architecture (newer builds read `bitnet.hidden_activation`).

    PYTHONPATH=python .venv/bin/python bench/bench_bitlm.py [--quick] [--no-llama-cpp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from bitmodels import BitLM, BitLMConfig, ByteTokenizer, export_gguf

ROOT = Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 1
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
LLAMA_DIR = Path(os.environ.get("LOWBIT_LLAMA_CPP_DIR", Path.home() / ".cache" / "lowbit-bench" / "llama.cpp"))
PROMPT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
          "foolishness, it was the epoch of belief")[:128]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bitlab_run() -> str:
    for c in (os.environ.get("BITLAB_RUN", ""), str(ROOT / "build" / "bench" / "apps" / "bitlab-run" / "bitlab-run"),
              str(ROOT / "build" / "dev" / "apps" / "bitlab-run" / "bitlab-run"), shutil.which("bitlab-run") or ""):
        if c and Path(c).exists():
            return c
    raise SystemExit("bench_bitlm: bitlab-run is not built")


def config(quick: bool, ternary: bool = True) -> BitLMConfig:
    if quick:
        return BitLMConfig(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=512,
                           max_position_embeddings=256, hidden_act="silu", ternary=ternary)
    return BitLMConfig(hidden_size=1024, num_layers=4, num_heads=16, num_kv_heads=4, intermediate_size=2816,
                       max_position_embeddings=512, hidden_act="silu", ternary=ternary)


def torch_generate(model, ids, n):
    """(tokens, prefill tok/s, decode tok/s) of BitLM.generate, timed as prefill + n - 1 decode steps."""
    with torch.no_grad():
        t0 = time.perf_counter()
        logits, cache = model(ids, use_cache=True)
        t1 = time.perf_counter()
        out = [int(logits[0, -1].argmax())]
        for _ in range(n - 1):
            logits, cache = model(torch.tensor([[out[-1]]]), past_key_values=cache, use_cache=True)
            out.append(int(logits[0, -1].argmax()))
        t2 = time.perf_counter()
    return out, ids.shape[1] / (t1 - t0), (n - 1) / (t2 - t1)


def ours(path, n, threads):
    r = subprocess.run([bitlab_run(), "generate", str(path), "--prompt", PROMPT, "-n", str(n), "--ids",
                        "--threads", str(threads)], capture_output=True, check=True)
    ids = [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]]
    words = r.stderr.decode().split()
    rates = [float(w.strip("(")) for w, nxt in zip(words, words[1:]) if nxt.startswith("tok/s")]
    return ids, rates[0], rates[1]


# ------------------------------------------------------------------------------------ llama.cpp
def build_llama_cpp() -> Path:
    """The llama.cpp build folder (llama-simple, llama-bench), building it on first use."""
    build = LLAMA_DIR / "build"
    if (build / "bin" / "llama-bench").exists() and (build / "bin" / "llama-simple").exists():
        return build
    LLAMA_DIR.mkdir(parents=True, exist_ok=True)
    sdists = list(LLAMA_DIR.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        log(f"bench_bitlm: downloading the {LLAMA_CPP_PYTHON} sdist into {LLAMA_DIR}")
        subprocess.run([sys.executable, "-m", "pip", "download", LLAMA_CPP_PYTHON, "--no-deps", "--no-binary",
                        ":all:", "-d", str(LLAMA_DIR)], check=True, capture_output=True, timeout=600)
        sdists = list(LLAMA_DIR.glob("llama_cpp_python-*.tar.gz"))
    src = LLAMA_DIR / "src"
    if not src.exists():
        with tarfile.open(sdists[0]) as tar, tempfile.TemporaryDirectory(dir=LLAMA_DIR) as tmp:
            tar.extractall(tmp)  # noqa: S202 - a PyPI sdist we downloaded ourselves
            vendored = next(Path(tmp).glob("*/vendor/llama.cpp"))
            shutil.move(str(vendored), str(src))
    log("bench_bitlm: building llama.cpp (llama-simple, llama-bench); a few minutes")
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DGGML_OPENMP=OFF"],
                   check=True, capture_output=True, timeout=600)
    subprocess.run(["cmake", "--build", str(build), "-j", str(CORES), "--target", "llama-simple", "llama-bench"],
                   check=True, capture_output=True, timeout=3600)
    return build


def llama_cpp(path, n, threads):
    """(generated bytes, prefill tok/s, decode tok/s) of llama.cpp on the GGUF file."""
    build = build_llama_cpp()
    simple = subprocess.run([str(build / "bin" / "llama-simple"), "-m", str(path), "-n", str(n), PROMPT],
                            capture_output=True, timeout=600)
    if simple.returncode != 0:
        raise RuntimeError("llama-simple failed: " + simple.stderr.decode(errors="replace").strip().splitlines()[-1])
    text = simple.stdout
    generated = text[text.find(PROMPT.encode()) + len(PROMPT):] if PROMPT.encode() in text else text
    bench = subprocess.run([str(build / "bin" / "llama-bench"), "-m", str(path), "-p", str(len(PROMPT)), "-n", str(n),
                            "-t", str(threads), "-r", "3", "-o", "json"], capture_output=True, timeout=1200)
    if bench.returncode != 0:
        raise RuntimeError("llama-bench failed: " + bench.stderr.decode(errors="replace").strip().splitlines()[-1])
    rows = json.loads(bench.stdout)
    pp = next(r["avg_ts"] for r in rows if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0)
    tg = next(r["avg_ts"] for r in rows if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0)
    return generated.rstrip(b"\n"), pp, tg


def agreement(a, b) -> str:
    same = 0
    for x, y in zip(a, b):
        if x != y:
            break
        same += 1
    return f"{same}/{len(b)}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a small model (for tests)")
    p.add_argument("--no-llama-cpp", action="store_true")
    args = p.parse_args()
    n = 16 if args.quick else 64
    torch.manual_seed(0)
    model = BitLM(config(args.quick)).eval()
    twin = BitLM(config(args.quick, ternary=False)).eval()
    tok = ByteTokenizer()
    prompt = torch.tensor([tok.encode(PROMPT)])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_gguf(model, Path(tmp) / "bitlm.gguf")
        size = path.stat().st_size
        model.deploy()
        # every core: the in-process kernels use lowbit's default pool, sized once per process
        for threads in (CORES,):
            torch.set_num_threads(threads)
            log(f"bench_bitlm: {threads} thread(s)")
            ref, t_pp, t_tg = torch_generate(model, prompt, n)
            _, f_pp, f_tg = torch_generate(twin, prompt, n)
            ids, o_pp, o_tg = ours(path, n, threads)
            rows.append((threads, "bitlab-run generate (ours, C++)", o_pp, o_tg, agreement(ids[prompt.shape[1]:], ref)))
            rows.append((threads, "PyTorch BitLM (deployed)", t_pp, t_tg, "reference"))
            rows.append((threads, "PyTorch float32 twin", f_pp, f_tg, "(other weights)"))
            if args.no_llama_cpp:
                continue
            try:
                text, l_pp, l_tg = llama_cpp(path, n, threads)
                rows.append((threads, "llama.cpp (TQ2_0, same file)", l_pp, l_tg,
                             agreement(list(text), [t for t in ref if t < 256]) + " bytes"))
            except Exception as e:  # noqa: BLE001 - any failure is a skip with its reason
                reason = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
                if isinstance(e, subprocess.CalledProcessError) and e.stderr:
                    reason += " - " + e.stderr.decode(errors="replace").strip().splitlines()[-1][:200]
                rows.append((threads, "llama.cpp", float("nan"), float("nan"), f"skipped: {reason}"))
                args.no_llama_cpp = True
    c = config(args.quick)
    print("## BitLM text generation (bench/bench_bitlm.py)\n")
    print(f"BitNet b1.58 decoder, random weights: hidden {c.hidden_size}, {c.num_layers} layers, {c.num_heads} heads "
          f"({c.num_kv_heads} KV), SwiGLU FFN {c.intermediate_size}, vocabulary 258 bytes; GGUF (TQ2_0) "
          f"{size / 2**20:.1f} MiB. Greedy, prompt {prompt.shape[1]} tokens, {n} new tokens, KV cache. "
          f"Agreement: leading generated tokens equal to PyTorch's.\n")
    print("| threads | runner | prefill tok/s | decode tok/s | agreement |")
    print("|---|---|---|---|---|")
    for threads, name, pp, tg, agree in rows:
        fmt = lambda v: "-" if v != v else f"{v:,.0f}"  # noqa: E731
        print(f"| {threads} | {name} | {fmt(pp)} | {fmt(tg)} | {agree} |")


if __name__ == "__main__":
    main()

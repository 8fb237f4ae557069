"""BitLM end to end: text generation speed and memory of the C++ runtime against PyTorch and llama.cpp.

Prints one Markdown section. BitNet b1.58 models (random weights: speed and agreement do not depend on
training; byte vocabulary, SwiGLU FFN) of two sizes (SIZES): "small" (hidden 1024, 4 layers, 16 heads / 4
KV heads, FFN 2816, 44M ternary weights) and "large" (hidden 2048, 4 layers, FFN 5632, 181M ternary
weights), each exported once with bitmodels.export_gguf (TQ2_0), then, greedy, a 128-byte prompt and 64
new tokens, at 1 and 2 threads:
  * `bitlab-run generate` (our C++ runtime, packed int8 kernels, KV cache), median of 3 runs;
  * PyTorch `BitLM.generate` on the deployed model (KV cache; projections on the same C++ kernels);
  * the float32 twin in PyTorch (same shapes, nn.Linear; KV cache); both PyTorch models side by side in one
    process, after a warm-up, --repeats rounds (default 3), medians: prefill and decode timed apart on the
    forward calls generate() makes, and the whole `generate(prompt, n)` call timed on its own (the end-to-end
    ratio twin / deployed, what the "PyTorch generate() at least 3x a float32 twin" target names);
  * llama.cpp (`llama-bench` for speed, `llama-simple` for the tokens) on the same GGUF file, built
    from the PyPI llama-cpp-python sdist (its vendored llama.cpp) in a cache folder outside our tree
    ($LOWBIT_LLAMA_CPP_DIR, default ~/.cache/lowbit-bench/llama.cpp; bench/_llama_cpp.py). Any failure - no network for
    the sdist, a failed build, a file llama.cpp refuses - prints "skipped: <reason>" instead.
PyTorch runs in a fresh process per thread count (LOWBIT_NUM_THREADS sizes lowbit's pool once per
process). Then the peak resident memory (the child's own ru_maxrss) of one generation, 1 thread, each in
a fresh process: ours, PyTorch deployed (built with float weights then deploy(), and loaded with
load_gguf(trainable=False), which never allocates float projection weights), the PyTorch float32
twin, a Python process with the same imports and no model (the interpreter's share), and llama-simple.
Token agreement is reported against PyTorch's greedy tokens: ours must match all of them; llama.cpp
quantizes activations per 256-weight block (Q8_K) rather than per token, so it may diverge.
The models use SwiGLU because the llama.cpp vendored by llama-cpp-python 0.3.36 hard-codes SiLU for
the bitnet architecture (newer builds read `bitnet.hidden_activation`).
Last, a trained model (section_trained: a small BitLM trained on the fortunes corpus with
examples/train_bitlm.py's loop, SwiGLU), exported once: the first 32 greedy tokens of several prompts
from PyTorch (deployed), bitlab-run and llama-simple, with PyTorch's logit margin where llama.cpp parts.

    PYTHONPATH=python .venv/bin/python bench/bench_bitlm.py [--quick] [--no-llama-cpp] [--sizes small,large]
                                                            [--threads 1,2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bitmodels import BitLM, BitLMConfig, ByteTokenizer, export_gguf, load_gguf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _llama_cpp import CORES, build_llama_cpp, log, skip_reason  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
          "foolishness, it was the epoch of belief")[:128]


def bitlab_run() -> str:
    for c in (os.environ.get("BITLAB_RUN", ""), str(ROOT / "build" / "bench" / "apps" / "bitlab-run" / "bitlab-run"),
              str(ROOT / "build" / "dev" / "apps" / "bitlab-run" / "bitlab-run"),
              str(Path(sys.executable).parent / "bitlab-run"), shutil.which("bitlab-run") or ""):
        if c and Path(c).exists():
            return c
    raise SystemExit("bench_bitlm: bitlab-run is not built")


# name: (hidden, layers, heads, KV heads, SwiGLU FFN); "large" has 181M ternary weights (the memory target's 100M+)
SIZES = {"quick": (256, 2, 4, 2, 512), "small": (1024, 4, 16, 4, 2816), "large": (2048, 4, 16, 4, 5632)}


def config(size: str, ternary: bool = True) -> BitLMConfig:
    hidden, layers, heads, kv, ffn = SIZES[size]
    return BitLMConfig(hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv, intermediate_size=ffn,
                       max_position_embeddings=512, hidden_act="silu", ternary=ternary)


def models(size: str):
    """(ternary BitLM, float32 twin), the same weights in every process (seeded)."""
    torch.manual_seed(0)
    model = BitLM(config(size)).eval()
    twin = BitLM(config(size, ternary=False)).eval()
    return model, twin


def ternary_weights(size: str) -> int:
    hidden, layers, heads, kv, ffn = SIZES[size]
    head_dim = hidden // heads
    return layers * (2 * hidden * hidden + 2 * hidden * kv * head_dim + 3 * hidden * ffn)


def torch_generate(model, ids, n):
    """(tokens, prefill tok/s, decode tok/s) of one greedy generation timed in two parts: the prompt's
    forward (prefill, the logits of the last position only, as BitLM.generate computes them) and n - 1
    one-token steps on the KV cache (decode), the forward calls BitLM.generate makes."""
    with torch.no_grad():
        t0 = time.perf_counter()
        logits, cache = model(ids, use_cache=True, logits_to_keep=1)
        t1 = time.perf_counter()
        out = [int(logits[0, -1].argmax())]
        for _ in range(n - 1):
            logits, cache = model(torch.tensor([[out[-1]]]), past_key_values=cache, use_cache=True, logits_to_keep=1)
            out.append(int(logits[0, -1].argmax()))
        t2 = time.perf_counter()
    return out, ids.shape[1] / (t1 - t0), (n - 1) / (t2 - t1)


def torch_generate_call(model, ids, n):
    """(tokens, seconds) of one end-to-end ``model.generate(ids, n)`` call (greedy, KV cache, no end token:
    exactly n new tokens), what the PyTorch target names."""
    t0 = time.perf_counter()
    out = model.generate(ids, n, eos_token_id=())
    seconds = time.perf_counter() - t0
    return out[0, ids.shape[1]:].tolist(), seconds


def torch_speed(model, twin, ids, n, repeats):
    """Both PyTorch models side by side: after a warm-up generation of each, `repeats` rounds, each
    timing the deployed model then the twin (the split prefill/decode run, then one generate() call);
    medians of the rounds. Returns the deployed model's tokens and the medians as a dict."""
    for m in (model, twin):
        m.generate(ids, min(n, 4), eos_token_id=())
    runs = {k: [] for k in ("t_pp", "t_tg", "t_gen", "f_pp", "f_tg", "f_gen")}
    ref = None
    for _ in range(repeats):
        for key, m in (("t", model), ("f", twin)):
            toks, pp, tg = torch_generate(m, ids, n)
            gen_toks, gen_s = torch_generate_call(m, ids, n)
            if key == "t":
                if gen_toks != toks:
                    raise SystemExit("bench_bitlm: BitLM.generate disagrees with its own forward calls")
                ref = toks
            runs[key + "_pp"].append(pp)
            runs[key + "_tg"].append(tg)
            runs[key + "_gen"].append(gen_s)
    return dict(ref=ref, **{k: statistics.median(v) for k, v in runs.items()})


def ours(path, n, threads, repeats=3):
    """(ids, prefill tok/s, decode tok/s) of `bitlab-run generate`: the median rates of `repeats` runs (each a
    fresh process, cold; llama-bench -r 3 averages 3 runs after a warm-up run), the ids of the first."""
    ids, pp, tg = None, [], []
    for _ in range(repeats):
        r = subprocess.run([bitlab_run(), "generate", str(path), "--prompt", PROMPT, "-n", str(n), "--ids",
                            "--threads", str(threads)], capture_output=True, check=True)
        ids = ids or [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]]
        words = r.stderr.decode().split()
        rates = [float(w.strip("(")) for w, nxt in zip(words, words[1:]) if nxt.startswith("tok/s")]
        pp.append(rates[0])
        tg.append(rates[1])
    return ids, statistics.median(pp), statistics.median(tg)


def peak_rss_mib(cmd, env=None) -> float:
    """Peak resident memory of one command in MiB, as GNU time reports it (%M: the child's own ru_maxrss;
    measured through /usr/bin/time, a small process, because a child forked straight from this Python
    process would inherit its high-water mark)."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines() or ["?"]
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {err[-1]}")
        return int(out.read().split()[-1]) / 1024.0  # KiB


def torch_worker(size: str, threads: int, n: int, what: str, repeats: int = 1) -> None:
    """In a fresh process (LOWBIT_NUM_THREADS and torch threads = threads): time or run one model.
    what = "speed": JSON of both PyTorch runners (torch_speed, `repeats` rounds); "twin" / "deployed": one
    greedy generate (for its peak memory; "deployed" builds the model with float weights and deploys it straight from training
    mode, the documented low-memory path); "gguf:PATH": the same with load_gguf(PATH, trainable=False)
    (no float projection weights at any time); "none": only the imports (the interpreter + torch baseline)."""
    torch.set_num_threads(threads)
    prompt = torch.tensor([ByteTokenizer().encode(PROMPT)])
    if what == "none":
        return
    if what.startswith("gguf:"):
        torch_generate(load_gguf(what[len("gguf:"):], trainable=False), prompt, n)
        return
    if what in ("twin", "deployed"):  # only this model in memory (its weights' values do not matter here)
        torch.manual_seed(0)
        model = BitLM(config(size, ternary=what == "deployed"))
        model = model.deploy() if what == "deployed" else model.eval()
        torch_generate(model, prompt, n)
        return
    model, twin = models(size)
    model.deploy()
    print(json.dumps(torch_speed(model, twin, prompt, n, repeats)))


def worker_cmd(size, threads, n, what, repeats=1):
    return [sys.executable, str(Path(__file__).resolve()), "--torch-worker", size, str(threads), str(n), what,
            "--repeats", str(repeats)]


def worker_env(threads):
    return dict(os.environ, LOWBIT_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))


# ------------------------------------------------------------------------------------ llama.cpp
def llama_cpp(path, n, threads):
    """(generated bytes, prefill tok/s, decode tok/s) of llama.cpp on the GGUF file."""
    build = build_llama_cpp()
    simple = subprocess.run([str(build / "bin" / "llama-simple"), "-m", str(path), "-n", str(n), PROMPT],
                            capture_output=True, timeout=600)
    if simple.returncode != 0:
        raise RuntimeError("llama-simple failed: " + simple.stderr.decode(errors="replace").strip().splitlines()[-1])
    text = simple.stdout
    generated = text[text.find(PROMPT.encode()) + len(PROMPT):] if PROMPT.encode() in text else text
    def llama_bench(*args):
        bench = subprocess.run([str(build / "bin" / "llama-bench"), "-m", str(path), *args, "-t", str(threads), "-r", "3",
                                "-o", "json"], capture_output=True, timeout=1200)
        if bench.returncode != 0:
            raise RuntimeError("llama-bench failed: " + bench.stderr.decode(errors="replace").strip().splitlines()[-1])
        return json.loads(bench.stdout)[0]["avg_ts"]

    # prefill from an empty context; decode at depth len(PROMPT), the positions ours and PyTorch decode at
    pp = llama_bench("-p", str(len(PROMPT)), "-n", "0")
    tg = llama_bench("-p", "0", "-n", str(n), "-d", str(len(PROMPT)))
    return generated.rstrip(b"\n"), pp, tg


def agreement(a, b) -> str:
    same = 0
    for x, y in zip(a, b):
        if x != y:
            break
        same += 1
    return f"{same}/{len(b)}"


def fmt(v) -> str:
    return "-" if v != v else f"{v:,.0f}"


def bench_size(size: str, n: int, threads_list, use_llama: bool, repeats: int = 3):
    """Speed rows (threads, runner, prefill, decode, generate() seconds or NaN, agreement), memory rows (runner, MiB, note), and the
    file size, for one model size; llama.cpp failures become 'skipped: <reason>' rows."""
    torch.manual_seed(0)
    model = BitLM(config(size)).eval()  # the ternary model of models(size), without its float twin
    rows, memory = [], []
    llama_error = None
    with tempfile.TemporaryDirectory() as tmp:
        path = export_gguf(model, Path(tmp) / f"bitlm-{size}.gguf")
        file_mib = path.stat().st_size / 2**20
        del model
        ref = None
        for threads in threads_list:
            log(f"bench_bitlm: {size}, {threads} thread(s)")
            r = subprocess.run(worker_cmd(size, threads, n, "speed", repeats), env=worker_env(threads), capture_output=True,
                               check=True)
            t = json.loads(r.stdout.decode().strip().splitlines()[-1])
            ref = ref or t["ref"]
            ids, o_pp, o_tg = ours(path, n, threads)
            prompt_len = len(ids) - len(t["ref"])
            nan = float("nan")
            rows.append((threads, "bitlab-run generate (ours, C++)", o_pp, o_tg, nan,
                         agreement(ids[prompt_len:], t["ref"])))
            rows.append((threads, "PyTorch BitLM (deployed)", t["t_pp"], t["t_tg"], t["t_gen"], "reference"))
            rows.append((threads, "PyTorch float32 twin", t["f_pp"], t["f_tg"], t["f_gen"], "(other weights)"))
            if not use_llama or llama_error:
                if llama_error:
                    rows.append((threads, "llama.cpp", float("nan"), float("nan"), float("nan"), f"skipped: {llama_error}"))
                continue
            try:
                text, l_pp, l_tg = llama_cpp(path, n, threads)
                rows.append((threads, "llama.cpp (TQ2_0, same file)", l_pp, l_tg, float("nan"),
                             agreement(list(text), [x for x in t["ref"] if x < 256]) + " bytes"))
            except Exception as e:  # noqa: BLE001 - any failure is a skip with its reason
                llama_error = skip_reason(e)
                rows.append((threads, "llama.cpp", float("nan"), float("nan"), float("nan"), f"skipped: {llama_error}"))
        # peak resident memory of one greedy generation (prompt + n tokens), 1 thread, fresh processes
        log(f"bench_bitlm: {size}, peak memory")
        if not Path("/usr/bin/time").exists():
            return rows, [("peak memory: skipped: /usr/bin/time (GNU time) is not installed", float("nan"))], file_mib, 0
        env = worker_env(1)
        memory.append(("bitlab-run generate (ours, TQ2_0 file)", peak_rss_mib(
            [bitlab_run(), "generate", str(path), "--prompt", PROMPT, "-n", str(n), "--threads", "1"], env)))
        base = peak_rss_mib(worker_cmd(size, 1, n, "none"), env)
        memory.append(("PyTorch BitLM built, deployed, generate",
                       peak_rss_mib(worker_cmd(size, 1, n, "deployed"), env)))
        memory.append(("PyTorch BitLM load_gguf(trainable=False), generate",
                       peak_rss_mib(worker_cmd(size, 1, n, f"gguf:{path}"), env)))
        memory.append(("PyTorch float32 twin, generate", peak_rss_mib(worker_cmd(size, 1, n, "twin"), env)))
        memory.append(("(Python + torch + bitmodels imported, no model)", base))
        if use_llama and not llama_error:
            try:
                memory.append(("llama.cpp llama-simple (TQ2_0, same file)", peak_rss_mib(
                    [str(build_llama_cpp() / "bin" / "llama-simple"), "-m", str(path), "-n", str(n), PROMPT])))
            except Exception as e:  # noqa: BLE001
                memory.append((f"llama.cpp: skipped: {skip_reason(e)}", float("nan")))
    return rows, memory, file_mib, base


# Prompts of the trained-model section (fortune-like openings; the model saw none of them whole).
TRAINED_PROMPTS = ("The ", "A man walks into a bar", "Q: What do you call", "Life is", "You will be", "Never ",
                   "If you ", "There is no", "Why do ", "It is a truth")


def trained_model(quick: bool):
    """(model, note): a BitLM trained on the fortunes corpus with examples/train_bitlm.py's data split and
    training loop (QAT, AdamW, cosine schedule, seed 0), SwiGLU (the llama.cpp of llama-cpp-python 0.3.36
    hard-codes SiLU for bitnet); or (None, reason) when the corpus is not installed."""
    import contextlib

    sys.path.insert(0, str(ROOT / "examples"))
    import train_bitlm as tb

    if not tb.FORTUNES.is_dir():
        return None, f"the fortunes corpus ({tb.FORTUNES}, Debian package fortunes-min) is not installed"
    train_bytes, _, n_entries = tb.load_corpus(tb.FORTUNES, 0)
    args = argparse.Namespace(steps=10 if quick else 300, batch=4 if quick else 16, seq_len=64 if quick else 128,
                              lr=3e-3, seed=0, eval_every=0, log_every=10**9, eval_windows=1)
    # widths multiples of 256 (TQ2_0 blocks)
    config = BitLMConfig(vocab_size=258, hidden_size=256, num_layers=1 if quick else 2, num_heads=4, num_kv_heads=2,
                         intermediate_size=256 if quick else 512, max_position_embeddings=512, hidden_act="silu")
    with contextlib.redirect_stdout(sys.stderr):  # the loop's progress lines
        model, seconds, _ = tb.train(config, torch.tensor(list(train_bytes), dtype=torch.long), args)
    note = (f"hidden {config.hidden_size}, {config.num_layers} layers, FFN {config.intermediate_size}, SwiGLU, trained "
            f"{args.steps} steps of {args.batch} x {args.seq_len} bytes on {n_entries} fortunes "
            f"(examples/train_bitlm.py's loop, seed 0, {seconds:.0f} s)")
    return model.eval(), note


def section_trained(quick: bool, use_llama: bool, n: int = 32) -> None:
    """The trained model exported with export_gguf: greedy tokens from several prompts by PyTorch (deployed
    model: the reference), bitlab-run and llama.cpp (llama-simple) on the same file."""
    print(f"### A trained model: the first {n} greedy tokens of several prompts\n")
    model, note = trained_model(quick)
    if model is None:
        print(f"skipped: {note}\n")
        return
    tok = ByteTokenizer()
    llama_error = None if use_llama else "--no-llama-cpp"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_gguf(model, Path(tmp) / "bitlm-trained.gguf")
        for prompt in (TRAINED_PROMPTS[:2] if quick else TRAINED_PROMPTS):
            prompt_ids = tok.encode(prompt)
            with torch.no_grad():
                ref = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n)[0, len(prompt_ids):].tolist()
            r = subprocess.run([bitlab_run(), "generate", str(path), "--prompt", prompt, "-n", str(n), "--ids",
                                "--threads", "1"], capture_output=True, check=True)
            ours_ids = [int(x) for x in r.stdout.rstrip(b"\n").split(b"\n")[-1].split()[1:]][len(prompt_ids):]
            llama_cell = f"skipped: {llama_error}" if llama_error else ""
            if not llama_error:
                try:
                    simple = subprocess.run([str(build_llama_cpp() / "bin" / "llama-simple"), "-m", str(path), "-n",
                                             str(n), prompt], capture_output=True, timeout=600)
                    if simple.returncode != 0:
                        raise RuntimeError("llama-simple failed: "
                                           + simple.stderr.decode(errors="replace").strip().splitlines()[-1])
                    text = simple.stdout
                    at = text.find(prompt.encode())
                    generated = text[at + len(prompt.encode()):] if at >= 0 else text
                    got = list(generated.rstrip(b"\n"))
                    llama_cell = agreement(got, [x for x in ref if x < 256]) + " bytes"
                    k = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), None)
                    if k is not None:  # how close PyTorch's own choice was there
                        with torch.no_grad():
                            logits = model(torch.tensor([prompt_ids + ref[:k]]))[0, -1]
                        llama_cell += (f" (at byte {k + 1}, PyTorch's logits of its byte and llama.cpp's differ by "
                                       f"{float(logits[ref[k]] - logits[got[k]]):.4f})")
                except Exception as e:  # noqa: BLE001 - any failure is a skip with its reason
                    llama_error = skip_reason(e)
                    llama_cell = f"skipped: {llama_error}"
            shown = tok.decode(ref).replace("\n", "\\n").replace("|", "\\|")
            rows.append(f"| {prompt!r} | {shown!r} | {agreement(ours_ids, ref)} | {llama_cell} |")
    print(f"{note}; exported with export_gguf (TQ2_0). Agreement: leading tokens equal to PyTorch's (the deployed "
          f"model, greedy); a shorter reference stopped at the end token. bitlab-run quantizes activations per token "
          f"as BitNet b1.58 and PyTorch do; llama.cpp per block of 256 values (Q8_K), so where PyTorch's best two "
          f"logits are nearly tied its greedy choice may differ, after which the texts part.\n")
    print("| prompt | PyTorch BitLM (deployed), greedy | bitlab-run generate | llama.cpp llama-simple |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a small model only (for tests)")
    p.add_argument("--no-llama-cpp", action="store_true")
    p.add_argument("--sizes", default="small,large", help="comma-separated: " + ", ".join(SIZES))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=3,
                   help="PyTorch rounds (deployed and twin side by side, after a warm-up); medians (default 3)")
    p.add_argument("--torch-worker", nargs=4, metavar=("SIZE", "THREADS", "N", "WHAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_worker:
        size, threads, n, what = args.torch_worker
        torch_worker(size, int(threads), int(n), what, args.repeats)
        return
    n = 16 if args.quick else 64
    sizes = ["quick"] if args.quick else args.sizes.split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    print("## BitLM text generation (bench/bench_bitlm.py)\n")
    print(f"BitNet b1.58 decoders, random weights, SwiGLU, vocabulary 258 bytes, exported with "
          f"bitmodels.export_gguf (TQ2_0). Greedy, prompt {len(PROMPT)} tokens, {n} new tokens, KV cache. "
          f"PyTorch runs in a fresh process per thread count (LOWBIT_NUM_THREADS and torch threads = T): after a "
          f"warm-up, {args.repeats} rounds of the deployed model and its float32 twin side by side, medians; "
          f"prefill and "
          f"decode timed on the forward calls BitLM.generate makes, and one whole `generate(prompt, {n})` call "
          f"(no end token) timed on its own, whose ratio is twin time / deployed time. "
          f"llama.cpp: llama-bench -t T -r 3, prefill `-p {len(PROMPT)} -n 0`, decode `-p 0 -n {n} -d {len(PROMPT)}` (at the "
          f"positions after the prompt, like ours). Agreement: leading generated tokens equal to PyTorch's "
          f"deployed model. Machine: {CORES} cores, shared (all runners side by side in one run).\n")
    for size in sizes:
        c = config(size)
        rows, memory, file_mib, base = bench_size(size, n, threads_list, not args.no_llama_cpp, args.repeats)
        print(f"### hidden {c.hidden_size}, {c.num_layers} layers, {c.num_heads} heads ({c.num_kv_heads} KV), "
              f"FFN {c.intermediate_size}: {ternary_weights(size) / 1e6:.0f}M ternary weights, GGUF {file_mib:.1f} MiB\n")
        print(f"| threads | runner | prefill tok/s | decode tok/s | generate() ms (prompt + {n}) | agreement |")
        print("|---|---|---|---|---|---|")
        for threads, name, pp, tg, gen, agree in rows:
            print(f"| {threads} | {name} | {fmt(pp)} | {fmt(tg)} | {fmt(gen * 1e3)} | {agree} |")
        print()
        ratio_rows = []
        for threads in threads_list:
            get = {name: (pp, tg, gen) for t, name, pp, tg, gen, _ in rows if t == threads}
            o = get.get("bitlab-run generate (ours, C++)")
            for other in ("llama.cpp (TQ2_0, same file)", "PyTorch BitLM (deployed)"):
                if o and other in get:
                    ratio_rows.append(f"| {threads} | ours / {other} | {o[0] / get[other][0]:.2f}x | "
                                      f"{o[1] / get[other][1]:.2f}x | - |")
            d, f = get.get("PyTorch BitLM (deployed)"), get.get("PyTorch float32 twin")
            if d and f:
                ratio_rows.append(f"| {threads} | PyTorch deployed / float32 twin | {d[0] / f[0]:.2f}x | "
                                  f"{d[1] / f[1]:.2f}x | {f[2] / d[2]:.2f}x |")
        print("| threads | speed ratio | prefill | decode | generate() end to end |")
        print("|---|---|---|---|---|")
        print("\n".join(ratio_rows))
        print()
        twin = next(m for name, m in memory if name.startswith("PyTorch float32 twin"))
        ours_mib = next(m for name, m in memory if name.startswith("bitlab-run"))
        print("| peak resident memory, prompt + generation, 1 thread | MiB |")
        print("|---|---|")
        for name, mib in memory:
            print(f"| {name} | {fmt(mib) if mib != mib else f'{mib:,.1f}'} |")
        print(f"\nours / float32 twin (whole process): {ours_mib / twin:.3f}; "
              f"ours / (twin - Python+torch baseline): {ours_mib / max(twin - base, 1e-9):.3f}\n")
    section_trained(args.quick, not args.no_llama_cpp)


if __name__ == "__main__":
    main()

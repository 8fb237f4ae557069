"""Train a BitNet b1.58 language model (BitLM) from scratch on English text, next to its float32 twin.

Corpus: the English fortune files of Debian's ``fortunes`` / ``fortunes-min`` packages
(/usr/share/games/fortunes; scripts/install-deps.sh installs them), nothing downloaded. Entries
are shuffled with the seed and split 90/10 into training and held-out text; tokens are UTF-8
bytes (:class:`bitmodels.ByteTokenizer`).

Both models have the same shape and see the same batches in the same order (same seed): the
ternary one trains with quantization-aware training (BitLinear, int8 per-token activations), the
twin with float32 ``nn.Linear`` projections. The script prints held-out perplexity (and bits per
byte) of both, the BitLM measured in eval mode (packed ternary kernels, as deployed), and a greedy
sample. ``--gguf PATH`` also writes the trained BitLM as a llama.cpp ``bitnet`` GGUF file.

Quality curves: ``--eval-every N`` measures held-out perplexity every N steps for each model;
``--csv PATH`` / ``--plot PATH`` write those curves (CSV rows ``model, step, tokens, bytes, ...``; a
PNG drawn with matplotlib's Agg backend). ``--big-hidden H`` (with ``--big-layers``, ``--big-ffn``,
``--big-heads``, ``--big-kv-heads``) adds a third, bigger ternary model trained with the same data,
steps and seed: the "same bytes" comparison. Its bytes as deployed (:func:`deployed_bytes`) must not
exceed the float32 twin's; the script refuses to train it otherwise.

Default run: a few minutes on 2 cores. Options: --steps, --hidden, --layers, --seq-len, --batch.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import random
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from bitmodels import AutoBitModel, BitLMConfig, ByteTokenizer, deploy_model

FORTUNES = Path("/usr/share/games/fortunes")
SKIP = {"art", "ascii-art", "translate-me"}  # pictures and non-English text


def load_corpus(root: Path, seed: int) -> Tuple[bytes, bytes, int]:
    """(train bytes, held-out bytes, number of entries) from the fortune files under ``root``."""
    if not root.is_dir():
        raise SystemExit(f"train_bitlm: {root} not found: install the Debian package 'fortunes' "
                         f"(scripts/install-deps.sh does)")
    entries: List[str] = []
    for path in sorted(root.iterdir()):
        if path.suffix in (".dat", ".u8") or path.name in SKIP or path.is_dir() or path.is_symlink():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        entries += [e.strip("\n") for e in text.split("\n%\n") if e.strip()]
    if len(entries) < 100:
        raise SystemExit(f"train_bitlm: only {len(entries)} entries under {root}")
    random.Random(seed).shuffle(entries)
    cut = len(entries) * 9 // 10
    join = lambda es: ("\n\n".join(es) + "\n\n").encode("utf-8")  # noqa: E731
    return join(entries[:cut]), join(entries[cut:]), len(entries)


def batches(data: torch.Tensor, steps: int, batch: int, seq_len: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, data.numel() - seq_len - 1, (batch,), generator=g)
        yield torch.stack([data[s:s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def perplexity(model, data: torch.Tensor, seq_len: int, max_windows: int) -> float:
    """exp(mean next-byte cross-entropy) over non-overlapping windows of the held-out bytes (eval mode)."""
    model.eval()
    n = min(max_windows, (data.numel() - 1) // seq_len)
    windows = torch.stack([data[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)])
    total, count = 0.0, 0
    for chunk in windows.split(16):
        logits = model(chunk[:, :-1])
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1), reduction="sum"))
        count += chunk[:, 1:].numel()
    return math.exp(total / count)


def deployed_bytes(model: torch.nn.Module) -> int:
    """Bytes of ``model`` as deployed: the tensors of the state dict of a deployed copy
    (:func:`bitmodels.deploy_model`), each storage counted once (a tied head shares the embedding).

    A ternary BitLM then holds each projection as TQ1_B3 trits (``ceil(N*K/5)`` uint8, 1.6 bits per
    weight) plus its float32 ``weight_scale [N]``; embeddings, head and norms stay float32 (4 bytes
    per value), exactly what ``torch.save(deploy_model(m).state_dict())`` stores (less pickle
    overhead). The float32 twin has nothing to deploy: 4 bytes per parameter.
    """
    deployed = deploy_model(copy.deepcopy(model))
    seen, total = set(), 0
    for tensor in deployed.state_dict().values():
        key = (tensor.data_ptr(), tensor.numel(), tensor.dtype)
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def train(config: BitLMConfig, data: torch.Tensor, args, held: Optional[torch.Tensor] = None):
    """Train a fresh model for ``config``; returns ``(model, train seconds, curve)``, ``curve`` a list of
    ``(step, held-out perplexity)`` measured every ``args.eval_every`` steps (0: none) on ``held``."""
    torch.manual_seed(args.seed)
    model = AutoBitModel.from_config(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    model.train()
    start, eval_seconds, curve = time.time(), 0.0, []
    for step, xy in enumerate(batches(data, args.steps, args.batch, args.seq_len, args.seed)):
        logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"  step {step:5d}  loss {float(loss):.3f}  ({time.time() - start - eval_seconds:.0f} s)", flush=True)
        done = step + 1
        if held is not None and args.eval_every and (done % args.eval_every == 0 or done == args.steps):
            t0 = time.time()
            ppl = perplexity(model, held, args.seq_len, args.eval_windows)
            model.train()
            eval_seconds += time.time() - t0
            curve.append((done, ppl))
            print(f"  step {done:5d}  held-out perplexity {ppl:.3f}", flush=True)
    return model, time.time() - start - eval_seconds, curve


def write_curves(results, args, csv_path: Optional[Path], plot_path: Optional[Path]) -> None:
    """The held-out perplexity curves of every model as CSV and/or a PNG plot (matplotlib, Agg)."""
    tokens_per_step = args.batch * args.seq_len
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["model", "hidden", "layers", "ffn", "bytes", "step", "tokens", "heldout_ppl", "bits_per_byte"])
            for name, r in results.items():
                c = r["config"]
                for step, ppl in r["curve"]:
                    w.writerow([name, c.hidden_size, c.num_layers, c.intermediate_size, r["bytes"], step,
                                step * tokens_per_step, f"{ppl:.4f}", f"{math.log2(ppl):.4f}"])
        print(f"wrote {csv_path}")
    if plot_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for name, r in results.items():
            c = r["config"]
            steps = [s for s, _ in r["curve"]]
            ax.plot(steps, [p for _, p in r["curve"]], marker="o", markersize=3,
                    label=f"{name}: hidden {c.hidden_size}, {c.num_layers} layers, ffn {c.intermediate_size}, "
                          f"{r['bytes'] / 1024:.0f} KiB")
        ax.set_xlabel(f"training step ({args.batch} x {args.seq_len} bytes each)")
        ax.set_ylabel("held-out perplexity per byte")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"BitLM vs float32 on Debian fortunes (seed {args.seed}, {args.eval_windows} held-out "
                     f"windows of {args.seq_len} bytes)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot_path, dpi=110)
        plt.close(fig)
        print(f"wrote {plot_path}")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the comparison (``argv`` as on the command line); returns ``{name: result dict}``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-windows", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=0, help="held-out perplexity every N steps (0: at the end only)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--corpus", type=Path, default=FORTUNES)
    p.add_argument("--gguf", type=Path, default=None, help="write the trained BitLM here (llama.cpp bitnet GGUF)")
    p.add_argument("--csv", type=Path, default=None, help="write the held-out perplexity curves here (CSV)")
    p.add_argument("--plot", type=Path, default=None, help="plot the held-out perplexity curves here (PNG)")
    p.add_argument("--big-hidden", type=int, default=None,
                   help="also train a bigger ternary model of this width (must fit in the float32 twin's bytes)")
    p.add_argument("--big-layers", type=int, default=None, help="layers of the bigger model (default --layers)")
    p.add_argument("--big-ffn", type=int, default=None, help="FFN width of the bigger model (default 2 x --big-hidden)")
    p.add_argument("--big-heads", type=int, default=None, help="heads of the bigger model (default --heads)")
    p.add_argument("--big-kv-heads", type=int, default=None, help="KV heads of the bigger model (default --kv-heads)")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "seq_len", "eval_windows", "log_every", "threads"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.eval_every < 0:
        p.error(f"--eval-every must be >= 0, got {args.eval_every}")
    torch.set_num_threads(args.threads)

    def config_of(hidden, layers, heads, kv_heads, ffn, ternary):
        return BitLMConfig(vocab_size=258, hidden_size=hidden, num_layers=layers, num_heads=heads,
                           num_kv_heads=kv_heads, intermediate_size=ffn,
                           max_position_embeddings=max(512, args.seq_len), ternary=ternary)

    twin_args = (args.hidden, args.layers, args.heads, args.kv_heads, args.ffn)
    runs = {"BitLM (ternary, QAT)": config_of(*twin_args, True), "float32 twin": config_of(*twin_args, False)}
    if args.big_hidden is not None:
        big = config_of(args.big_hidden, args.big_layers or args.layers, args.big_heads or args.heads,
                        args.big_kv_heads or args.kv_heads, args.big_ffn or 2 * args.big_hidden, True)
        runs["bigger BitLM, same bytes"] = big
    sizes = {name: deployed_bytes(AutoBitModel.from_config(c)) for name, c in runs.items()}
    print("bytes as deployed (ternary projections TQ1_B3 + float32 scales; float32 embeddings, head, norms):")
    for name, n in sizes.items():
        print(f"  {name:26s} {n:>10,d} bytes")
    if args.big_hidden is not None and sizes["bigger BitLM, same bytes"] > sizes["float32 twin"]:
        raise SystemExit(f"train_bitlm: the bigger BitLM takes {sizes['bigger BitLM, same bytes']:,} bytes, more "
                         f"than the float32 twin's {sizes['float32 twin']:,}: choose smaller --big-* sizes")

    train_bytes, held_bytes, n_entries = load_corpus(args.corpus, args.seed)
    train_data = torch.tensor(list(train_bytes), dtype=torch.long)
    held_data = torch.tensor(list(held_bytes), dtype=torch.long)
    print(f"corpus: {n_entries} fortunes from {args.corpus}: {len(train_bytes):,} training bytes, "
          f"{len(held_bytes):,} held-out bytes")

    results = {}
    for name, config in runs.items():
        print(f"\n{name}: {config.num_layers} layers, hidden {config.hidden_size}, ffn {config.intermediate_size}, "
              f"{args.steps} steps of {args.batch}x{args.seq_len} bytes")
        model, seconds, curve = train(config, train_data, args, held_data)
        ppl = curve[-1][1] if curve else perplexity(model, held_data, args.seq_len, args.eval_windows)
        results[name] = dict(model=model, ppl=ppl, seconds=seconds, curve=curve or [(args.steps, ppl)],
                             config=config, bytes=sizes[name])
        print(f"  held-out perplexity {ppl:.3f} ({math.log2(ppl):.3f} bits/byte), trained in {seconds:.0f} s")

    tok = ByteTokenizer()
    bit_model = results["BitLM (ternary, QAT)"]["model"]
    prompt = torch.tensor([tok.encode("The ")])
    sample = bit_model.generate(prompt, max_new_tokens=80)
    print("\nsummary (held-out perplexity per byte; uniform = 256):")
    for name, r in results.items():
        print(f"  {name:26s} {r['ppl']:8.3f}   {math.log2(r['ppl']):.3f} bits/byte   {r['bytes']:>10,d} bytes   "
              f"{r['seconds']:.0f} s")
    fp = results["float32 twin"]["ppl"]
    ratio = results["BitLM (ternary, QAT)"]["ppl"] / fp
    print(f"ternary / float32 perplexity at the same size: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%; target <= +15%)")
    if "bigger BitLM, same bytes" in results:
        big_ppl = results["bigger BitLM, same bytes"]["ppl"]
        verdict = "beats" if big_ppl < fp else "does not beat"
        print(f"bigger BitLM in {sizes['bigger BitLM, same bytes'] / sizes['float32 twin']:.2f}x the float32 twin's "
              f"bytes: {big_ppl:.3f} {verdict} the float32 twin's {fp:.3f}")
    print(f"\nBitLM greedy sample: {tok.decode(sample[0].tolist())!r}")
    write_curves(results, args, args.csv, args.plot)
    if args.gguf is not None:
        from bitmodels.gguf_io import export_gguf

        export_gguf(bit_model, args.gguf)
        print(f"wrote {args.gguf} ({args.gguf.stat().st_size:,} bytes)")
    return results


if __name__ == "__main__":
    main()

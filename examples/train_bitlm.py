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

Default run: a few minutes on 2 cores. Options: --steps, --hidden, --layers, --seq-len, --batch.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path
from typing import List, Tuple

import torch
import torch.nn.functional as F

from bitmodels import AutoBitModel, BitLMConfig, ByteTokenizer

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


def train(config: BitLMConfig, data: torch.Tensor, args) -> Tuple[torch.nn.Module, float]:
    torch.manual_seed(args.seed)
    model = AutoBitModel.from_config(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    model.train()
    start = time.time()
    for step, xy in enumerate(batches(data, args.steps, args.batch, args.seq_len, args.seed)):
        logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"  step {step:5d}  loss {float(loss):.3f}  ({time.time() - start:.0f} s)", flush=True)
    return model, time.time() - start


def main() -> None:
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
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--corpus", type=Path, default=FORTUNES)
    p.add_argument("--gguf", type=Path, default=None, help="write the trained BitLM here (llama.cpp bitnet GGUF)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    train_bytes, held_bytes, n_entries = load_corpus(args.corpus, args.seed)
    train_data = torch.tensor(list(train_bytes), dtype=torch.long)
    held_data = torch.tensor(list(held_bytes), dtype=torch.long)
    print(f"corpus: {n_entries} fortunes from {args.corpus}: {len(train_bytes):,} training bytes, "
          f"{len(held_bytes):,} held-out bytes")

    results = {}
    for name, ternary in (("BitLM (ternary, QAT)", True), ("float32 twin", False)):
        config = BitLMConfig(vocab_size=258, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                             num_kv_heads=args.kv_heads, intermediate_size=args.ffn,
                             max_position_embeddings=max(512, args.seq_len), ternary=ternary)
        print(f"\n{name}: {args.layers} layers, hidden {args.hidden}, ffn {args.ffn}, {args.steps} steps "
              f"of {args.batch}x{args.seq_len} bytes")
        model, seconds = train(config, train_data, args)
        ppl = perplexity(model, held_data, args.seq_len, args.eval_windows)
        results[name] = (model, ppl, seconds)
        print(f"  held-out perplexity {ppl:.3f} ({math.log2(ppl):.3f} bits/byte), trained in {seconds:.0f} s")

    tok = ByteTokenizer()
    bit_model = results["BitLM (ternary, QAT)"][0]
    prompt = torch.tensor([tok.encode("The ")])
    sample = bit_model.generate(prompt, max_new_tokens=80)
    print("\nsummary (held-out perplexity per byte; uniform = 256):")
    for name, (_, ppl, seconds) in results.items():
        print(f"  {name:22s} {ppl:8.3f}   {math.log2(ppl):.3f} bits/byte   {seconds:.0f} s")
    print(f"\nBitLM greedy sample: {tok.decode(sample[0].tolist())!r}")
    if args.gguf is not None:
        from bitmodels.gguf_io import export_gguf

        export_gguf(bit_model, args.gguf)
        print(f"wrote {args.gguf} ({args.gguf.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

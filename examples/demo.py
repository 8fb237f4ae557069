"""make demo: Kuat, Coset and BitLab working together on real data (Fashion-MNIST).

1. `kuat convert` the training and test sets, then `kuat info`.
2. Benchmark the Kuat loader against the raw in-memory alternative on the same data.
3. Train, from KuatDataset, a float32 MLP, a BitLinear MLP and a QLinear MLP; also a float32 MLP
   on the original images, so the cost of Kuat's compression is visible.
4. Export the BitLinear model and run it through the C++ inference CLI (bitlab-run).
5. Write demo-results/ (report.md + PNG plots).

Runs in a few minutes on 2 cores. Options: --epochs, --out, --data.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import lowbit
from bitcore.config import BitQuantConfig
from bitmodels import AutoBitModel
from bitmodels.mlp import BitMLPConfig
from bitmodels.convert import deploy_model
import coset
from coset import QLinear, QuantizationConfig
from kuat import KuatDataset

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def run(cmd: list[str]) -> str:
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"demo: command failed with exit code {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def progress(label: str, i: int, n: int, extra: str = "") -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * i / max(n, 1))
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {i}/{n} {extra}\033[K")
    if i >= n:
        sys.stderr.write("\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------
# Models: the same 784-256-10 MLP with three kinds of linear layer.

def make_mlp(kind: str) -> nn.Module:
    # Inputs arrive flattened to (B, 784) by to_input().
    if kind == "float32":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    if kind == "bitlinear":
        cfg = BitQuantConfig(activation_dtype="int8", activation_granularity="per_tensor",
                             weight_granularity="per_channel")
        return AutoBitModel.from_config(BitMLPConfig(n_layers=2, in_channels=784, hidden_dim=256, out_channels=10,
                                                     dropout=0.0, quant_config=cfg))
    if kind == "qlinear":
        cfg = QuantizationConfig(lattice_type="D4", q=4, M=2)
        return nn.Sequential(QLinear(784, 256, cfg, quantize_weights=True), nn.ReLU(),
                             QLinear(256, 10, cfg, quantize_weights=True))
    raise ValueError(kind)


def to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).reshape(images.shape[0], -1).float().div_(255.0)


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(to_input(images)).argmax(1).numpy()
    return float((pred == labels).mean())


def train(model: nn.Module, batches, epochs: int, test_images, test_labels, label: str) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    accuracy = []
    for epoch in range(epochs):
        model.train()
        epoch_batches = list(batches(epoch))
        for i, (x, y) in enumerate(epoch_batches):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            progress(f"{label} epoch {epoch + 1}/{epochs}", i + 1, len(epoch_batches), f"loss {loss.item():.3f}")
        accuracy.append(evaluate(model, test_images, test_labels))
        print(f"  {label:<22} epoch {epoch + 1}: test accuracy {accuracy[-1]:.4f}", flush=True)
    return accuracy


def kuat_batches(dataset: KuatDataset):
    def epoch(n: int):
        for batch in dataset.epoch(n):
            yield to_input(batch["images"]), torch.from_numpy(batch["labels"]).long()
    return epoch


def raw_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    def epoch(n: int):
        order = np.random.default_rng(seed + n).permutation(len(images))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield to_input(images[idx]), torch.from_numpy(labels[idx].astype(np.int64))
    return epoch


def deployed(model: nn.Module, kind: str) -> nn.Module:
    """The model as it would ship: BitLinear layers keep only their packed ternary weights, QLinear
    layers only their packed lattice codes, row scales and T (coset.deploy_model)."""
    model = copy.deepcopy(model).eval()
    if kind == "bitlinear":
        deploy_model(model)
    if kind == "qlinear":
        coset.deploy_model(model)
    return model


def model_bytes(model: nn.Module, kind: str) -> int:
    """Bytes of the weights as stored: float32 parameters; the deployed state dict otherwise
    (BitLinear: packed 1.6-bit weights and scales; QLinear: packed lattice codes, row scales and
    Huffman-coded T), biases and torch.save overhead included."""
    if kind == "float32":
        return sum(p.numel() * 4 for p in model.parameters())
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def eval_speed(model: nn.Module, images: np.ndarray, batch: int) -> float:
    """Images per second of the eval forward pass at a given batch size (median of 7 runs)."""
    x = to_input(images[:batch])
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(7):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return len(x) / float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("demo-results"))
    parser.add_argument("--data", type=Path, default=FASHION)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    info = lowbit.build_info()
    print(f"lowbit {info['version']}: SIMD {info['simd_selected']}, {info['num_threads']} threads, "
          f"CUDA compiled: {info['cuda_compiled']}")

    # 1. Convert ---------------------------------------------------------------------------------
    step("1. kuat convert: Fashion-MNIST -> .kuat archives")
    train_kuat, test_kuat = out / "fashion-train.kuat", out / "fashion-test.kuat"
    run([tool("kuat"), "convert", str(args.data / "train-images-idx3-ubyte.gz"), str(train_kuat),
         "--format", "idx", "--codebook-size", "512", "--bits", "8"])
    run([tool("kuat"), "convert", str(args.data / "t10k-images-idx3-ubyte.gz"), str(test_kuat),
         "--format", "idx", "--codebook", str(train_kuat)])
    info_text = run([tool("kuat"), "info", str(train_kuat)])
    train_meta = json.loads(run([tool("kuat"), "info", "--json", str(train_kuat)]))

    train_images = read_idx(args.data / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(args.data / "train-labels-idx1-ubyte.gz").astype(np.int64)
    test_images = read_idx(args.data / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(args.data / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    raw_bytes = train_images.nbytes + train_labels.size
    kuat_size = train_kuat.stat().st_size

    # The test set as the models see it after Kuat compression.
    from kuat import KuatArchive
    test_archive = KuatArchive(str(test_kuat))
    test_batch = test_archive.get_batch(np.arange(len(test_archive)))
    test_kuat_images = test_batch["images"].reshape(len(test_archive), 28, 28)
    test_kuat_labels = test_batch["labels"].astype(np.int64)
    assert np.array_equal(test_kuat_labels, test_labels), "archive labels differ from the IDX labels"

    # 2. Loader benchmark ------------------------------------------------------------------------
    step("2. Loader throughput: KuatDataset vs raw in-memory uint8 gather (same shuffled batches)")
    bs = 256
    ds = KuatDataset(str(train_kuat), batch_size=bs, shuffle=True, seed=0)
    for _ in ds.epoch(0):
        pass
    t0 = time.perf_counter()
    n = sum(len(b["labels"]) for b in ds.epoch(1))
    kuat_ips = n / (time.perf_counter() - t0)
    order = np.random.default_rng(1).permutation(len(train_images))
    t0 = time.perf_counter()
    for i in range(0, len(order), bs):
        idx = np.sort(order[i:i + bs])
        train_images[idx], train_labels[idx]
    raw_ips = len(order) / (time.perf_counter() - t0)
    print(f"  KuatDataset : {kuat_ips:12,.0f} images/s  (archive {kuat_size / 1e6:.2f} MB)")
    print(f"  raw gather  : {raw_ips:12,.0f} images/s  (raw {raw_bytes / 1e6:.2f} MB in memory)")
    print(f"  ratio       : {kuat_ips / raw_ips:.2f}x raw speed at {raw_bytes / kuat_size:.1f}x smaller")

    # 3. Training --------------------------------------------------------------------------------
    step(f"3. Training 784-256-10 MLPs for {args.epochs} epochs")
    results = {}
    train_ds = KuatDataset(str(train_kuat), batch_size=128, shuffle=True, seed=42)
    for kind in ("float32", "bitlinear", "qlinear"):
        model = make_mlp(kind)
        acc = train(model, kuat_batches(train_ds), args.epochs, test_kuat_images, test_kuat_labels, f"{kind} (kuat)")
        results[kind] = {"model": model, "accuracy": acc}
    model = make_mlp("float32")
    acc = train(model, raw_batches(train_images, train_labels, 128, 42), args.epochs, test_images, test_labels,
                "float32 (original)")
    results["float32-original"] = {"model": model, "accuracy": acc}

    rows = []
    for kind, r in results.items():
        base_kind = "float32" if kind.startswith("float32") else kind
        images = test_images if kind == "float32-original" else test_kuat_images
        shipped = deployed(r["model"], base_kind)
        if base_kind == "bitlinear":  # the deployed (packed) model must still score the same
            assert evaluate(shipped, images, test_kuat_labels) == r["accuracy"][-1]
        if base_kind == "qlinear":  # deployed layers quantize activations to int8: report the agreement
            with torch.no_grad():
                x = to_input(images)
                agree = float((shipped(x).argmax(1) == r["model"].eval()(x).argmax(1)).float().mean())
            print(f"  qlinear deployed: accuracy {evaluate(shipped, images, test_kuat_labels):.4f} "
                  f"(QAT model {r['accuracy'][-1]:.4f}), same prediction on {agree:.2%} of the test images")
        rows.append({
            "model": kind + (" (deployed)" if base_kind == "qlinear" else ""),
            "data": "original" if kind == "float32-original" else "kuat",
            "accuracy": evaluate(shipped, images, test_kuat_labels) if base_kind == "qlinear" else r["accuracy"][-1],
            "bytes": model_bytes(shipped, base_kind),
            "eval_ips_1": eval_speed(shipped, images, 1),
            "eval_ips_1024": eval_speed(shipped, images, 1024),
        })
    print(f"\n  {'model':<18} {'data':<9} {'test acc':>9} {'size (bytes)':>13} {'img/s @1':>10} {'img/s @1024':>12}")
    for row in rows:
        print(f"  {row['model']:<18} {row['data']:<9} {row['accuracy']:>9.4f} {row['bytes']:>13,} "
              f"{row['eval_ips_1']:>10,.0f} {row['eval_ips_1024']:>12,.0f}")

    # 4. C++ inference ---------------------------------------------------------------------------
    step("4. Export the BitLinear model and run it with the C++ CLI (bitlab-run)")
    from bitmodels.export import export_bitmlp
    bit_model = results["bitlinear"]["model"]
    bit_model.eval()
    model_file = out / "fashion-bitmlp.bitlab"
    export_bitmlp(bit_model, model_file)
    sample = to_input(test_kuat_images[:1000]).numpy()
    input_file = out / "inputs.npy"
    np.save(input_file, sample)
    cpp_out = out / "cpp-logits.npy"
    run([tool("bitlab-run"), str(model_file), str(input_file), "-o", str(cpp_out), "--quiet"])
    with torch.no_grad():
        py_logits = bit_model(torch.from_numpy(sample)).numpy()
    cpp_logits = np.load(cpp_out)
    same_pred = bool(np.array_equal(py_logits.argmax(1), cpp_logits.argmax(1)))
    bit_identical = bool(np.array_equal(py_logits, cpp_logits))
    print(f"  predictions identical: {same_pred}; logits bit-identical: {bit_identical}")

    # 5. Report ----------------------------------------------------------------------------------
    step("5. Writing demo-results/")
    write_report(out, rows, results, info_text, train_meta, kuat_ips, raw_ips, raw_bytes, kuat_size,
                 same_pred, bit_identical, args.epochs)
    print(f"  wrote {out / 'report.md'}, {out / 'accuracy.png'}, {out / 'size_speed.png'}")
    return 0 if (same_pred and bit_identical) else 1


def write_report(out, rows, results, info_text, meta, kuat_ips, raw_ips, raw_bytes, kuat_size, same_pred,
                 bit_identical, epochs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, r in results.items():
        ax.plot(range(1, epochs + 1), [100 * a for a in r["accuracy"]], marker="o", label=kind)
    ax.set_xlabel("epoch")
    ax.set_xticks(range(1, epochs + 1))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST, 784-256-10 MLP")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    names = [r["model"] for r in rows]
    a1.bar(names, [r["bytes"] / 1024 for r in rows], color="#4c72b0")
    a1.set_ylabel("model size (KiB)")
    a1.tick_params(axis="x", rotation=30)
    a2.bar(names, [r["eval_ips_1024"] for r in rows], color="#dd8452")
    a2.set_ylabel("eval images/s (batch 1024)")
    a2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "size_speed.png", dpi=120)
    plt.close(fig)

    lines = [
        "# lowbit demo: Fashion-MNIST through Kuat, Coset and BitLab",
        "",
        f"Machine: {os.cpu_count()} cores; lowbit {lowbit.__version__}; torch {torch.__version__}.",
        "",
        "## Kuat archive",
        "",
        "```",
        info_text.strip(),
        "```",
        "",
        f"Raw training set {raw_bytes:,} bytes, archive {kuat_size:,} bytes "
        f"({raw_bytes / kuat_size:.1f}x smaller).",
        "",
        "## Loader throughput (batch 256, shuffled)",
        "",
        "| loader | images/s |",
        "|---|---:|",
        f"| KuatDataset | {kuat_ips:,.0f} |",
        f"| raw in-memory uint8 gather | {raw_ips:,.0f} |",
        f"| ratio | {kuat_ips / raw_ips:.2f}x |",
        "",
        f"## Models ({epochs} epochs, Adam, batch 128)",
        "",
        "Sizes are the weights as shipped: float32 parameters; the deployed BitLinear state dict "
        "(packed ternary weights); the deployed QLinear state dict (packed lattice codes, row scales, "
        "Huffman-coded T, biases; `coset.deploy_model`).",
        "",
        "| model | trained on | test accuracy | size (bytes) | eval img/s, batch 1 | eval img/s, batch 1024 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['data']} | {100 * r['accuracy']:.2f}% | {r['bytes']:,} | "
                     f"{r['eval_ips_1']:,.0f} | {r['eval_ips_1024']:,.0f} |")
    lines += [
        "",
        "![accuracy](accuracy.png)",
        "",
        "![size and speed](size_speed.png)",
        "",
        "## C++ inference",
        "",
        f"bitlab-run on the exported BitLinear model: predictions identical to Python: {same_pred}; "
        f"logits bit-identical: {bit_identical}.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

"""examples/train_bitlm.py: a few steps of the quality comparison (curves, CSV, plot, same-bytes run)."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from bitmodels import AutoBitModel, BitLMConfig, deploy_model

ROOT = Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("train_bitlm", ROOT / "examples" / "train_bitlm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_corpus(tmp_path: Path) -> Path:
    """A fortune-format file of 150 short English entries (the real corpus is large and slow to read)."""
    root = tmp_path / "fortunes"
    root.mkdir()
    words = "the quick brown fox jumps over a lazy dog while seven wise owls watch the moon rise".split()
    entries = [" ".join(words[(i + j) % len(words)] for j in range(6 + i % 9)) + "." for i in range(150)]
    (root / "sayings").write_text("\n%\n".join(entries) + "\n", encoding="utf-8")
    (root / "sayings.dat").write_bytes(b"\0" * 24)  # index files are skipped
    return root


TINY = ["--steps", "4", "--batch", "2", "--seq-len", "16", "--hidden", "32", "--ffn", "32", "--heads", "2",
        "--kv-heads", "1", "--layers", "1", "--eval-windows", "2", "--log-every", "2", "--threads", "1"]


def test_curves_csv_plot_and_same_bytes_run(tmp_path):
    example = load_example()
    csv_path, png_path = tmp_path / "out" / "curves.csv", tmp_path / "out" / "curves.png"
    results = example.main(TINY + ["--corpus", str(tiny_corpus(tmp_path)), "--eval-every", "2",
                                   "--big-hidden", "32", "--big-layers", "3", "--big-ffn", "64",
                                   "--csv", str(csv_path), "--plot", str(png_path)])
    names = ["BitLM (ternary, QAT)", "float32 twin", "bigger BitLM, same bytes"]
    assert list(results) == names
    for name in names:
        r = results[name]
        assert [s for s, _ in r["curve"]] == [2, 4]
        assert all(math.isfinite(p) and 1 < p < 1000 for _, p in r["curve"])
        assert r["ppl"] == r["curve"][-1][1]
    big, twin = results["bigger BitLM, same bytes"], results["float32 twin"]
    assert big["config"].num_layers == 3 and big["config"].ternary and not twin["config"].ternary
    assert big["bytes"] <= twin["bytes"]
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 6 and {r["model"] for r in rows} == set(names)
    first = rows[0]
    assert (int(first["step"]), int(first["tokens"]), int(first["hidden"])) == (2, 2 * 2 * 16, 32)
    assert math.isclose(float(first["heldout_ppl"]), results[names[0]]["curve"][0][1], rel_tol=1e-4)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_bytes_run_must_fit(tmp_path):
    example = load_example()
    with pytest.raises(SystemExit, match="more than the float32 twin"):
        example.main(TINY + ["--corpus", str(tiny_corpus(tmp_path)), "--big-hidden", "64"])


def test_deployed_bytes_counts_packed_trits_and_float_tensors():
    example = load_example()
    config = BitLMConfig(vocab_size=258, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         max_position_embeddings=32)
    model = AutoBitModel.from_config(config)
    # projections: ceil(N*K/5) trit bytes + 4 bytes per output row; embeddings (tied head once) and norms float32
    shapes = [(32, 32), (32, 32), (32, 32), (32, 32), (64, 32), (64, 32), (32, 64)]
    expected = sum(math.ceil(n * k / 5) + 4 * n for n, k in shapes)
    expected += 4 * (258 * 32 + 32 + 32 + 32 + 64 + 32)  # embed, input/post norms, attn/ffn sub-norms, final norm
    assert example.deployed_bytes(model) == expected
    assert not any(b.deployed for b in model.modules() if hasattr(b, "deployed"))  # the model itself untouched
    twin = AutoBitModel.from_config(BitLMConfig(**{**config.__dict__, "ternary": False, "quant_config": None}))
    assert example.deployed_bytes(twin) == 4 * twin.num_parameters()
    deployed = deploy_model(model)
    assert example.deployed_bytes(deployed) == expected
    assert torch.is_tensor(next(iter(deployed.state_dict().values())))

"""bench/bench_bitlm.py in --quick mode: rows at one and two threads, our runtime agrees with PyTorch on
every token, the end-to-end generate() times and ratio are filled, the peak-memory table is filled, and a
llama.cpp that cannot be obtained is a skip note with its reason (pip is kept off the network here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from deps_helpers import need_module

need_module("gguf")


def test_quick_bench_table_and_llama_cpp_skip(repo_root, tmp_path):
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(tmp_path / "llama"), PIP_NO_INDEX="1",
               PIP_FIND_LINKS=str(tmp_path))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_bitlm.py"), "--quick"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("## BitLM text generation")
    ours = [line for line in out.splitlines() if "| bitlab-run generate (ours, C++) |" in line]
    assert [line.split("|")[1].strip() for line in ours] == ["1", "2"]  # one and two threads
    assert all("| 16/16 |" in line for line in ours)
    assert "PyTorch BitLM (deployed)" in out and "PyTorch float32 twin" in out
    assert out.count("| llama.cpp | - | - | - | skipped: ") == 2  # no generate() time either
    assert "ours / PyTorch BitLM (deployed)" in out
    # the end-to-end generate() time of both PyTorch models, and its ratio next to prefill / decode
    for name in ("PyTorch BitLM (deployed)", "PyTorch float32 twin"):
        rows = [line.split("|") for line in out.splitlines() if f"| {name} |" in line]
        assert len(rows) == 2 and all(float(r[5].replace(",", "")) > 0 for r in rows)
    assert "| speed ratio | prefill | decode | generate() end to end |" in out
    ratios = [line.split("|") for line in out.splitlines() if "| PyTorch deployed / float32 twin |" in line]
    assert len(ratios) == 2 and all(r[5].strip().endswith("x") and float(r[5].strip()[:-1]) > 0 for r in ratios)
    mib = {m.group(1): float(m.group(2).replace(",", ""))
           for m in re.finditer(r"^\| ([^|]+) \| ([\d,.]+) \|$", out, re.MULTILINE)}
    assert 0 < mib["bitlab-run generate (ours, TQ2_0 file)"] < mib["PyTorch float32 twin, generate"]
    # the trained model: PyTorch's greedy tokens from two prompts, bitlab-run agreeing on every one,
    # llama.cpp a skip with its reason (or, where the fortunes corpus is missing, the section's skip)
    assert "### A trained model: the first 32 greedy tokens of several prompts" in out
    trained = [line for line in out.splitlines() if line.startswith("| 'The ' |") or line.startswith("| 'A man")]
    if "skipped: the fortunes corpus" not in out:
        assert len(trained) == 2
        for line in trained:
            ours, llama = (c.strip() for c in line.rstrip(" |").rsplit("|", 2)[1:])
            assert re.fullmatch(r"(\d+)/\1", ours), line  # ours: every token PyTorch generated
            assert llama.startswith("skipped: "), line

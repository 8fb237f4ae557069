"""bench/bench_bitlm.py in --quick mode: our runtime agrees with PyTorch on every token, and a llama.cpp
that cannot be obtained is a skip note with its reason (pip is kept off the network here)."""

from __future__ import annotations

import os
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
    ours = [line for line in out.splitlines() if "bitlab-run generate" in line]
    assert ours and all("| 16/16 |" in line for line in ours)
    assert "PyTorch BitLM (deployed)" in out and "PyTorch float32 twin" in out
    assert "| llama.cpp | - | - | skipped: " in out

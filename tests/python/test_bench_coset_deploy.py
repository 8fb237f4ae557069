"""bench/bench_coset_deploy.py in --quick mode: when llama.cpp's ggml cannot be obtained (pip is kept off the
network here, and the cache folder is empty) the speed and distortion tables get a "skipped: <reason>" row
instead of the ggml baseline, and nothing is built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("section", ["--speed", "--rd"])
def test_quick_bench_ggml_skip(repo_root, tmp_path, section):
    llama = tmp_path / "llama"
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(llama), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--quick", section],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("## Coset: deployed lattice-quantized layers")
    if section == "--speed":
        assert "| llama.cpp ggml (skipped: CalledProcessError" in out
    else:
        assert "| llama.cpp ggml IQ4_XS / Q4_K (skipped: CalledProcessError" in out
    assert not (llama / "build").exists()


def test_no_llama_cpp_flag(repo_root, tmp_path):
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(tmp_path / "llama"))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--quick", "--speed",
                           "--no-llama-cpp"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| llama.cpp ggml (skipped: --no-llama-cpp) |" in proc.stdout
    assert not (tmp_path / "llama").exists()

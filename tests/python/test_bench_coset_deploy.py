"""bench/bench_coset_deploy.py in --quick mode: when llama.cpp's ggml cannot be obtained (pip is kept off the
network here, and the cache folder is empty) the speed and distortion tables get a "skipped: <reason>" row
instead of the ggml baseline, and nothing is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deps_helpers import need_path


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


def test_quick_mlp_weight_distortion(repo_root, tmp_path):
    """--quick --mlp: the table of the demo MLP's trained weights has our formats (with numbers), the gguf
    Q4_0 row when the package is installed, and an IQ4_NL row that says why ggml was skipped."""
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(tmp_path / "llama"))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--quick", "--mlp",
                           "--no-llama-cpp"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "### Speed" not in out and "### Distortion of a" not in out
    if "Skipped: /usr/share/datasets/fashion-mnist not found." in out:
        need_path(Path("/usr/share/datasets/fashion-mnist"), "fashion-mnist")
    assert "### Distortion on the demo MLP's trained weights" in out
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| ")}
    e8 = rows["| Coset E8 q=16 M=1 (tuned, T entropy-coded)"].split(" | ")
    bits, rel = float(e8[-2]), float(e8[-1].rstrip(" |"))
    assert 4.0 < bits < 4.5 and 0.0 < rel < 0.05
    assert "| ggml IQ4_NL (llama.cpp build, no imatrix) (skipped: --no-llama-cpp)" in rows
    try:
        import gguf  # noqa: F401
    except ImportError:
        assert "| GGUF Q4_0 (gguf.quants reference) (skipped: the PyPI package `gguf` is not installed" in out
    else:
        q4 = [line for line in out.splitlines() if line.startswith("| GGUF Q4_0 (gguf.quants reference) |")]
        assert len(q4) == 2  # row-padded and straight-through layouts
        assert float(q4[0].split(" | ")[-2]) > 4.5  # 784-wide rows padded to 800: the padding is counted
        assert "- whole model: Coset E8 " in out and "target (lower error at equal or fewer bits)" in out


def test_other_formats_section(repo_root, tmp_path):
    """--other: the deployable formats off the fast paths (q not a power of two, the wide int32 path) run and
    get a speed row each, and nothing else runs."""
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(tmp_path / "llama"))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--other"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "### Other deployable formats (slower paths)" in out and "### Speed" not in out
    for label in ("D4 q=3 M=2 (int8, 2-bit codes)", "E8 q=6 M=1 (int8, 3-bit codes)",
                  "D4 q=4 M=4 (wide int32, w up to 340)", "E8 q=16 M=2 (wide int32, w up to 544)"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} |"))
        assert len(row.split(" | ")) == 6 and row.count(" ms") == 2
    assert not (tmp_path / "llama").exists()


def test_quick_fused_section_compares_both_paths_at_the_forced_level(repo_root):
    """--quick --fused with LOWBIT_SIMD=avx2: fused vs panel path (LOWBIT_COSET_FUSED=0) vs F.linear per
    format at batch 1 and 4, at the level that ran, and both paths give the same bits."""
    import lowbit

    env = dict(os.environ, LOWBIT_SIMD="avx2")
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--quick", "--fused"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    level = "avx2" if "avx2" in lowbit.available_simd_levels() else "scalar"
    assert f"### Fused GEMV vs panel path, 1024 x 1024 layer, SIMD level {level}," in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 8  # 4 formats (bench_coset_deploy.speed_formats) x batch 1 and 4
    assert all(r[-1].rstrip(" |") == "yes" and r[5].endswith("x") for r in rows)


def test_quick_stream_section_times_our_copies_and_says_why_ggml_was_skipped(repo_root, tmp_path):
    env = dict(os.environ, LOWBIT_LLAMA_CPP_DIR=str(tmp_path / "llama"))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_coset_deploy.py"), "--quick", "--stream",
                           "--no-llama-cpp"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "### Batch 1 with the weights streamed from DRAM: 4 copies of the 1024 x 1024 layer" in out
    ours = [line.split(" | ") for line in out.splitlines() if line.startswith("| ours: ")]
    assert len(ours) == 3 and all(float(r[-1].rstrip(" |")) > 0 for r in ours)
    assert "| ggml Q4_0 (skipped: --no-llama-cpp) |" in out

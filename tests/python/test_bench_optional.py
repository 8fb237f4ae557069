"""The optional-baseline machinery of `make bench`: installs that fail are recorded, never fatal,
and a baseline that is missing gets a skip note with the reason instead of a table.

Nothing here installs anything or touches the network: the installer is fed lines that it must
refuse or leave alone, or a local path that does not exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

BASELINE_MODULES = ("faiss", "bitsandbytes", "ffcv")


def run_bench(repo_root, tmp_path, *extra, env_hide=None):
    # The environment is inherited: the installed .venv, or PYTHONPATH=python in a dev build.
    env = dict(os.environ)
    if env_hide is not None:
        env["LOWBIT_BENCH_HIDE"] = env_hide
    return subprocess.run([sys.executable, str(repo_root / "bench" / "bench_optional_baselines.py"), "--quick",
                           "--cache", str(tmp_path / "jpegs"), *extra], env=env, capture_output=True, text=True,
                          timeout=60)


def test_installer_records_failures_and_never_replaces(repo_root, tmp_path):
    requirements = tmp_path / "requirements-bench.txt"
    missing = tmp_path / "no-such-baseline-1.0.tar.gz"
    requirements.write_text(f"# comment\ntorch==2.4.0\npytest==0.0.1  # installed already\n{missing}\n")
    log = tmp_path / "install.json"
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "install_optional.py"), "--requirements",
                           str(requirements), "--log", str(log)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(log.read_text())
    assert not record["torch"]["ok"] and "refused" in record["torch"]["reason"]
    assert record["pytest"]["ok"] and record["pytest"]["reason"] == "already installed"
    assert record["pytest"]["version"] != "0.0.1"
    failed = record[str(missing).lower()]
    assert not failed["ok"] and failed["reason"].startswith("pip exit")
    assert "FAILED" in proc.stdout


def test_every_baseline_hidden_prints_one_section_of_skip_notes(repo_root, tmp_path):
    log = tmp_path / "install.json"
    log.write_text(json.dumps({"ffcv": {"requirement": "ffcv==1.0.2", "ok": False,
                                        "reason": "pip exit 1: Could not find required package: opencv4."}}))
    hide = [arg for module in BASELINE_MODULES for arg in ("--hide", module)]
    proc = run_bench(repo_root, tmp_path, *hide, "--install-log", str(log))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("## Optional PyPI baselines") and out.count("\n## ") == 0
    assert "Ran: none." in out
    for title in ("faiss k-means", "bitsandbytes", "FFCV"):
        assert f"- {title}" in out
    assert out.count(": skipped: import ") == len(BASELINE_MODULES)
    assert "No module named 'faiss' (hidden by" in out
    assert "`pip install ffcv==1.0.2` failed: pip exit 1: Could not find required package: opencv4." in out
    assert "libopencv-dev libturbojpeg0-dev" in out  # the hint comes with a failed install only
    assert "|" not in out  # no table for a baseline that did not run


def test_hide_by_environment_variable(repo_root, tmp_path):
    proc = run_bench(repo_root, tmp_path, "--install-log", str(tmp_path / "absent.json"),
                     env_hide=",".join(BASELINE_MODULES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": skipped: import ") == len(BASELINE_MODULES)
    assert "libopencv-dev" not in proc.stdout  # no install record, so no install hint


def test_faiss_table_when_installed_else_skip_note(repo_root, tmp_path):
    # faiss-cpu is an optional bench baseline (requirements-bench.txt): with it the quick run
    # measures it; without it (CI never installs it) the section says so instead.
    proc = run_bench(repo_root, tmp_path, "--hide", "bitsandbytes", "--hide", "ffcv")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    if importlib.util.find_spec("faiss") is None:
        assert "### faiss k-means vs Kuat codebook training" not in out
        assert "- faiss k-means vs Kuat codebook training: skipped:" in out
        return
    assert "### faiss k-means vs Kuat codebook training" in out
    assert "Ran: faiss-cpu " in out
    rows = [line for line in out.splitlines() if line.startswith("| Kuat `train_codebook`")
            or line.startswith("| faiss `Kmeans`")]
    assert len(rows) >= 2
    for row in rows:
        psnr = float(row.split("|")[5].strip().split()[0])
        assert 20.0 < psnr < 60.0, row  # real photographs, K = 512 on 2x2 patches

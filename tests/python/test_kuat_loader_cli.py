"""`kuat benchmark` runs the batch loader."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kuat
from kuat import KuatDataset

DATA = Path(__file__).resolve().parents[1] / "data" / "kuat"


def test_package_exports_the_dataset():
    assert kuat.KuatDataset is KuatDataset and "KuatDataset" in kuat.__all__


def test_benchmark_reports_loader_and_raw_figures(kuat_cli):
    p = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "--batch-size", "2",
                        "--epochs", "3", "--threads", "2", "--layout", "NCHW", "--raw"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "9 images (3x5x1) in 6 batches of 2, shuffled, NCHW uint8, 2 threads" in p.stdout
    for figure in ("img/s", "ms/batch", "GB/s", "img/s per thread", "raw uint8 gather", "x raw"):
        assert figure in p.stdout


def test_benchmark_rejects_bad_options_and_variable_archives(kuat_cli):
    bad = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "--dtype", "float16"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "dtype" in bad.stderr
    variable = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_variable.kuat")],
                              capture_output=True, text=True, timeout=60)
    assert variable.returncode == 2 and "different sizes" in variable.stderr

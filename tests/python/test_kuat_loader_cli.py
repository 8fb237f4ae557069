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


def test_benchmark_short_options_and_device_cpu(kuat_cli):
    # Kuat-Beta's `kuat benchmark ARCHIVE -b 64 -e 1`, and --device cpu (this C++ loader).
    p = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "-b", "4", "-e", "2",
                        "--device", "cpu"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "6 images (3x5x1) in 2 batches of 4" in p.stdout and "GB/s" in p.stdout


def test_python_benchmark_on_a_torch_device():
    import sys

    p = subprocess.run([sys.executable, "-m", "kuat", "benchmark", str(DATA / "golden_v1_fixed.kuat"), "-b", "4",
                        "-e", "2", "--device", "cpu", "--layout", "NCHW"],
                       capture_output=True, text=True, timeout=120, env=_python_env())
    assert p.returncode == 0, p.stderr
    assert "6 images (3x5x1) in 2 batches of 4" in p.stdout and "device cpu" in p.stdout
    assert "loader:" in p.stdout and "decode:" in p.stdout and p.stdout.count("GB/s") == 2


def test_device_other_than_cpu_goes_to_the_python_benchmark(kuat_cli):
    import sys

    import torch

    env = _python_env()
    env["KUAT_PYTHON"] = sys.executable
    p = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "-b", "4", "--device", "meta:0"],
                       capture_output=True, text=True, timeout=120, env=env)
    # meta tensors hold no data: the Python benchmark runs and refuses the device with a clear error.
    assert p.returncode == 2 and "kuat benchmark: error: device" in p.stderr, (p.stdout, p.stderr)
    if not torch.cuda.is_available():
        p = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "--device", "cuda"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 2 and "not available" in p.stderr, p.stderr


def _python_env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(kuat.__file__).resolve().parents[1])]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def test_benchmark_device_names_a_missing_kuat_python(kuat_cli, tmp_path):
    import os

    env = dict(os.environ, KUAT_PYTHON=str(tmp_path / "nonexistent"))
    p = subprocess.run([kuat_cli, "benchmark", str(DATA / "golden_v1_fixed.kuat"), "--device", "cuda"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode != 0
    assert "KUAT_PYTHON points to a missing file" in p.stderr and "nonexistent" in p.stderr, p.stderr
    assert "no Python was found beside it" not in p.stderr

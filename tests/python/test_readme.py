"""Every example in README.md runs as written (the C++ one is built and run by ctest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deps_helpers import need_path

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.S)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCKS if kind == lang]


DATASETS = "/usr/share/datasets"


def skip_without_datasets(body: str) -> None:
    """Examples that read the Fashion-MNIST files under /usr/share/datasets need them installed."""
    if DATASETS in body:
        need_path(Path(DATASETS, "fashion-mnist"), "fashion-mnist")


def test_readme_has_the_two_commands():
    assert "make demo" in blocks("bash")[0] and "make test" in blocks("bash")[0]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index, tmp_path):
    skip_without_datasets(blocks("python")[index])
    proc = subprocess.run([sys.executable, "-c", blocks("python")[index]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_kuat_cli_example_runs(tmp_path):
    script = blocks("bash")[1]
    skip_without_datasets(script)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "fashion.kuat").exists()


def test_cpp_example_is_the_tested_file():
    source = (README.parent / "examples" / "cpp" / "quickstart.cpp").read_text()
    assert blocks("cpp") == [source]

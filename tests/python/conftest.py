"""Shared pytest fixtures.

Tests import the installed packages (``make build`` installs them into .venv). For in-tree
development, build with the CMake preset ``dev`` (it copies the extension into python/lowbit)
and run pytest with PYTHONPATH=python.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def kuat_cli() -> str:
    """Path of the C++ ``kuat`` executable: $KUAT_CLI, else the one next to this Python."""
    explicit = os.environ.get("KUAT_CLI")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "kuat"
    if beside.exists():
        return str(beside)
    found = shutil.which("kuat")
    if found is None:
        pytest.fail("the kuat executable is not installed (run `make build` or set KUAT_CLI)")
    return found


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _deterministic_seeds():
    """Every test starts from the same random state, so a statistical bound cannot flake."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)

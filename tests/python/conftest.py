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


def _devices() -> list:
    """``cpu`` plus every visible accelerator; ``LOWBIT_TEST_DEVICES=cuda`` (comma list) narrows it."""
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devices.append("mps")
    except ImportError:
        pass
    wanted = os.environ.get("LOWBIT_TEST_DEVICES")
    if wanted:
        keep = [d.strip() for d in wanted.split(",") if d.strip()]
        devices = [d for d in devices if d in keep or d.split(":")[0] in keep]
    return devices


@pytest.fixture(params=_devices())
def device(request):
    """Every device-facing test runs once per device: ``cpu`` and each visible accelerator."""
    import torch

    return torch.device(request.param)


@pytest.fixture(params=["auto", "torch"])
def backend_name(request):
    """Run the test under each backend: ``auto`` (C++ on CPU tensors) and pure ``torch``."""
    import lowbit

    with lowbit.backend(request.param):
        yield request.param


@pytest.fixture
def no_native_no_numpy(monkeypatch):
    """Inside the test, any use of the native module, numpy, or a tensor<->numpy conversion raises.

    Proves a pure-PyTorch path never touches the host C++ core or numpy
    (see backend_helpers.forbid_native_and_numpy).
    """
    from backend_helpers import forbid_native_and_numpy

    forbid_native_and_numpy(monkeypatch)
    yield

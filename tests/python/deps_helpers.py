"""Dev dependencies of the test suite: a missing one fails the test, it never silently skips.

``requirements-dev.txt`` (PyPI) and ``scripts/install-deps.sh`` (Debian) install every module and
data set the suite uses, so on a development machine or in CI a missing one is a broken setup and
the test fails naming what to install. Machines that cannot install them (the bare GPU machine of
``make gpu-check``, which reaches no registry) list the names they lack in
``LOWBIT_TEST_ALLOW_MISSING`` (comma separated, e.g. ``gguf,transformers,fortunes``): only those
tests are then skipped, with the reason printed.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

HOW = {
    "gguf": "pip install -r requirements-dev.txt",
    "transformers": "pip install -r requirements-dev.txt",
    "fortunes": "the Debian package 'fortunes' (scripts/install-deps.sh)",
    "fashion-mnist": "the Debian package 'dataset-fashion-mnist' (scripts/install-deps.sh)",
}


def _allowed(name: str) -> bool:
    return name in {s.strip() for s in os.environ.get("LOWBIT_TEST_ALLOW_MISSING", "").split(",")}


def _missing(name: str, detail: str) -> None:
    msg = f"{name} is missing ({detail}): install {HOW.get(name, name)}"
    if _allowed(name):
        pytest.skip(msg + " [allowed by LOWBIT_TEST_ALLOW_MISSING]", allow_module_level=True)
    pytest.fail(msg, pytrace=False)


def need_module(name: str) -> ModuleType:
    """``import name``; fails (or skips, see the module docstring) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _missing(name, str(exc))
        raise  # unreachable: skip/fail raise


def need_path(path: Path, name: str) -> Path:
    """``path`` of a data package ``name``; fails (or skips) when it does not exist."""
    if not Path(path).exists():
        _missing(name, f"{path} does not exist")
    return Path(path)

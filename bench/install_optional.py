"""Installs the optional benchmark baselines of requirements-bench.txt, one line at a time.

Each line runs `pip install --no-deps --no-build-isolation <line>` on its own, so one that fails
(no wheel, a build that needs missing system libraries, no network) is recorded and the next
one still runs. --no-deps means pip never pulls torch or a newer numpy in behind a baseline;
a line whose package is already installed (any version) is left alone, and torch, torchvision
and numpy are refused outright, so nothing Debian installed is ever replaced. The outcome of
every line goes to a JSON file that bench/bench_optional_baselines.py quotes in its skip notes.
This script always exits 0: optional baselines never fail `make bench`.

    .venv/bin/python bench/install_optional.py [--requirements requirements-bench.txt] [--log PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOG = ROOT / "build" / "optional-baselines-install.json"
PROTECTED = {"torch", "torchvision", "numpy"}  # Debian's builds; a PyPI copy would shadow them
PIP_SECONDS = 900  # the ffcv sdist compiles a C++ extension; a stuck download must not hang make bench


def requirement_lines(path: Path) -> list:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ @]", requirement, maxsplit=1)[0].strip()


def installed_version(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def last_error_lines(text: str, count: int = 4) -> str:
    """The lines of pip's output that say why it failed (errors first, else the tail)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "could not find" in line.lower()]
    return " | ".join((errors or lines)[-count:])


def install_one(requirement: str) -> dict:
    name = distribution_name(requirement)
    if name.lower() in PROTECTED:
        return {"requirement": requirement, "ok": False,
                "reason": f"refused: {name} must stay the system's build, never installed from PyPI here"}
    have = installed_version(name)
    if have is not None:
        return {"requirement": requirement, "ok": True, "version": have, "reason": "already installed"}
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input",
               "--disable-pip-version-check", requirement]
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=PIP_SECONDS, env=dict(os.environ, PIP_NO_INPUT="1"))
    except subprocess.TimeoutExpired:
        return {"requirement": requirement, "ok": False, "reason": f"pip ran past {PIP_SECONDS} s"}
    if proc.returncode != 0:
        return {"requirement": requirement, "ok": False,
                "reason": f"pip exit {proc.returncode}: {last_error_lines(proc.stdout)}"}
    return {"requirement": requirement, "ok": True, "version": installed_version(name), "reason": "installed"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements-bench.txt")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    args = parser.parse_args(argv)
    results = {}
    for requirement in requirement_lines(args.requirements):
        result = install_one(requirement)
        results[distribution_name(requirement).lower()] = result
        state = "ok" if result["ok"] else "FAILED"
        print(f"optional baseline {requirement}: {state} ({result['reason']})", flush=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.log.with_name(args.log.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

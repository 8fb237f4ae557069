"""make bench: run every benchmark of the project and write BENCHMARKS.md.

Each product has a script bench/bench_<product>.py that measures our figure and its baseline
side by side in one run and prints a Markdown section on stdout. This runner builds the C++
benchmarks (CMake preset `bench`), runs every script, and assembles the report with the
machine, compiler and command at the top. bench/bench_optional_baselines.py is one of them: it
measures the PyPI baselines that bench/run.sh managed to install (requirements-bench.txt) and
prints a skip note with the reason for the others.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine_header() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lowbit

    info = lowbit.build_info()
    try:
        import torch

        torch_line = f"torch {torch.__version__}, BLAS: {_torch_blas(torch)}"
    except ImportError:
        torch_line = "torch not installed"
    return "\n".join([
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- Build: lowbit {info['version']}, {info['compiler']}, Release (-O3), "
        f"SIMD compiled {', '.join(info['simd_compiled'])}, selected {info['simd_selected']}",
        f"- Python {platform.python_version()}, {torch_line}",
        "- Command: `make bench`",
    ])


def _torch_blas(torch) -> str:
    """The BLAS library torch actually loaded (Debian's torch uses the system libblas.so.3)."""
    torch.randn(64, 64) @ torch.randn(64, 64)  # make sure the BLAS is loaded
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for marker, name in (("openblas", "OpenBLAS"), ("libmkl", "MKL"), ("blis", "BLIS")):
        if marker in maps:
            return name
    return "reference BLAS" if "libblas" in maps else "unknown"


def build_cpp_benchmarks() -> None:
    subprocess.run(["cmake", "--preset", "bench"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", "--preset", "bench", "-j", str(os.cpu_count() or 1)], cwd=ROOT,
                   check=True)


def main() -> int:
    build_cpp_benchmarks()
    sections = []
    failures = []
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failures.append(script.name)
            sections.append(f"## {script.name}\n\nFAILED with exit code {proc.returncode}.\n")
        else:
            sections.append(proc.stdout.strip() + "\n")
    report = "# Benchmarks\n\nEvery figure below was measured by `make bench` in one run; baselines run " \
             "side by side with ours on the same data.\n\n" + machine_header() + "\n\n" + "\n".join(sections)
    (ROOT / "BENCHMARKS.md").write_text(report)
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

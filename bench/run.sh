#!/usr/bin/env bash
# make bench: runs every benchmark and writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# Optional PyPI baselines (faiss, bitsandbytes, FFCV): each is tried with `pip --no-deps` and may
# fail; bench_optional_baselines.py then prints a skip note with the reason. Never fatal.
bash scripts/install-deps.sh --bench || echo "optional baselines: system libraries for FFCV not installed; it will be skipped"
.venv/bin/python bench/install_optional.py || echo "optional baselines: installer failed; they will be skipped"
exec .venv/bin/python bench/run_all.py "$@"

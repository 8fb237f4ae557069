#!/usr/bin/env bash
# make bench: runs every benchmark and writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/run_all.py "$@"

#!/usr/bin/env bash
# make gpu-check: build lowbit with its CUDA kernels for the GPU at hand, then run every Python test
# (the `device` fixture then includes cuda:0), the C++ CUDA tests and bench/bench_gpu.py.
#
# Made for a bare GPU machine without network access: it uses only what is there (python3 with
# torch, pip, nanobind, scikit-build-core, pytest; nvcc, CMake, ninja), downloads nothing, and
# installs nothing outside its build folder (pip --prefix). Missing pieces degrade, with the
# reason printed: no libjpeg/libpng/libwebp headers -> LOWBIT_IMAGE_CODECS=OFF (image tests skip);
# no GoogleTest (package or sources) -> no C++ tests; no pytest -> stop (it cannot be fetched).
#
#   scripts/gpu-check.sh            the full check (about 5 minutes on a 16-core H200 machine)
#   scripts/gpu-check.sh --no-gpu   everything except the GPU parts (CUDA off, GPU rows skipped):
#                                   a rehearsal of the script on a machine without a GPU
#
# Environment: PYTHON (python3), JOBS (nproc), CUDA_ARCH (90: H100/H200; never "native"),
# BUILD_DIR (build/gpu-check), IMAGE_CODECS (auto|ON|OFF), LOWBIT_GTEST_SOURCE_DIR (GoogleTest
# sources when no package is installed; .gpu-deps/googletest and /usr/src/googletest are tried),
# PYTEST_ARGS (extra pytest arguments), OUT (where the logs and the benchmark table go; else
# $BUILD_DIR/out). Exit status: 0 when every step passed.
set -uo pipefail

GPU=1
[[ "${1:-}" == "--no-gpu" ]] && GPU=0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc)}"
CUDA_ARCH="${CUDA_ARCH:-90}"
BUILD_DIR="${BUILD_DIR:-build/gpu-check}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
OUT_DIR="${OUT:-$BUILD_DIR/out}"
PREFIX="$BUILD_DIR/prefix"
mkdir -p "$OUT_DIR" "$BUILD_DIR"
LOG="$OUT_DIR/gpu-check.log"
: > "$LOG"
export PYTHONUNBUFFERED=1
START=$(date +%s)
FAILED=()

say() { echo "[gpu-check $(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
# step NAME LOGFILE CMD...: runs CMD, its output to LOGFILE (and the tail to the main log).
step() {
  local name="$1" log="$2"
  shift 2
  say "== $name"
  if "$@" >"$log" 2>&1; then
    tail -n 5 "$log" | tee -a "$LOG"
    say "PASS $name"
  else
    tail -n 60 "$log" | tee -a "$LOG"
    say "FAIL $name (full log: $log)"
    FAILED+=("$name")
  fi
}

# ---- what this machine has ------------------------------------------------------------------------
say "machine: $(uname -m), $(nproc) cores; repo $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, platform, sys
print(f"python {platform.python_version()} at {sys.executable}")
for name in ("torch", "numpy", "nanobind", "scikit_build_core", "pytest", "xdist", "pytest_timeout", "PIL", "skimage"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name} {getattr(mod, '__version__', '')}")
    except Exception as exc:
        print(f"  {name}: MISSING ({type(exc).__name__})")
try:
    import torch
    print(f"  torch CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
except Exception:
    pass
EOF
for tool in cmake ninja nvcc; do
  if command -v "$tool" >/dev/null; then say "$tool: $("$tool" --version | grep -Ei 'version|release|^[0-9]' | head -n 1)"; else say "$tool: not found"; fi
done

for mod in torch pytest nanobind scikit_build_core; do
  if ! "$PYTHON" -c "import $mod" 2>/dev/null; then
    say "FATAL: python module '$mod' is missing and nothing can be downloaded here; carry it as a wheel (see .library/device/README.md)"
    exit 2
  fi
done
if [[ $GPU == 1 ]] && ! command -v nvcc >/dev/null; then
  say "FATAL: nvcc not found (the CUDA kernels cannot be built)"; exit 2
fi

# Image codecs: on only when the three libraries' headers are there.
IMAGE_CODECS="${IMAGE_CODECS:-auto}"
if [[ "$IMAGE_CODECS" == auto ]]; then
  if printf '#include <cstdio>\n#include <jpeglib.h>\n#include <png.h>\n#include <webp/decode.h>\n' |
      "${CXX:-c++}" -E -x c++ - >/dev/null 2>&1; then IMAGE_CODECS=ON; else IMAGE_CODECS=OFF; fi
fi
say "image codecs: LOWBIT_IMAGE_CODECS=$IMAGE_CODECS$([[ $IMAGE_CODECS == OFF ]] && echo ' (no libjpeg/libpng/libwebp headers: image-file tests skip)')"

# GoogleTest: sources named by LOWBIT_GTEST_SOURCE_DIR, else the installed package, else sources
# found at .gpu-deps/googletest or /usr/src/googletest.
TESTS=ON
GTEST_SRC="${LOWBIT_GTEST_SOURCE_DIR:-}"
gtest_installed() {
  printf '#include <gtest/gtest.h>\n' | "${CXX:-c++}" -E -x c++ - >/dev/null 2>&1 || return 1
  local lib
  for lib in /usr/lib/*/libgtest.* /usr/lib/libgtest.* /usr/local/lib/libgtest.* /usr/local/lib64/libgtest.*; do
    [[ -e "$lib" ]] && return 0
  done
  return 1
}
if [[ -n "$GTEST_SRC" ]]; then
  say "GoogleTest: built from $GTEST_SRC (LOWBIT_GTEST_SOURCE_DIR)"
elif gtest_installed; then
  say "GoogleTest: installed"
else
  for dir in "$ROOT/.gpu-deps/googletest" /usr/src/googletest; do
    if [[ -f "$dir/CMakeLists.txt" ]]; then GTEST_SRC="$dir"; break; fi
  done
  if [[ -n "$GTEST_SRC" ]]; then
    say "GoogleTest: built from $GTEST_SRC"
  else
    TESTS=OFF
    say "GoogleTest: NOT FOUND (no package, no sources): the C++ tests are not built. Copy /usr/src/googletest to .gpu-deps/googletest and carry it"
  fi
fi

# ---- build and install (one CMake build: extension, kuat CLI, C++ tests) --------------------------
CUDA_FLAG=OFF
[[ $GPU == 1 ]] && CUDA_FLAG=ON
rm -rf "$PREFIX"
build() {
  # --ignore-installed: pip must never uninstall a lowbit it finds in the interpreter's own
  # environment (a shared venv, say); everything goes to $PREFIX only.
  CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" PYTHONNOUSERSITE=1 "$PYTHON" -m pip install --no-build-isolation --no-deps \
    --no-index --ignore-installed --no-cache-dir --disable-pip-version-check --prefix "$PREFIX" -v . \
    --config-settings=build-dir="$BUILD_DIR/cmake" \
    --config-settings=cmake.build-type=Release \
    --config-settings=cmake.define.LOWBIT_CUDA="$CUDA_FLAG" \
    --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
    --config-settings=cmake.define.LOWBIT_IMAGE_CODECS="$IMAGE_CODECS" \
    --config-settings=cmake.define.LOWBIT_BUILD_TESTS="$TESTS" \
    --config-settings=cmake.define.LOWBIT_GTEST_SOURCE_DIR="$GTEST_SRC"
}
step "build (CUDA $CUDA_FLAG, sm_$CUDA_ARCH, $JOBS jobs)" "$OUT_DIR/build.log" build
INIT="$(find "$PREFIX" -path '*/lowbit/__init__.py' 2>/dev/null | head -n 1)"
SITE="$(dirname "$(dirname "$INIT")")"
if [[ -z "$INIT" || ! -d "$SITE" ]]; then
  say "FATAL: the build installed no lowbit package under $PREFIX"
  say "summary: FAILED: ${FAILED[*]:-install}"
  exit 1
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PREFIX/bin:$PATH"
export KUAT_CLI="$PREFIX/bin/kuat"
say "installed: $SITE"
(cd /tmp && "$PYTHON" -m lowbit) 2>&1 | tee -a "$LOG"
if [[ $GPU == 1 ]] && ! (cd /tmp && "$PYTHON" -c "import lowbit, sys; sys.exit(0 if lowbit.build_info()['cuda_compiled'] else 1)"); then
  say "FAIL the installed extension has no CUDA kernels"
  FAILED+=("cuda_compiled")
fi

# ---- C++ tests: the CUDA ones, and the CPU check of the Coset kernels' arithmetic -----------------
if [[ $TESTS == ON ]]; then
  CTEST_FILTER=(-R 'CosetDeviceLogic')
  [[ $GPU == 1 ]] && CTEST_FILTER=(-R 'CosetDeviceLogic|Cuda')
  step "C++ tests (${CTEST_FILTER[*]})" "$OUT_DIR/ctest.log" \
    ctest --test-dir "$BUILD_DIR/cmake" --output-on-failure -j "$JOBS" "${CTEST_FILTER[@]}"
else
  say "SKIP C++ tests: GoogleTest unavailable"
fi

# ---- Python: the bound kernels first, then the benchmark, then every test --------------------------
# (in this order so that a time-limited machine returns the GPU results before the long suite)
PYTEST_OPTS=(-q -rs -p no:cacheprovider)
# The bare GPU machine reaches no registry: dev dependencies it lacks are skipped by name (and
# listed), never silently (tests/python/deps_helpers.py).
ALLOW=()
for mod in gguf transformers; do "$PYTHON" -c "import $mod" 2>/dev/null || ALLOW+=("$mod"); done
[[ -d /usr/share/games/fortunes ]] || ALLOW+=(fortunes)
[[ -d /usr/share/datasets/fashion-mnist ]] || ALLOW+=(fashion-mnist)
if (( ${#ALLOW[@]} )); then
  LOWBIT_TEST_ALLOW_MISSING=$(IFS=,; echo "${ALLOW[*]}")
  export LOWBIT_TEST_ALLOW_MISSING
  say "missing dev dependencies (their tests skip): $LOWBIT_TEST_ALLOW_MISSING"
fi
if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then PYTEST_OPTS+=(--timeout 300); fi
# shellcheck disable=SC2206
PYTEST_OPTS+=(${PYTEST_ARGS:-})
step "Python CUDA kernel tests" "$OUT_DIR/pytest_cuda.log" \
  "$PYTHON" -m pytest tests/python/test_cuda_kernels.py tests/python/test_cuda_ops.py "${PYTEST_OPTS[@]}"

BENCH_ARGS=(--out "$OUT_DIR/bench_gpu.md")
[[ $GPU == 0 ]] && BENCH_ARGS+=(--quick)
step "GPU benchmark (bench/bench_gpu.py)" "$OUT_DIR/bench.log" "$PYTHON" bench/bench_gpu.py "${BENCH_ARGS[@]}"
[[ -f "$OUT_DIR/bench_gpu.md" ]] && tee -a "$LOG" < "$OUT_DIR/bench_gpu.md"

if "$PYTHON" -c "import xdist" 2>/dev/null && (( JOBS >= 4 )); then PYTEST_OPTS+=(-n "$(( JOBS / 2 ))"); fi
step "Python tests (pytest ${PYTEST_OPTS[*]})" "$OUT_DIR/pytest.log" "$PYTHON" -m pytest tests/python "${PYTEST_OPTS[@]}"
grep -E "^(SKIPPED|FAILED|ERROR)" "$OUT_DIR/pytest.log" | sed -E 's/^(.{0,220}).*/\1/' | sort | uniq -c | sort -rn | head -n 40 | tee -a "$LOG"

say "total $(( $(date +%s) - START )) s; logs in $OUT_DIR"
if (( ${#FAILED[@]} )); then
  say "summary: FAILED: ${FAILED[*]}"
  exit 1
fi
say "summary: every step passed"

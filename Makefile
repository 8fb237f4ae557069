# lowbit: the commands a newcomer needs. Each installs whatever is missing first.
#   make build     system deps, .venv, C++ build, package installed into .venv
#   make test      build, then every C++ test (ctest) and every Python test (pytest)
#   make test-torch-backend  the Python tests again with LOWBIT_BACKEND=torch
#   make demo      build, then the main job on real data (Fashion-MNIST)
#   make bench     build, then every benchmark; writes BENCHMARKS.md
#   make sanitize  C++ tests under ASan + UBSan
#   make cuda      compile the CUDA kernels (needs nvcc; nothing runs on a GPU)
#   make wheel     a manylinux wheel in dist/ with the image libraries bundled (auditwheel repair)
#   make wheel-check  install that wheel in a new venv without system packages and use it
#   make gpu-check on a GPU machine (even a bare one): CUDA build for it, every test, GPU benchmark

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BUILD_DIR := build/release
JOBS ?= $(shell nproc)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all deps venv build test test-torch-backend test-cpp test-python demo bench sanitize fuzz cuda gpu-check wheel wheel-check clean

all: build

deps:
	@bash scripts/install-deps.sh

$(VENV)/.ready: requirements-dev.txt | deps
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: deps $(VENV)/.ready

# One CMake build serves the wheel and the C++ tests: scikit-build-core keeps it in $(BUILD_DIR),
# so rebuilds are incremental.
build: venv
	@rm -f python/lowbit/_native*.so  # stale in-tree dev copies must not ship
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PY) -m pip install --no-build-isolation --no-deps \
	  --disable-pip-version-check -q . \
	  --config-settings=build-dir=$(BUILD_DIR) \
	  --config-settings=cmake.define.LOWBIT_BUILD_TESTS=ON
	@$(PY) -c "import lowbit, kuat, coset, bitcore, bitlayers, bitmodels; print('lowbit', lowbit.__version__, 'installed in $(VENV)')"

test-cpp: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

test-python: build
	$(PY) -m pytest tests/python -q

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)
	$(PY) -m pytest tests/python -q

# The whole Python suite again with every op on the pure-PyTorch backend (lowbit.backend).
test-torch-backend: build
	LOWBIT_BACKEND=torch $(PY) -m pytest tests/python -q

demo: build
	$(PY) examples/demo.py

bench: build
	bash bench/run.sh

sanitize: venv
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j $(JOBS)

fuzz: venv
	@bash scripts/install-deps.sh --fuzz
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)

cuda: venv
	cmake --preset cuda
	cmake --build --preset cuda -j $(JOBS)

# No venv, no installs: scripts/gpu-check.sh uses the machine's python3 and builds under build/.
# GPU_CHECK_ARGS=--no-gpu rehearses it on a machine without a GPU.
gpu-check:
	bash scripts/gpu-check.sh $(GPU_CHECK_ARGS)

wheel: build
	bash scripts/build-wheel.sh

wheel-check: wheel
	bash scripts/check-wheel.sh

clean:
	rm -rf build dist python/lowbit/_native*.so

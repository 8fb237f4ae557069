"""llama.cpp for the benchmarks, obtained at bench time and kept outside our tree (never committed).

The PyPI llama-cpp-python sdist (its vendored llama.cpp) is downloaded into $LOWBIT_LLAMA_CPP_DIR
(default ~/.cache/lowbit-bench/llama.cpp), unpacked into src/, and built there with cmake:

* build_llama_cpp(): llama-simple and llama-bench into build/, for bench_bitlm.py;
* build_ggml_harness(): only ggml's CPU library (targets ggml-base, ggml-cpu) in the same build/, plus
  our harness bench/ggml_matmul.c compiled against it into build/lowbit_ggml_matmul-<hash of its source>,
  for bench_coset_deploy.py.

Any failure raises; the callers turn it into a "skipped: <reason>" row with skip_reason().
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CORES = os.cpu_count() or 1
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
LLAMA_DIR = Path(os.environ.get("LOWBIT_LLAMA_CPP_DIR", Path.home() / ".cache" / "lowbit-bench" / "llama.cpp"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def source_dir() -> Path:
    """The vendored llama.cpp source of the sdist, downloading and unpacking it on first use."""
    src = LLAMA_DIR / "src"
    if src.exists():
        return src
    LLAMA_DIR.mkdir(parents=True, exist_ok=True)
    sdists = list(LLAMA_DIR.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        log(f"llama.cpp: downloading the {LLAMA_CPP_PYTHON} sdist into {LLAMA_DIR}")
        subprocess.run([sys.executable, "-m", "pip", "download", LLAMA_CPP_PYTHON, "--no-deps", "--no-binary",
                        ":all:", "-d", str(LLAMA_DIR)], check=True, capture_output=True, timeout=600)
        sdists = list(LLAMA_DIR.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdists[0]) as tar, tempfile.TemporaryDirectory(dir=LLAMA_DIR) as tmp:
        tar.extractall(tmp)  # noqa: S202 - a PyPI sdist we downloaded ourselves
        vendored = next(Path(tmp).glob("*/vendor/llama.cpp"))
        shutil.move(str(vendored), str(src))
    return src


def _cmake_build(targets: list[str]) -> Path:
    """Configure the llama.cpp source into build/ (again each time: quick once cached, and a configure that
    failed before is retried) and build `targets` there."""
    build = LLAMA_DIR / "build"
    src = source_dir()
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DGGML_OPENMP=OFF"],
                   check=True, capture_output=True, timeout=600)
    subprocess.run(["cmake", "--build", str(build), "-j", str(CORES), "--target", *targets],
                   check=True, capture_output=True, timeout=3600)
    return build


def build_llama_cpp() -> Path:
    """The llama.cpp build folder (llama-simple, llama-bench), building it on first use."""
    build = LLAMA_DIR / "build"
    if (build / "bin" / "llama-bench").exists() and (build / "bin" / "llama-simple").exists():
        return build
    log("llama.cpp: building llama-simple, llama-bench; a few minutes")
    return _cmake_build(["llama-simple", "llama-bench"])


def _ggml_libs(build: Path) -> list[Path]:
    libs = []
    for name in ("ggml-cpu", "ggml-base"):
        found = sorted(build.rglob(f"lib{name}.so")) + sorted(build.rglob(f"lib{name}.a"))
        if not found:
            return []
        libs.append(found[0])
    return libs


def build_ggml_harness() -> Path:
    """bench/ggml_matmul.c compiled against ggml's CPU library, building ggml (only) on first use."""
    build = LLAMA_DIR / "build"
    libs = _ggml_libs(build)
    if not libs:
        log("llama.cpp: building only ggml's CPU library (ggml-base, ggml-cpu); a minute or two")
        _cmake_build(["ggml-cpu"])
        libs = _ggml_libs(build)
        if not libs:
            raise RuntimeError(f"no libggml-cpu / libggml-base under {build} after the build")
    # One executable per version of the harness source, compiled under a temporary name and renamed into
    # place: benches of other checkouts sharing this cache never run a half-written or different harness.
    source = BENCH / "ggml_matmul.c"
    exe = build / f"lowbit_ggml_matmul-{hashlib.sha1(source.read_bytes()).hexdigest()[:12]}"
    if exe.exists():
        return exe
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc, clang) for the ggml harness")
    dirs = sorted({str(lib.parent) for lib in libs})
    tmp = exe.with_name(f"{exe.name}.{os.getpid()}.tmp")
    subprocess.run([cc, "-O2", "-o", str(tmp), str(source), "-I", str(source_dir() / "ggml" / "include"),
                    *[f"-L{d}" for d in dirs], *[f"-Wl,-rpath,{d}" for d in dirs], "-lggml-cpu", "-lggml-base",
                    "-lstdc++", "-lpthread", "-lm"], check=True, capture_output=True, timeout=300)
    os.replace(tmp, exe)
    return exe


def skip_reason(e: BaseException) -> str:
    """One line for a "skipped: <reason>" row: the exception, and a failed command's last stderr line."""
    reason = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
    if isinstance(e, subprocess.CalledProcessError) and e.stderr:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        if err.strip():
            reason += " - " + err.strip().splitlines()[-1][:200]
    return reason

"""A source build without the image libraries' development files stops at configure time with a
message naming every missing library and the packages to install (cmake/LowbitImageCodecs.cmake)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.mark.parametrize("missing, packages", [
    (("PNG",), ["libpng-dev"]),
    (("JPEG", "PNG"), ["libjpeg-dev", "libpng-dev"]),
    (("ZLIB",), ["zlib1g-dev"]),
])
def test_configure_names_missing_codec_packages(repo_root, tmp_path, missing, packages):
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build lowbit from source"
    disable = [f"-DCMAKE_DISABLE_FIND_PACKAGE_{name}=ON" for name in missing]
    proc = subprocess.run([cmake, "-S", str(repo_root), "-B", str(tmp_path / "build"), "-DLOWBIT_BUILD_TESTS=OFF",
                           "-DLOWBIT_APPS=OFF", "-DLOWBIT_INSTALL=OFF", *disable],
                          capture_output=True, text=True, timeout=120)
    out = " ".join((proc.stdout + proc.stderr).split())  # CMake wraps long lines
    assert proc.returncode != 0
    assert "needs the development files" in out
    for package in packages:
        assert package in out, f"{package} not named in:\n{out}"
    assert "LOWBIT_IMAGE_CODECS=OFF" in out
    # Nothing was compiled: the error comes from configure, before any build step.
    assert not (tmp_path / "build" / "build.ninja").exists() and not (tmp_path / "build" / "Makefile").exists()

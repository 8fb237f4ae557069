"""The `kuat` command line: every subcommand, the seed's flags, and error exits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kuat
from kuat_helpers import REAL_PHOTOS, SKIMAGE_DATA, needs_image_files, write_cifar10


def run(cli, *args, expect=0):
    p = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert p.returncode == expect, f"rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


@needs_image_files
def test_convert_info_verify_extract_preview_benchmark(kuat_cli, tmp_path):
    src = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=8, batches=2)
    out = tmp_path / "c.kuat"
    p = run(kuat_cli, "convert", src, out, "--format", "cifar", "-b", "5", "--codebook-size", "32", "-W", "16", "-H", "16")
    assert "16 samples" in p.stdout and "PSNR" in p.stdout
    q = run(kuat_cli, "convert", src, tmp_path / "q.kuat", "-f", "cifar", "-q", "--codebook-size", "16")
    assert q.stdout == "" and q.stderr == ""
    info = run(kuat_cli, "info", out).stdout
    assert "16 x 16 x 3" in info and "32 entries" in info and "airplane" in info
    j = json.loads(run(kuat_cli, "info", out, "--json").stdout)
    assert j["samples"] == 16 and j["codebook_size"] == 32 and j["metadata"]["conversion"]["bits"] == 5
    assert "OK" in run(kuat_cli, "verify", out).stdout
    run(kuat_cli, "extract", out, tmp_path / "ex", "--indices", "0,3")
    from PIL import Image
    a = kuat.KuatArchive(out)
    img = np.asarray(Image.open(tmp_path / "ex" / f"000003_{a[3]['label']}.png"))
    np.testing.assert_array_equal(img, a[3]["image"])
    p = run(kuat_cli, "preview", out, tmp_path / "p.png", "-n", "4")
    assert "original (left)" in p.stdout
    assert Image.open(tmp_path / "p.png").size[0] > 4 * 16
    b = run(kuat_cli, "benchmark", out, "--batch-size", "4", "--epochs", "2").stdout
    assert "img/s" in b and "ms/batch" in b and "GB/s" in b


@needs_image_files
def test_images_folder_warnings_strict_and_shards(kuat_cli, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for n in REAL_PHOTOS[:3]:
        shutil.copy(SKIMAGE_DATA / n, d / n)
    (d / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    p = run(kuat_cli, "convert", d, tmp_path / "a.kuat", "-W", "32", "-H", "32", "--codebook-size", "16", "--threads", "1")
    assert "zz_broken.png" in p.stderr and "skipped 1" in p.stderr
    p = run(kuat_cli, "convert", d, tmp_path / "b.kuat", "-W", "32", "-H", "32", "--strict", expect=1)
    assert "zz_broken.png" in p.stderr and "strict" in p.stderr
    assert not (tmp_path / "b.kuat").exists()
    run(kuat_cli, "convert", d, tmp_path / "s0.kuat", "-W", "32", "-H", "32", "--shard", "0/2", "--codebook", tmp_path / "a.kuat", "-q")
    assert len(kuat.KuatArchive(tmp_path / "s0.kuat")) == 2  # samples 0 and 2 (the broken one is 3)
    pv = run(kuat_cli, "preview", tmp_path / "a.kuat", tmp_path / "pv.png").stdout
    assert "original (left)" in pv


def test_errors_exit_cleanly_with_the_reason(kuat_cli, tmp_path):
    p = run(kuat_cli, "info", tmp_path / "missing.kuat", expect=1)
    assert "missing.kuat" in p.stderr and "cannot open" in p.stderr
    bad = tmp_path / "bad.kuat"
    bad.write_bytes(b"x" * 300)
    assert "bad magic" in run(kuat_cli, "verify", bad, expect=1).stderr
    assert "unknown option" in run(kuat_cli, "convert", "a", "b", "--bogus", expect=2).stderr
    assert "expected" in run(kuat_cli, "info", expect=2).stderr
    assert "bits" in run(kuat_cli, "convert", tmp_path, tmp_path / "o.kuat", "-b", "0", expect=2).stderr
    assert "does not exist" in run(kuat_cli, "convert", tmp_path / "nope", tmp_path / "o.kuat", expect=1).stderr
    assert "usage: kuat <command>" in run(kuat_cli).stdout  # no command: the help, exit 0 (as Kuat-Beta)
    assert "unknown command" in run(kuat_cli, "frobnicate", expect=2).stderr
    assert "--codebook-size" in run(kuat_cli, "convert", "--help").stdout


def test_python_dash_m_kuat_runs_every_command_of_the_executable(kuat_cli, tmp_path):
    # `python -m kuat convert ...` is the same program as `kuat convert ...` (benchmark stays the
    # PyTorch device benchmark); the same bytes out, the same exit codes and messages.
    import sys

    src = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=4, batches=1)
    args = ["convert", str(src), None, "-f", "cifar", "-q", "--codebook-size", "8", "--seed", "3"]
    run(kuat_cli, *[a if a else tmp_path / "cli.kuat" for a in args])
    run(sys.executable, "-m", "kuat", *[a if a else tmp_path / "py.kuat" for a in args])
    a, b = kuat.KuatArchive(tmp_path / "cli.kuat"), kuat.KuatArchive(tmp_path / "py.kuat")  # metadata has times
    np.testing.assert_array_equal(a.codebook_numpy(), b.codebook_numpy())
    np.testing.assert_array_equal(a.decode_batch(range(len(a))), b.decode_batch(range(len(b))))
    assert len(a) == 4 and a.all_labels() == b.all_labels()
    assert "convert <input> <output.kuat>" in run(sys.executable, "-m", "kuat").stdout
    p = run(sys.executable, "-m", "kuat", "info", tmp_path / "missing.kuat", expect=1)
    assert "missing.kuat" in p.stderr and "cannot open" in p.stderr

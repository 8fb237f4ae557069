"""Ctrl-C during a conversion: no half-written archive, a clean exit, promptly.

`kuat convert` (the C++ CLI), `kuat.convert_dataset` (Python: KeyboardInterrupt) and
`python -m kuat convert` (the wrapper must let the executable clean up, not kill it)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _noise_cifar(folder: Path, per_batch: int = 3000) -> Path:
    """CIFAR-10 batches of random pixels (fast to write, slow enough to encode to be interrupted)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for b in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({b"data": data, b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return folder


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    return _noise_cifar(tmp_path_factory.mktemp("interrupt") / "cifar")


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner's background job may ignore it


def _interrupt_once_writing(cmd, out_dir: Path, env=None, group=False):
    """Starts cmd, waits for the temporary archive to appear in out_dir, sends SIGINT (to the process
    group with group=True, as a terminal's Ctrl-C does), returns (returncode, stderr, seconds to exit)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=None if group else _default_sigint, start_new_session=group)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        if any(".tmp-" in name for name in os.listdir(out_dir)):
            break
        time.sleep(0.01)
    assert p.poll() is None, f"the conversion ended before it could be interrupted: {p.communicate()}"
    assert any(".tmp-" in name for name in os.listdir(out_dir)), "no temporary archive appeared"
    t = time.time()
    if group:
        os.killpg(p.pid, signal.SIGINT)
    else:
        p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    return p.returncode, err, time.time() - t


def test_cli_convert_interrupted_removes_its_temporary_file(kuat_cli, big_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    rc, err, seconds = _interrupt_once_writing(
        [kuat_cli, "convert", str(big_source), str(out / "x.kuat"), "-q", "--threads", "1"], out)
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert os.listdir(out) == []
    assert seconds < 10


def test_cli_convert_interrupted_while_training_leaves_nothing(kuat_cli, big_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([kuat_cli, "convert", str(big_source), str(out / "x.kuat"), "-q", "--threads", "1"],
                         stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    time.sleep(0.3)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert os.listdir(out) == []


def test_convert_dataset_raises_keyboard_interrupt_promptly_and_cleans_up(big_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(f"""
        from kuat import convert_dataset
        try:
            convert_dataset({str(big_source)!r}, {str(out / 'x.kuat')!r}, threads=1)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            raise SystemExit(130)
        raise SystemExit(0)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    rc, err, seconds = _interrupt_once_writing([sys.executable, "-c", script], out, env=env)
    assert rc == 130, err
    assert os.listdir(out) == []
    assert seconds < 5  # not at the end of the conversion


def test_python_dash_m_lets_the_executable_clean_up(tmp_path):
    # The wrapper runs a stand-in for the executable that cleans up on SIGINT; a terminal's Ctrl-C
    # goes to the whole process group. The stand-in must get to clean up (not be killed by the
    # wrapper's KeyboardInterrupt) and the wrapper must exit 130 without a traceback.
    out = tmp_path / "out"
    out.mkdir()
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        tmp = {str(out / 'x.kuat.tmp-abc')!r}
        open(tmp, "w").close()
        def stop(*_):
            time.sleep(0.2)  # cleanup takes a moment
            os.remove(tmp)
            sys.exit(130)
        signal.signal(signal.SIGINT, stop)
        time.sleep(30)
    """))
    wrapper = (f"import sys; import kuat.__main__ as m; m._cli = lambda: sys.executable; "
               f"sys.exit(m.main([{str(child)!r}]))")  # `python -m kuat <args>` with the stand-in
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    rc, err, _ = _interrupt_once_writing([sys.executable, "-c", wrapper], out, env=env, group=True)
    assert rc == 130, err
    assert "Traceback" not in err
    assert os.listdir(out) == []

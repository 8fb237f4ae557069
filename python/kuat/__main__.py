"""``python -m kuat benchmark ARCHIVE --device cuda``: decode throughput on a torch device; every
other command (``python -m kuat convert ...``) runs the C++ ``kuat`` executable (:func:`main`).

The C++ ``kuat benchmark`` times the CPU loader; for ``--device`` other than ``cpu`` it hands the
command to this module (PyTorch decode). Two figures, both with the device synchronised:

* loader: ``KuatDataset(archive, device=...)`` epochs (host staging of packed indices, copy, decode);
* decode: the decode alone, on packed indices already resident on the device (``GPUDataset``).

Each reports img/s and GB/s of decoded pixels (uint8 NHWC by default, as the C++ benchmark).
Exit codes: 0 success, 2 bad usage or an unavailable device, 1 any other error.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="kuat benchmark", description="decode throughput on a torch device")
    parser.add_argument("archive")
    parser.add_argument("--batch-size", "-b", type=int, default=64, help="samples per batch (default 64)")
    parser.add_argument("--epochs", "-e", type=int, default=1, help="timed epochs after one warm-up (default 1)")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--layout", default="NHWC", help="NHWC (default) or NCHW")
    parser.add_argument("--dtype", default="uint8", help="uint8 (default) or float32")
    parser.add_argument("--sequential", action="store_true", help="read in archive order instead of shuffled")
    parser.add_argument("--threads", type=int, default=None, help="ignored on a device (host staging is one thread)")
    parser.add_argument("--raw", action="store_true", help="ignored on a device (the C++ CLI's CPU comparison)")
    args = parser.parse_args(argv)
    if args.batch_size <= 0 or args.epochs <= 0:
        parser.error("--batch-size and --epochs must be positive")

    try:
        import torch
    except ImportError:
        print("kuat benchmark: error: --device needs PyTorch (pip install torch)", file=sys.stderr)
        return 2
    from .archive import KuatArchive
    from .dataset import KuatDataset
    from .gpu import GPUDataset

    try:
        ds = KuatDataset(args.archive, batch_size=args.batch_size, shuffle=not args.sequential, layout=args.layout,
                         dtype=args.dtype, device=args.device)
    except ValueError as e:
        print(f"kuat benchmark: error: {e}", file=sys.stderr)
        return 2
    archive = KuatArchive(args.archive)
    h, w, c = ds.sample_shape if ds.layout == "NHWC" else (ds.sample_shape[1], ds.sample_shape[2], ds.sample_shape[0])
    sample_bytes = h * w * c * (1 if ds.dtype == "uint8" else 4)
    device = ds.device

    def run_loader(first: int, epochs: int):
        n = batches = 0
        _sync(device)
        t0 = time.perf_counter()
        for e in range(first, first + epochs):
            for batch in ds.epoch(e):
                n += batch["images"].shape[0]
                batches += 1
        _sync(device)
        return n, batches, time.perf_counter() - t0

    run_loader(0, 1)
    n, batches, seconds = run_loader(1, args.epochs)
    ips = n / seconds
    print(f"{args.archive}: {n} images ({h}x{w}x{c}) in {batches} batches of {args.batch_size}, "
          f"{'sequential' if args.sequential else 'shuffled'}, {ds.layout} {ds.dtype}, device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type})")
    how = ("C++ loader workers, zero-copy CPU tensors (LOWBIT_BACKEND=torch for the PyTorch path)"
           if ds._uses_native_decode() else "packed indices staged on the host, copied, decoded on the device")
    print(f"  loader: {ips:.0f} img/s   {1e3 * seconds / batches:.3f} ms/batch   {ips * sample_bytes / 1e9:.3f} GB/s "
          f"decoded ({how})")

    resident = GPUDataset(archive, batch_size=args.batch_size, device=device, normalize=False,
                          dtype=torch.uint8 if ds.dtype == "uint8" else torch.float32, layout=ds.layout)
    rows = [torch.arange(i, min(i + args.batch_size, len(resident))) for i in range(0, len(resident), args.batch_size)]
    for r in rows:
        resident[r]
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        for r in rows:
            resident[r]
    _sync(device)
    seconds = time.perf_counter() - t0
    dips = args.epochs * len(resident) / seconds
    print(f"  decode: {dips:.0f} img/s   {dips * sample_bytes / 1e9:.3f} GB/s decoded "
          f"(packed indices resident on the device)")
    return 0


def _cli() -> Optional[str]:
    """The C++ ``kuat`` executable installed with this package: in the interpreter's scripts folder
    (a venv's ``bin/``, a ``--prefix`` install's ``bin/``), beside the interpreter, else on PATH."""
    import os
    import shutil
    import sysconfig

    here = os.path.dirname(os.path.abspath(__file__))  # .../site-packages/kuat
    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    # a --prefix install: PREFIX/lib/pythonX.Y/site-packages/kuat -> PREFIX/bin
    folders.append(os.path.normpath(os.path.join(here, "..", "..", "..", "..", "bin")))
    for folder in folders:
        path = os.path.join(folder, "kuat")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("kuat")


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m kuat benchmark ...`` runs the device benchmark above; every other command
    (``convert``, ``info``, ``verify``, ..., none, ``--help``) runs the C++ ``kuat`` executable with
    the same arguments and returns its exit code (2 when it is not installed)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "benchmark":
        try:
            return benchmark(argv[1:])
        except OSError as e:
            print(f"kuat benchmark: error: {e}", file=sys.stderr)
            return 1
    cli = _cli()
    if cli is None:
        print("python -m kuat: the kuat executable is not installed beside this Python or on PATH (reinstall "
              "lowbit); `python -m kuat benchmark ARCHIVE --device cuda` works without it", file=sys.stderr)
        return 2
    return _run_cli([cli, *argv])


def _run_cli(cmd: List[str]) -> int:
    """Runs the C++ executable and returns its exit code, leaving interrupts to it.

    As ``system(3)`` does, SIGINT is ignored here while it runs: Ctrl-C reaches the whole
    foreground process group, so the executable gets it too and stops cleanly (``kuat convert``
    removes its temporary file and exits with 130); a Python KeyboardInterrupt here would
    otherwise kill it at once (subprocess's reaction) and leave its temporary file behind.
    SIGTERM sent to this process is passed on to the executable. An interrupted run returns 130
    without a Python traceback."""
    import signal
    import subprocess

    sys.stdout.flush()
    proc = subprocess.Popen(cmd)
    previous = {}

    def forward(signum, _frame):
        try:
            proc.send_signal(signum)
        except OSError:  # already gone
            pass

    try:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        code = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 130 if code == -signal.SIGINT else (128 + -code if code < 0 else code)


if __name__ == "__main__":
    sys.exit(main())

"""C++ inference: export a deployed BitMLP, run it with the C++ API and the bitlab-run CLI,
and get outputs bit-identical to the Python eval path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, BitMLPConfig, export_bitmlp, load_bitmlp

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bitlab_run() -> str:
    """$BITLAB_RUN, else the one next to this Python (pip install), else the dev build's."""
    explicit = os.environ.get("BITLAB_RUN")
    candidates = [explicit] if explicit else []
    candidates += [str(Path(sys.executable).parent / "bitlab-run"), shutil.which("bitlab-run") or "",
                   str(REPO_ROOT / "build" / "dev" / "apps" / "bitlab-run" / "bitlab-run")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("the bitlab-run executable is not built (cmake --build build/dev --target bitlab-run, or set BITLAB_RUN)")


def deployed_mlp(quant_config, seed=0):
    torch.manual_seed(seed)
    config = BitMLPConfig(n_layers=3, in_channels=50, hidden_dim=40, out_channels=7, dropout=0.1,
                          quant_config=quant_config)
    return AutoBitModel.from_config(config).deploy()


CONFIGS = [BitQuantConfig("per_tensor", "int8", "per_tensor"), BitQuantConfig("per_channel", "int8", "per_channel"),
           BitQuantConfig("per_channel", "float32", "per_tensor")]


@pytest.mark.parametrize("quant_config", CONFIGS, ids=lambda c: "-".join(c.to_dict().values()))
def test_cli_and_cpp_api_match_python_bit_for_bit(quant_config, tmp_path, bitlab_run):
    model = deployed_mlp(quant_config)
    x = torch.randn(13, 50)
    expected = model(x).numpy()
    path = export_bitmlp(model, tmp_path / "mlp.blm")
    assert not (tmp_path / "mlp.blm.tmp").exists()

    native = load_bitmlp(path)
    assert (native.in_features, native.out_features, native.num_layers) == (50, 7, 3)
    assert np.array_equal(native.forward(x.numpy()), expected)

    np.save(tmp_path / "x.npy", x.numpy())
    result = subprocess.run([bitlab_run, str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and np.array_equal(y, expected)
    predictions = [int(line.split()[1]) for line in result.stdout.splitlines()]
    assert predictions == expected.argmax(axis=1).tolist()

    x.numpy().tofile(tmp_path / "x.f32")  # raw float32 input
    raw = subprocess.run([bitlab_run, str(path), str(tmp_path / "x.f32"), "--quiet", "-o", str(tmp_path / "y2.npy")],
                         capture_output=True, text=True, timeout=60)
    assert raw.returncode == 0 and raw.stdout == ""
    assert np.array_equal(np.load(tmp_path / "y2.npy"), expected)


def test_export_file_layout(tmp_path):
    model = deployed_mlp(BitQuantConfig())
    data = export_bitmlp(model, tmp_path / "m.blm").read_bytes()
    assert data[:8] == b"LBBITMLP"
    assert int.from_bytes(data[8:12], "little") == 1 and int.from_bytes(data[12:16], "little") == 3
    assert int.from_bytes(data[-4:], "little") == zlib.crc32(data[:-4])
    shapes = [(50, 40), (40, 40), (40, 7)]
    # header + per layer (16-byte record header, f32 scales and biases, 5 trits per byte) + CRC
    expected = 32 + sum(16 + 8 * n + (k * n + 4) // 5 for k, n in shapes) + 4
    assert len(data) == expected


def test_corrupt_model_and_bad_inputs_fail_cleanly(tmp_path, bitlab_run):
    model = deployed_mlp(BitQuantConfig())
    path = export_bitmlp(model, tmp_path / "m.blm")
    corrupt = bytearray(path.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0x10
    (tmp_path / "bad.blm").write_bytes(bytes(corrupt))
    with pytest.raises(OSError, match="checksum"):
        load_bitmlp(tmp_path / "bad.blm")
    np.save(tmp_path / "x.npy", np.zeros((2, 50), dtype=np.float32))
    run = subprocess.run([bitlab_run, str(tmp_path / "bad.blm"), str(tmp_path / "x.npy")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and "checksum" in run.stderr
    np.save(tmp_path / "wide.npy", np.zeros((2, 51), dtype=np.float32))
    np.save(tmp_path / "f64.npy", np.zeros((2, 50), dtype=np.float64))
    for name, message in (("wide.npy", "in_features"), ("f64.npy", "float32")):
        run = subprocess.run([bitlab_run, str(path), str(tmp_path / name)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and message in run.stderr, run.stderr
    with pytest.raises(ValueError, match="features"):
        load_bitmlp(path).forward(np.zeros((2, 51), dtype=np.float32))
    with pytest.raises(ValueError, match="cannot export"):
        export_bitmlp(nn.Sequential(BitLinear(4, 4), nn.Tanh()), tmp_path / "x.blm")


def test_native_bitmlp_takes_the_inputs_bitmlp_takes(tmp_path):
    model = deployed_mlp(BitQuantConfig())
    native = load_bitmlp(export_bitmlp(model, tmp_path / "m.blm"))
    x = torch.randn(4, 50)
    want = model(x).numpy()
    for given in (x.numpy().astype(np.float64), x, x.numpy().tolist(),
                  np.asfortranarray(x.numpy()), np.repeat(x.numpy(), 2, axis=1)[:, ::2]):
        assert np.array_equal(native.forward(given), want)  # float32 inside, like BitMLP
    assert np.array_equal(native(x.numpy()[1]), want[1])  # one sample: (in,) -> (out,)
    with pytest.raises(TypeError, match="real numbers"):
        native.forward(np.array([["a"] * 50]))
    with pytest.raises(ValueError, match=r"\(in_features,\) or \(batch, in_features\)"):
        native.forward(np.zeros((2, 2, 50), np.float32))
    assert "50 -> 7" in repr(native)

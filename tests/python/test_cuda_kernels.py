"""The CUDA kernels bound into Python (lowbit._cuda_kernels) against the C++ CPU paths, bit for bit.

Runs where a CUDA device is visible and the extension was built with LOWBIT_CUDA=ON
(``make gpu-check``); elsewhere every test here is skipped with the reason.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowbit  # noqa: E402
from lowbit import _cuda_ops  # noqa: E402

_INFO = lowbit.build_info()
pytestmark = [
    pytest.mark.skipif(not _INFO["cuda_compiled"], reason="extension built without LOWBIT_CUDA=ON"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
]

CUDA = torch.device("cuda:0")


def _kernels():
    from lowbit import _cuda_kernels

    return _cuda_kernels


def test_ops_are_registered_on_first_use():
    ck = _kernels()
    assert _cuda_ops.get("coset.encode") is ck.encode
    assert _cuda_ops.get("coset.decode") is ck.decode
    assert _cuda_ops.get("bitlab.linear_int8") is ck.linear_int8
    assert _cuda_ops.get("kuat.decode_packed") is ck.decode_packed


# ---- Coset ---------------------------------------------------------------------------------------
CONFIGS = [("Z2", 16, 1), ("Z2", 3, 4), ("D4", 4, 2), ("D4", 2, 4), ("D4", 7, 3), ("E8", 16, 1), ("E8", 4, 2),
           ("E8", 5, 4)]


@pytest.mark.parametrize("lattice,q,M", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coset_encode_decode_match_cpu(lattice, q, M, dtype):
    from coset import QuantizationConfig, decode, encode
    from coset.lattices import lattice_for

    ck = _kernels()
    lat = lattice_for(lattice)
    for extra in ({}, {"with_dither": True, "dither_seed": 5}, {"with_tie_dither": False}):
        cfg = QuantizationConfig(lattice_type=lattice, q=q, M=M, beta=1.5 / q**M, alpha=0.5, **extra)
        x = torch.randn(3, 1001, lat.d, dtype=dtype)
        x[0, :64] = (torch.arange(64 * lat.d, dtype=dtype).reshape(64, lat.d) % 7 - 3) * 0.5  # ties
        with warnings.catch_warnings():  # both warn alike on vectors that still overload
            warnings.simplefilter("ignore")
            b_cpu, t_cpu = encode(x, lat, cfg)
            b_gpu, t_gpu = ck.coset_encode(x.to(CUDA), cfg)
        assert b_gpu.shape == b_cpu.shape and t_gpu.shape == t_cpu.shape
        assert torch.equal(b_gpu.cpu(), b_cpu) and torch.equal(t_gpu.cpu(), t_cpu)
        want = decode(b_cpu, lat, cfg, t_cpu, dtype=dtype)
        got = ck.coset_decode(b_cpu.to(CUDA), t_cpu.to(CUDA), cfg, dtype=dtype)
        assert got.dtype == dtype and torch.equal(got.cpu(), want)


def test_coset_rejects_what_the_cpu_rejects():
    from coset import QuantizationConfig

    ck = _kernels()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2)
    x = torch.randn(100, 4, device=CUDA)
    x[57, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf \(vector 57\)"):
        ck.coset_encode(x, cfg)
    b = torch.ones(10, 2, 4, dtype=torch.uint8, device=CUDA)
    b[3, 1, 2] = 4
    with pytest.raises(ValueError, match=r"outside \[0, q=4\) \(vector 3\)"):
        ck.coset_decode(b, None, cfg)
    b[3, 1, 2] = 0
    t = torch.zeros(10, dtype=torch.uint8, device=CUDA)
    t[8] = 11
    with pytest.raises(ValueError, match=r"scaling iterations \(vector 8\)"):
        ck.coset_decode(b, t, cfg)
    with pytest.raises(ValueError, match="last dimension must be d=4"):
        ck.coset_encode(torch.randn(5, 8, device=CUDA), cfg)


def test_coset_asynchronous_status_and_overload_warning():
    from coset import QuantizationConfig

    ck = _kernels()
    cfg = QuantizationConfig(lattice_type="E8", q=4, M=1, beta=0.05, max_scaling_iterations=1)
    x = torch.randn(4096, 8, device=CUDA) * 10
    status = ck.coset_status(CUDA)
    b, t = ck.coset_encode(x, cfg, status=status)  # returns without waiting
    with pytest.warns(RuntimeWarning, match="still overload"):
        retried, overloaded = ck.coset_check(status, cfg)
    assert retried > 0 and overloaded > 0
    assert int((t > 0).sum()) == retried


def test_coset_on_the_current_stream():
    from coset import QuantizationConfig

    ck = _kernels()
    cfg = QuantizationConfig(lattice_type="D4", q=4, M=2, beta=0.3)
    x = torch.randn(1 << 16, 4, device=CUDA)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        b, t = ck.coset_encode(x, cfg)
        y = ck.coset_decode(b, t, cfg)
    torch.cuda.current_stream().wait_stream(side)
    b0, t0 = ck.coset_encode(x, cfg)
    assert torch.equal(b, b0) and torch.equal(y, ck.coset_decode(b0, t0, cfg))


# ---- BitLab --------------------------------------------------------------------------------------
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 8192, 512), (3, 257, 15), (64, 1000, 100), (9, 300, 7)])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_row"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_bitlinear_int8_matches_cpu(m, k, n, granularity, with_bias):
    from bitcore.kernels.bindings import bitlinear_cpp as cpp

    ck = _kernels()
    w = torch.randn(n, k)
    trits, scales = cpp.quantize_weights(w, "per_row")
    packed = cpp.pack_2bit(trits)
    x = torch.randn(m, k)
    bias = torch.randn(n) if with_bias else None
    want = cpp.bitlinear_int8(x, packed, k, scales, bias, granularity)
    got = ck.bitlinear_int8(x.to(CUDA), packed.to(CUDA), k, scales.to(CUDA),
                            None if bias is None else bias.to(CUDA), granularity)
    assert torch.equal(got.cpu(), want)


# ---- Kuat ----------------------------------------------------------------------------------------
def _packed_batch(batch, height, width, patch, k, seed):
    from lowbit._native import kuat as native_kuat

    rng = np.random.default_rng(seed)
    gh, gw = -(-height // patch), -(-width // patch)
    bits = max(1, int(k - 1).bit_length())
    idx = rng.integers(0, k, size=(batch, gh * gw), dtype=np.uint32)
    rows = [np.asarray(native_kuat.pack_indices(np.ascontiguousarray(r), bits)) for r in idx]
    return idx, np.stack(rows), bits


def _reference(codebook, idx, height, width, channels, patch):
    """The seed notebook's decode: codebook[indices] and a permute (patch-aligned sizes)."""
    b = idx.shape[0]
    cb = torch.from_numpy(codebook)
    patches = cb[torch.from_numpy(idx.astype(np.int64))]
    patches = patches.reshape(b, height // patch, width // patch, patch, patch, channels)
    return patches.permute(0, 1, 3, 2, 4, 5).reshape(b, height, width, channels)


@pytest.mark.parametrize("height,width,channels,patch,k", [(28, 28, 1, 2, 512), (32, 32, 3, 2, 4096),
                                                           (224, 224, 3, 2, 65536), (16, 8, 3, 4, 300)])
def test_kuat_decode_matches_codebook_gather(height, width, channels, patch, k):
    ck = _kernels()
    rng = np.random.default_rng(1)
    codebook = rng.integers(0, 256, size=(k, patch * patch * channels), dtype=np.uint8)
    idx, packed, bits = _packed_batch(5, height, width, patch, k, 2)
    want = _reference(codebook, idx, height, width, channels, patch)
    cb, pk = torch.from_numpy(codebook).to(CUDA), torch.from_numpy(packed).to(CUDA)
    kw = dict(height=height, width=width, channels=channels, patch=patch, index_bits=bits)
    got = ck.kuat_decode_batch(cb, pk, **kw)
    assert got.dtype == torch.uint8 and torch.equal(got.cpu(), want)
    nchw = ck.kuat_decode_batch(cb, pk, layout="NCHW", **kw)
    assert torch.equal(nchw.cpu(), want.permute(0, 3, 1, 2))
    mean, std = [0.4] * channels, [0.25] * channels
    flt = ck.kuat_decode_batch(cb, pk, layout="NCHW", dtype=torch.float32, mean=mean, std=std, **kw)
    ref = (want.permute(0, 3, 1, 2).double() / 255 - 0.4) / 0.25
    assert torch.allclose(flt.cpu().double(), ref, rtol=1e-5, atol=1e-5)


def test_kuat_decode_crop_flip_and_corrupt_index():
    ck = _kernels()
    rng = np.random.default_rng(3)
    codebook = rng.integers(0, 256, size=(512, 12), dtype=np.uint8)
    idx, packed, bits = _packed_batch(4, 32, 32, 2, 512, 4)
    full = _reference(codebook, idx, 32, 32, 3, 2)
    cb, pk = torch.from_numpy(codebook).to(CUDA), torch.from_numpy(packed).to(CUDA)
    cy = torch.tensor([0, 4, 8, 30], dtype=torch.int32)
    cx = torch.tensor([0, 2, 16, 30], dtype=torch.int32)
    flip = torch.tensor([0, 1, 0, 1], dtype=torch.uint8)
    got = ck.kuat_decode_batch(cb, pk, height=32, width=32, channels=3, patch=2, index_bits=bits,
                               crop_y=cy.to(CUDA), crop_x=cx.to(CUDA), flip=flip.to(CUDA), out_size=(16, 16)).cpu()
    for i in range(4):
        window = torch.zeros(16, 16, 3, dtype=torch.uint8)
        y0, x0 = int(cy[i]), int(cx[i])
        part = full[i, y0:y0 + 16, x0:x0 + 16]
        window[:part.shape[0], :part.shape[1]] = part
        if flip[i]:
            window = window.flip(1)
        assert torch.equal(got[i], window), i
    small = torch.from_numpy(codebook[:100]).to(CUDA)  # indices >= 100 are out of range now
    with pytest.raises(ValueError, match="codebook size"):
        ck.kuat_decode_batch(small, pk, height=32, width=32, channels=3, patch=2, index_bits=bits)
    flag = torch.zeros(1, dtype=torch.int32, device=CUDA)
    ck.kuat_decode_batch(small, pk, height=32, width=32, channels=3, patch=2, index_bits=bits, error_flag=flag)
    assert int(flag.item()) == 1


# ---- the registered ops, with the products' signatures -------------------------------------------
def test_registered_coset_ops_match_cpu():
    from coset import QuantizationConfig, decode, encode
    from coset.lattices import lattice_for

    ck = _kernels()
    for lattice, q, M in (("D4", 4, 2), ("E8", 16, 1), ("Z2", 5, 3)):
        cfg = QuantizationConfig(lattice_type=lattice, q=q, M=M, beta=1.0 / q**M, alpha=0.25)
        lat = lattice_for(lattice)
        x = torch.randn(5000, lat.d) * 3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b_cpu, t_cpu = encode(x, lat, cfg)
        b, t, over = ck.encode(x.to(CUDA), cfg)
        assert torch.equal(b.cpu(), b_cpu) and torch.equal(t.cpu(), t_cpu) and over.dtype == torch.bool
        # still-overloaded vectors are exactly those whose decode is not Q(x) at their last scale
        assert int(over.sum()) <= int((t_cpu == cfg.max_t()).sum())
        for dtype in (torch.float32, torch.float64):
            got = ck.decode(b, t, cfg, dtype)
            assert got.dtype == dtype and torch.equal(got.cpu(), decode(b_cpu, lat, cfg, t_cpu, dtype=dtype))


def test_registered_linear_int8_checks_finite_input():
    from bitcore.kernels.bindings import bitlinear_cpp as cpp

    ck = _kernels()
    w = torch.randn(16, 300)
    trits, scales = cpp.quantize_weights(w, "per_tensor")
    packed = cpp.pack_2bit(trits)
    x = torch.randn(4, 300)
    got = ck.linear_int8(x.to(CUDA), packed.to(CUDA), 300, scales.to(CUDA), None, "per_tensor")
    assert torch.equal(got.cpu(), cpp.bitlinear_int8(x, packed, 300, scales, None, "per_tensor"))
    x[1, 7] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        ck.linear_int8(x.to(CUDA), packed.to(CUDA), 300, scales.to(CUDA), None, "per_tensor")


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_registered_decode_packed_matches_the_twin(layout):
    twin = pytest.importorskip("kuat._torch_decode")
    ck = _kernels()
    rng = np.random.default_rng(7)
    codebook = torch.from_numpy(rng.integers(0, 256, size=(300, 2, 2, 3), dtype=np.uint8))
    idx, packed, bits = _packed_batch(6, 30, 22, 2, 300, 8)
    packed_t = torch.from_numpy(packed)
    shift_y = torch.tensor([0, 3, -2, 10, 0, 29])
    shift_x = torch.tensor([0, -5, 4, 0, 21, 1])
    flip = torch.tensor([False, True, False, True, True, False])
    for dtype, mean, std in (("uint8", None, None), ("float32", [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])):
        table, pad = twin.make_table(codebook, dtype, mean, std)
        for extra in ({}, {"shift_y": shift_y, "shift_x": shift_x, "flip": flip}):
            want = twin.decode_packed(packed_t, table, pad, 30, 22, bits, layout, **extra)
            got = ck.decode_packed(packed_t.to(CUDA), table.to(CUDA), pad.to(CUDA), 30, 22, bits, layout,
                                   **{k: v.to(CUDA) for k, v in extra.items()})
            assert got.dtype == want.dtype and torch.equal(got.cpu(), want), (dtype, extra)

"""Input-variety sweep over the public tensor/array APIs: the same values in another container
(dtype, layout, leading shape, autograd context) give the same result, or a clear error naming
the input. The bar for layers is ``torch.nn.Linear``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import lowbit
from bitcore.config import BitQuantConfig
from bitlayers.bitlinear import BitLinear
import coset
from coset import D4Lattice, E8Lattice, QuantizationConfig, decode, encode, quantize, quantize_tensor
from coset.deploy import PackedLinear
from coset.quant import batch_encode, batch_quantize

BACKENDS = ["auto", "torch"]  # C++ kernels and the pure-PyTorch twin


def _values(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Multiples of 1/8 below 5: exact in float16, bfloat16, float32 and float64."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-40, 40, (rows, cols), generator=g) / 8.0).float()


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


# The same values as the contiguous float32 tensor x, in other containers.
CONTAINERS = {
    "numpy_f32": lambda x: x.numpy().copy(),
    "numpy_f64": lambda x: x.numpy().astype(np.float64),
    "list": lambda x: x.tolist(),
    "tensor_f64": lambda x: x.double(),
    "tensor_f16": lambda x: x.half(),
    "tensor_bf16": lambda x: x.bfloat16(),
    "transposed": lambda x: x.t().contiguous().t(),
    "stepped": lambda x: torch.stack([x, x], -1)[..., 0],
    "storage_offset": lambda x: torch.cat([torch.zeros(1, x.shape[1]), x])[1:],
    "numpy_negative_stride": lambda x: np.ascontiguousarray(x.numpy()[::-1])[::-1],
    "numpy_fortran": lambda x: np.asfortranarray(x.numpy()),
    "numpy_readonly": lambda x: _readonly(x.numpy()),
    "requires_grad": lambda x: x.clone().requires_grad_(True),
}


def _np(r):
    if isinstance(r, tuple):
        return tuple(_np(v) for v in r)
    if isinstance(r, torch.Tensor):
        return r.detach().to(torch.float64).numpy() if r.is_floating_point() else r.detach().numpy()
    return np.asarray(r)


def _assert_same(got, want):
    got, want = _np(got), _np(want)
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
        return
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


LAT, CFG = D4Lattice(), QuantizationConfig(lattice_type="D4", q=4, M=2)
COSET_FUNCS = {
    "encode": lambda v: encode(v, LAT, CFG),
    "quantize": lambda v: quantize(v, LAT, CFG),
    "batch_encode": lambda v: batch_encode(v, LAT, CFG),
    "batch_quantize": lambda v: batch_quantize(v, LAT, CFG),
    "Q": lambda v: LAT.Q(v),
    "quantize_tensor": lambda v: quantize_tensor(v, LAT, CFG),
    "QuantizedMatrix.decode": lambda v: coset.QuantizedMatrix(LAT, CFG, v).decode(),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("func", sorted(COSET_FUNCS))
def test_coset_same_values_any_container(func, container, backend):
    x = _values(6, 4)
    f = COSET_FUNCS[func]
    with lowbit.backend(backend):
        want = f(x)
        got = f(CONTAINERS[container](x))
    _assert_same(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [lambda x: x > 0, lambda x: (x > 0).numpy()], ids=["tensor", "numpy"])
@pytest.mark.parametrize("func", ["encode", "quantize", "Q", "quantize_tensor"])
def test_coset_bool_input_refused_in_every_container(func, make, backend):
    # A bool tensor used to be quantized as 0/1 on the C++ path while the PyTorch twin and numpy
    # refused it: the same values gave a result or an error depending on the container.
    x = _values(6, 4)
    with lowbit.backend(backend), pytest.raises(ValueError, match=r"x: expected a real numeric .*bool"):
        COSET_FUNCS[func](make(x))


CODE_CONTAINERS = {
    "numpy_uint8": lambda b: b.numpy(),
    "int64": lambda b: b.long(),
    "int32_numpy": lambda b: b.numpy().astype(np.int32),
    "float32": lambda b: b.float(),
    "float64": lambda b: b.double(),
    "float16": lambda b: b.half(),
    "bfloat16": lambda b: b.bfloat16(),
    "list": lambda b: b.tolist(),
    "noncontiguous": lambda b: torch.stack([b, b], -1)[..., 0],
    "numpy_negative_stride": lambda b: np.ascontiguousarray(b.numpy()[::-1])[::-1],
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", sorted(CODE_CONTAINERS))
def test_decode_codes_any_container(container, backend):
    # float16/bfloat16 codes (a model cast with .half()/.to(bfloat16)) crashed with
    # "Got unsupported ScalarType BFloat16" (C++ path) / "round_vml_cpu not implemented for 'Half'".
    b, t = encode(_values(6, 4), LAT, CFG)
    with lowbit.backend(backend):
        want = decode(b, LAT, CFG, t)
        _assert_same(decode(CODE_CONTAINERS[container](b), LAT, CFG, t), want)
        _assert_same(decode(b, LAT, CFG, CODE_CONTAINERS[container](t)), want)
        _assert_same(coset.unpack(coset.pack(CODE_CONTAINERS[container](b), t, CFG), 6, CFG), (b, t))


# --- layers: torch.nn.Linear is the bar -----------------------------------------------------

def _bitlinear(mode, act):
    torch.manual_seed(0)
    layer = BitLinear(12, 5, quant_config=BitQuantConfig(activation_dtype=act))
    return {"train": layer.train, "eval": layer.eval, "deployed": layer.deploy}[mode]()


def _qlinear(mode):
    torch.manual_seed(0)
    layer = coset.QLinear(12, 5, CFG, quantize_weights=True)
    return layer.train() if mode == "train" else layer.eval()


def _packed(lattice):
    torch.manual_seed(0)
    if lattice == "D4":
        return coset.QLinear(12, 5, CFG, quantize_weights=True).eval().deploy()
    return PackedLinear.from_linear(torch.nn.Linear(16, 5), coset.deployable_config())


LAYERS = {
    **{f"BitLinear-{m}-{a}": (lambda m=m, a=a: _bitlinear(m, a))
       for m in ("train", "eval", "deployed") for a in ("float32", "int8")},
    "QLinear-train": lambda: _qlinear("train"),
    "QLinear-eval": lambda: _qlinear("eval"),
    "PackedLinear-D4": lambda: _packed("D4"),
    "PackedLinear-E8": lambda: _packed("E8"),
}

LAYOUTS = {
    "transposed": lambda x: x.t().contiguous().t(),
    "stepped": lambda x: torch.stack([x, x], -1)[..., 0],
    "storage_offset": lambda x: torch.cat([torch.zeros(1, x.shape[1]), x])[1:],
    "3d": lambda x: x.reshape(2, 3, -1),
    "4d": lambda x: x.reshape(1, 2, 3, -1),
    "4d_channels_last": lambda x: x.reshape(1, 2, 3, -1).contiguous(memory_format=torch.channels_last),
    "one_row": lambda x: x[:1],
    "one_vector": lambda x: x[0],
    "requires_grad": lambda x: x.clone().requires_grad_(True),
}


def _in_features(layer):
    return layer.in_features


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_layouts_match_contiguous(name, layout):
    layer = LAYERS[name]()
    x = _values(6, _in_features(layer))
    with torch.no_grad():
        want = layer(x)
    v = LAYOUTS[layout](x)
    got = layer(v)
    assert got.shape == v.shape[:-1] + (want.shape[-1],)
    _assert_same(got.reshape(-1, want.shape[-1]), want[: got.reshape(-1, want.shape[-1]).shape[0]])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_empty_and_broadcast_batches(name):
    layer = LAYERS[name]()
    k = _in_features(layer)
    x = _values(1, k)
    with torch.no_grad():
        one = layer(x)
        assert layer(torch.zeros(0, k)).shape == (0, one.shape[-1])
        assert layer(torch.zeros(2, 0, k)).shape == (2, 0, one.shape[-1])
        _assert_same(layer(x.expand(4, k)), one.expand(4, -1))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_follows_autocast_like_nn_linear(name):
    # nn.Linear under torch.autocast("cpu", bfloat16) returns bfloat16; the quantized layers
    # returned float32, so a model changed its activation dtype mid-way (e.g. h + layer(h)).
    layer = LAYERS[name]()
    x = _values(6, _in_features(layer))
    ref = torch.nn.Linear(_in_features(layer), 3)
    with torch.no_grad():
        want = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ref(x).dtype == torch.bfloat16
        y = layer(x)
        assert y.dtype == torch.bfloat16
        try:
            float64_ok = layer(x.double()).dtype == torch.float64
        except RuntimeError:  # QLinear is an nn.Linear: float64 input to float32 weights fails alike
            float64_ok = None
        torch.testing.assert_close(y.float(), want, rtol=2e-2, atol=5e-2)
        xg = x.clone().requires_grad_(True)
        layer(xg).float().sum().backward()
    assert xg.grad is not None and xg.grad.dtype == torch.float32
    y = layer(x)
    assert y.dtype == torch.float32  # and back to the input's dtype outside autocast
    if float64_ok is not None:  # autocast leaves float64 alone, as nn.Linear
        assert float64_ok


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_inference_mode_and_no_grad(name):
    layer = LAYERS[name]()
    x = _values(6, _in_features(layer))
    want = layer(x).detach()
    with torch.inference_mode():
        _assert_same(layer(x), want)
    with torch.no_grad():
        _assert_same(layer(x), want)


def _memmap(a: np.ndarray, tmp_path) -> np.ndarray:
    path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.bin"
    m = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    m[...] = a
    m.flush()
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


HOST_CONTAINERS = {
    "numpy": lambda a, tmp: a.copy(),
    "negative_stride": lambda a, tmp: np.ascontiguousarray(a[::-1])[::-1],
    "readonly": lambda a, tmp: _readonly(a),
    "memmap_readonly": _memmap,
    "list": lambda a, tmp: a.tolist(),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", sorted(HOST_CONTAINERS))
def test_host_side_arguments_any_container(container, backend, tmp_path):
    # Arrays beside a tensor (T, scale, LUT codes, a mat-vec's y) went through torch.as_tensor,
    # which refuses negative strides ("tensors with negative strides are not currently supported")
    # and warns on read-only memory.
    conv = lambda a: HOST_CONTAINERS[container](np.asarray(a), tmp_path)  # noqa: E731
    x = _values(6, 4)
    with lowbit.backend(backend):
        b, t = encode(x, LAT, CFG)
        _assert_same(decode(b, LAT, CFG, conv(t.numpy())), decode(b, LAT, CFG, t))
        _assert_same(coset.pack(b, conv(t.numpy()), CFG), coset.pack(b, t, CFG))
        scale = torch.tensor([0.5, 1, 2, 4, 0.25, 3.0])
        _assert_same(quantize_tensor(x, LAT, CFG, scale=conv(scale.numpy())), quantize_tensor(x, LAT, CFG, scale=scale))
        lut = coset.OneSidedLUT(LAT, CFG, x[0])
        want = lut.dot(b[:1], t[:1])
        assert lut.dot(conv(b[:1].numpy()), conv(t[:1].numpy())) == want
        qm = coset.QuantizedMatrix(LAT, CFG, x.reshape(3, 8))
        y = torch.arange(8.0) / 4
        _assert_same(qm.matvec(conv(y.numpy())), qm.matvec(y))


# --- bitcore kernels: the namesake's kernel(x, qweight_scale, qweight, bias) -----------------

def _kernel(act, gran):
    from bitcore.kernels import KernelRegistry

    return KernelRegistry.get_kernel_for_config(BitQuantConfig(activation_dtype=act, weight_granularity=gran))


KERNEL_CONFIGS = [(a, g) for a in ("float32", "int8") for g in ("per_tensor", "per_channel")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act,gran", KERNEL_CONFIGS)
def test_kernel_scale_any_container(act, gran, backend):
    # A per-channel scale as a list or numpy array raised "float() argument must be ... not 'list'".
    torch.manual_seed(0)
    with lowbit.backend(backend):
        k = _kernel(act, gran)
        scale, trits = k.quantize_weights(torch.randn(5, 12))
        x = _values(6, 12)
        want = k.forward(x, scale, trits)
        for s in (scale.numpy(), scale.tolist(), scale.double(), np.asarray(scale.numpy(), dtype=np.float64)):
            _assert_same(k.forward(x, s, trits), want)
        if scale.dim() == 0:
            _assert_same(k.forward(x, float(scale), trits), want)
            _assert_same(k.forward(x, np.float32(scale), trits), want)
        with pytest.raises(ValueError, match=r"qweight_scale: expected 1 or 5 values, got shape \(3,\)"):
            k.forward(x, [1.0, 2.0, 3.0], trits)
        with pytest.raises(ValueError, match="qweight_scale: expected a real number"):
            k.forward(x, "1.0", trits)
        for q in (trits.long(), trits.float(), torch.stack([trits, trits], -1)[..., 0]):
            _assert_same(k.forward(x, scale, q), want)
        for v in (x.t().contiguous().t(), torch.stack([x, x], -1)[..., 0], x.clone().requires_grad_(True)):
            _assert_same(k.forward(v, scale, trits), want)
        _assert_same(k.forward(x.reshape(2, 3, 12), scale, trits).reshape(6, 5), want)


@pytest.mark.parametrize("act,gran", KERNEL_CONFIGS)
def test_kernel_refuses_integer_and_numpy_inputs_clearly(act, gran):
    # An integer x used to run and come back as int64 (the float result truncated); F.linear with
    # float weights refuses it. numpy trits/codes raised AttributeError ('no attribute contiguous').
    torch.manual_seed(0)
    k = _kernel(act, gran)
    scale, trits = k.quantize_weights(torch.randn(5, 12))
    with pytest.raises(ValueError, match="forward: x must be a floating-point tensor, got torch.int64"):
        k.forward(torch.ones(2, 12, dtype=torch.int64), scale, trits)
    with pytest.raises(ValueError, match="forward: x must be a torch.Tensor, got ndarray"):
        k.forward(np.ones((2, 12), np.float32), scale, trits)
    with pytest.raises(ValueError, match="pack: trits must be a torch.Tensor, got ndarray"):
        k.pack(trits.numpy())
    with pytest.raises(ValueError, match="unpack: packed must be a torch.Tensor, got ndarray"):
        k.unpack(k.pack(trits).numpy(), 12)
    with pytest.raises(ValueError, match=r"trits.* (dtype torch\.)?int8, got torch\.int64"):
        k.pack(trits.long())


@pytest.mark.parametrize("act,gran", KERNEL_CONFIGS)
def test_kernel_forward_follows_autocast(act, gran):
    torch.manual_seed(0)
    k = _kernel(act, gran)
    scale, trits = k.quantize_weights(torch.randn(5, 12))
    x = _values(6, 12)
    want = k.forward(x, scale, trits)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = k.forward(x, scale, trits)
        assert y.dtype == torch.bfloat16
        assert k.forward(x.double(), scale, trits).dtype == torch.float64
    torch.testing.assert_close(y.float(), want, rtol=2e-2, atol=5e-2)


# --- kuat: sample indices in every container -------------------------------------------------

@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    import kuat

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 3
    from kuat_helpers import write_idx

    folder = tmp_path_factory.mktemp("idx")
    write_idx(folder, images, labels)
    out = folder / "a.kuat"
    kuat.convert_dataset(str(folder), str(out), format="idx", codebook_size=16, quiet=True)
    return kuat.KuatArchive(out)


ONE_INDEX = {
    "int": lambda i: i,
    "negative": lambda i: i - 12,
    "np_int64": np.int64,
    "np_uint8": np.uint8,
    "np_0d": np.array,
    "tensor_0d": torch.tensor,
    "tensor_0d_int32": lambda i: torch.tensor(i, dtype=torch.int32),
}


@pytest.mark.parametrize("kind", sorted(ONE_INDEX))
def test_archive_one_index_any_integer_kind(archive, kind):
    # A 0-d numpy array or tensor (what indexing an index tensor gives) raised TypeError.
    i = ONE_INDEX[kind](5)
    np.testing.assert_array_equal(archive[i]["image"], archive[5]["image"])
    np.testing.assert_array_equal(archive.decode(i)[0], archive.decode(5)[0])
    assert archive.label(i) == archive.label(5) and archive.shape(i) == archive.shape(5)


@pytest.mark.parametrize("bad,error", [(True, TypeError), (5.0, TypeError), (torch.tensor(5.0), TypeError),
                                       ("5", TypeError), (slice(1, 3), TypeError), ([1, 2], TypeError),
                                       (12, IndexError), (-13, IndexError)])
def test_archive_one_index_refusals(archive, bad, error):
    # True was read as sample 1 by archive[True] while get_batch refused bools.
    with pytest.raises(error, match="sample index"):
        archive[bad]


def _mask(rows):
    m = np.zeros(12, bool)
    m[rows] = True
    return m


ROWS = [3, 5, 0, 11]  # in order, so the boolean mask selects the same rows
MANY_INDICES = {
    "list": lambda: ROWS,
    "tuple": lambda: tuple(ROWS),
    "negative": lambda: [3, 5, 0, -1],
    "np_int64": lambda: np.array(ROWS),
    "np_uint16": lambda: np.array(ROWS, np.uint16),
    "np_stepped": lambda: np.array([3, 9, 5, 9, 0, 9, 11, 9])[::2],
    "np_negative_stride": lambda: np.array(ROWS[::-1])[::-1],
    "np_readonly": lambda: _readonly(np.array(ROWS)),
    "tensor": lambda: torch.tensor(ROWS),
    "tensor_int32_stepped": lambda: torch.tensor([3, 9, 5, 9, 0, 9, 11, 9], dtype=torch.int32)[::2],
    "list_of_np_ints": lambda: [np.int64(i) for i in ROWS],
    "list_of_0d_tensors": lambda: [torch.tensor(i) for i in ROWS],
    "generator": lambda: (i for i in ROWS),
    "mask_np": lambda: _mask([0, 3, 5, 11]),
    "mask_tensor": lambda: torch.from_numpy(_mask([0, 3, 5, 11])),
}


@pytest.mark.parametrize("kind", sorted(MANY_INDICES))
def test_archive_many_indices_any_container(archive, kind):
    # Tensors of indices, generators and boolean masks raised TypeError ("got object"); GPUDataset
    # accepted masks and slices: both now share kuat._index.sample_rows.
    rows = sorted(ROWS) if kind.startswith("mask") else ROWS
    want = archive.get_batch(rows)
    got = archive.get_batch(MANY_INDICES[kind]())
    np.testing.assert_array_equal(got["images"], want["images"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_array_equal(archive.decode_batch(MANY_INDICES[kind]()), want["images"])
    np.testing.assert_array_equal(archive.get_indices_batch(MANY_INDICES[kind]())[0],
                                  archive.get_indices_batch(rows)[0])


def test_archive_slices_ranges_and_shapes(archive):
    np.testing.assert_array_equal(archive.get_batch(slice(8, 2, -2))["images"], archive.get_batch([8, 6, 4])["images"])
    np.testing.assert_array_equal(archive.decode_batch(range(2, 5)), archive.decode_batch([2, 3, 4]))
    assert archive.get_batch(torch.zeros(0, dtype=torch.int64))["images"].shape[0] == 0
    with pytest.raises(ValueError, match=r"sample indices must be 1-D .* shape \(2, 2\)"):
        archive.get_batch(np.array([[3, 5], [0, 1]]))  # was flattened silently (numpy keeps the shape)
    with pytest.raises(IndexError, match="boolean mask of shape"):
        archive.get_batch([True, False])
    with pytest.raises(TypeError, match="sample indices must be integers"):
        archive.get_batch(torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("kind", sorted(MANY_INDICES))
def test_gpu_dataset_same_indices_as_archive(archive, kind):
    from kuat.gpu import GPUDataset

    ds = GPUDataset(archive, device="cpu", normalize=False, dtype=torch.uint8, layout="NHWC", preload=False)
    rows = sorted(ROWS) if kind.startswith("mask") else ROWS
    images, labels = ds[MANY_INDICES[kind]()]
    np.testing.assert_array_equal(images.numpy(), archive.decode_batch(rows))
    images, _ = ds[slice(None, None, -3)]  # a negative step (its numpy rows have a negative stride)
    np.testing.assert_array_equal(images.numpy(), archive.decode_batch([11, 8, 5, 2]))


INTEGER_KINDS = {"np_int64": np.int64, "np_int32": np.int32, "tensor_0d": torch.tensor, "np_0d": np.array}


@pytest.mark.parametrize("kind", sorted(INTEGER_KINDS))
def test_kuat_integer_arguments_any_integer_kind(archive, kind, tmp_path):
    # "width must be a non-negative int, got 4" for np.int64(4): numpy and 0-d tensor integers were
    # refused by convert_dataset, GPUDataset(batch_size=), set_epoch; sample_order(1.7) truncated.
    import kuat
    from kuat.gpu import GPUDataset
    from kuat.torch import KuatIterableDataset

    conv = INTEGER_KINDS[kind]
    src = tmp_path / "src"
    src.mkdir()
    from kuat_helpers import write_idx

    rng = np.random.default_rng(1)
    write_idx(src, rng.integers(0, 256, (6, 6, 6), dtype=np.uint8), np.arange(6, dtype=np.uint8))
    want = kuat.convert_dataset(str(src), str(tmp_path / "a.kuat"), format="idx", codebook_size=16, width=4,
                                height=4, limit=5, background=(1, 2, 3), max_pixels=10**6)
    got = kuat.convert_dataset(str(src), str(tmp_path / "b.kuat"), format="idx", codebook_size=conv(16),
                               width=conv(4), height=conv(4), limit=conv(5), bits=conv(4),
                               background=[conv(1), conv(2), conv(3)], max_pixels=conv(10**6))
    assert got["samples"] == want["samples"] == 5
    np.testing.assert_array_equal(kuat.KuatArchive(tmp_path / "b.kuat").decode_batch(range(5)),
                                  kuat.KuatArchive(tmp_path / "a.kuat").decode_batch(range(5)))
    path = archive.path
    assert GPUDataset(path, batch_size=conv(4), device="cpu", normalize=False).batch_size == 4
    ds = kuat.KuatDataset(path, batch_size=conv(4))
    assert ds.batch_size == 4
    np.testing.assert_array_equal(ds.sample_order(conv(1)), ds.sample_order(1))
    assert [b["labels"].tolist() for b in ds.epoch(conv(1))] == [b["labels"].tolist() for b in ds.epoch(1)]
    KuatIterableDataset(path, batch_size=4).set_epoch(conv(2))
    gds = GPUDataset(path, batch_size=4, device="cpu", normalize=False)
    assert [y.tolist() for _, y in gds.epoch(conv(1))] == [y.tolist() for _, y in gds.epoch(1)]


def test_kuat_integer_arguments_refuse_floats_and_bools(archive, tmp_path):
    import kuat
    from kuat.torch import KuatIterableDataset

    from kuat.gpu import GPUDataset

    ds = kuat.KuatDataset(archive.path, batch_size=4)
    gds = GPUDataset(archive.path, batch_size=4, device="cpu", normalize=False)
    for bad in (1.7, True, torch.tensor(1.0), -1, "1"):
        with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
            gds.epoch(bad)  # GPUDataset.epoch(1.7) ran epoch 1 (int() truncated; True ran 1, -1 a raw TypeError)
        with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
            ds.sample_order(bad)
        with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
            KuatIterableDataset(archive.path, batch_size=4).set_epoch(bad)
    with pytest.raises(ValueError, match=r"width must be a non-negative int, got 4.0 \(float\)"):
        kuat.convert_dataset(archive.path, str(tmp_path / "x.kuat"), width=4.0, height=4)
    with pytest.raises(ValueError, match="bits must be a non-negative int, got True"):
        kuat.convert_dataset(archive.path, str(tmp_path / "x.kuat"), bits=True)


@pytest.mark.parametrize("container", ["negative_stride", "readonly", "fortran", "uint16", "uint32", "memmap",
                                       "tensor_int32_noncontiguous"])
def test_gpu_decoder_indices_and_codebook_any_container(archive, container, tmp_path):
    # A numpy array with negative strides (indices or codebook) raised torch's "negative strides
    # are not currently supported"; read-only arrays warned.
    from kuat.gpu import GPUDecoder

    idx, _ = archive.get_indices_batch([3, 5, 7])
    idx64 = idx.astype(np.int64)
    conv = {"negative_stride": lambda a: np.ascontiguousarray(a[::-1])[::-1], "readonly": _readonly,
            "fortran": np.asfortranarray, "uint16": lambda a: a.astype(np.uint16), "uint32": lambda a: a.astype(np.uint32),
            "memmap": lambda a: _memmap(a, tmp_path),
            "tensor_int32_noncontiguous": lambda a: torch.from_numpy(a.astype(np.int32)).t().contiguous().t()}[container]
    dec = GPUDecoder(archive, device="cpu")
    want = dec.decode_batch(idx64)
    _assert_same(dec.decode_batch(conv(idx64)), want)
    cb = archive.codebook_numpy()
    w, h = archive.dimensions
    if container.startswith(("uint", "tensor")):
        return
    _assert_same(GPUDecoder(conv(cb), device="cpu").decode_batch(idx64, w, h),
                 GPUDecoder(cb, device="cpu").decode_batch(idx64, w, h))


@pytest.mark.filterwarnings("error::FutureWarning")  # numpy row_scale == "auto"
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("container", ["numpy", "list", "float64", "stepped", "negative_stride", "readonly"])
def test_packed_linear_row_scale_any_container(container, backend):
    # A strided row_scale tensor was stored as is and the C++ forward then failed with pybind's
    # "incompatible function arguments"; a negative-stride numpy one raised torch's stride error.
    torch.manual_seed(0)
    w, bias, x = torch.randn(6, 8), torch.randn(6), torch.randn(3, 8)
    rs = torch.rand(6) + 0.5
    conv = {"numpy": lambda t: t.numpy(), "list": lambda t: t.tolist(), "float64": lambda t: t.double(),
            "stepped": lambda t: torch.stack([t, t], -1)[:, 0],
            "negative_stride": lambda t: np.ascontiguousarray(t.numpy()[::-1])[::-1],
            "readonly": lambda t: _readonly(t.numpy())}[container]
    with lowbit.backend(backend):
        want = PackedLinear.from_weight(w, bias, CFG, row_scale=rs)(x)
        _assert_same(PackedLinear.from_weight(w, bias, CFG, row_scale=conv(rs))(x), want)
        _assert_same(PackedLinear.from_weight(w, torch.stack([bias, bias], -1)[:, 0], CFG, row_scale=rs)(x), want)
    with pytest.raises(ValueError, match="PackedLinear: bias must be a 1-D tensor of out_features values or None, got ndarray"):
        PackedLinear.from_weight(w, bias.numpy(), CFG)


@pytest.mark.parametrize("kind", ["float", "np_float32", "np_0d", "tensor", "tensor_0d", "tuple", "np_array"])
def test_gpu_decoder_mean_std_any_container(archive, kind):
    # np.float32(0.5) raised "'numpy.float32' object is not iterable", a 0-d array "iteration over a
    # 0-d array"; KuatDataset (its own helper) took both.
    from kuat.gpu import GPUDecoder

    conv = {"float": float, "np_float32": np.float32, "np_0d": np.array, "tensor": lambda v: torch.tensor([v]),
            "tensor_0d": torch.tensor, "tuple": lambda v: (v,), "np_array": lambda v: np.array([v])}[kind]
    idx, _ = archive.get_indices_batch([1, 2])
    dec = GPUDecoder(archive, device="cpu")
    want = dec.decode(idx, normalize=True, mean=[0.5], std=[0.25])
    _assert_same(dec.decode(idx, normalize=True, mean=conv(0.5), std=conv(0.25)), want)
    with pytest.raises(ValueError, match="mean must be a number or a sequence of numbers"):
        dec.decode(idx, normalize=True, mean="5")


def test_convert_dataset_names_a_non_path_source(tmp_path):
    # An array as src raised os.fspath's "expected str, bytes or os.PathLike object, not ndarray".
    import kuat

    with pytest.raises(TypeError, match=r"src must be a path \(str or os.PathLike\), got ndarray .*IDX"):
        kuat.convert_dataset(np.zeros((4, 8, 8), np.uint8), str(tmp_path / "x.kuat"))
    with pytest.raises(TypeError, match=r"dst must be a path \(str or os.PathLike\), got Tensor"):
        kuat.convert_dataset(str(tmp_path), torch.zeros(1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs_on_every_backend(backend):
    # pack of zero vectors on the PyTorch twin raised "cannot reshape tensor of 0 elements into
    # shape [0, -1]" (the C++ path returned an empty stream).
    with lowbit.backend(backend):
        b, t = torch.zeros(0, 2, 4, dtype=torch.uint8), torch.zeros(0, dtype=torch.uint8)
        packed = coset.pack(b, t, CFG)
        assert packed.numel() == coset.packed_size(CFG, 0)
        _assert_same(coset.unpack(packed, 0, CFG), (b, t))
        assert encode(torch.zeros(2, 0, 4), LAT, CFG)[1].shape == (2, 0)
        _assert_same(decode(torch.zeros(2, 0, 2, 4, dtype=torch.uint8), LAT, CFG), torch.zeros(2, 0, 4))
        _assert_same(quantize_tensor(torch.zeros(3, 0), LAT, CFG), torch.zeros(3, 0))
        _assert_same(LAT.Q(torch.zeros(0, 4)), torch.zeros(0, 4))
        _assert_same(coset.QuantizedMatrix(LAT, CFG, torch.zeros(0, 8)).matvec(torch.ones(8)), torch.zeros(0))


@pytest.mark.parametrize("act,gran", KERNEL_CONFIGS)
@pytest.mark.parametrize("mode", ["train", "eval", "deployed"])
def test_bitlinear_gradients_are_the_documented_straight_through_estimator(act, gran, mode):
    from bitcore.ops import quant

    torch.manual_seed(0)
    layer = BitLinear(12, 5, quant_config=BitQuantConfig(activation_dtype=act, weight_granularity=gran))
    layer = {"train": layer.train, "eval": layer.eval, "deployed": layer.deploy}[mode]()
    x = torch.randn(12, 3, 2).permute(2, 1, 0).requires_grad_(True)  # 3-D, and not contiguous
    y = layer(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    if mode == "train":
        w_q = quant.fake_quantize_weights(layer.weight.detach(), gran)
        x_q = x.detach() if act == "float32" else quant.fake_quantize_activations(x.detach(), "per_tensor")
        torch.testing.assert_close(layer.weight.grad, gy.reshape(-1, 5).t() @ x_q.reshape(-1, 12))
        torch.testing.assert_close(layer.bias.grad, gy.reshape(-1, 5).sum(0))
    else:
        packed, scales = layer.packed_weights()
        w_q = layer.kernel.unpack(packed, 12).float() * scales.float().reshape(-1, 1)
    torch.testing.assert_close(x.grad, gy @ w_q)


@pytest.mark.parametrize("mode", ["train", "eval", "deployed"])
def test_coset_layer_gradients_are_the_straight_through_estimator(mode):
    torch.manual_seed(0)
    layer = coset.QLinear(12, 5, CFG, quantize_weights=True)
    layer = layer.train() if mode == "train" else layer.eval()
    w_q = layer.quantized_weight().detach()
    if mode == "deployed":
        layer = layer.deploy()
        w_q = layer.decoded_weight()
    x = torch.randn(12, 3, 2).permute(2, 1, 0).requires_grad_(True)
    y = layer(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    torch.testing.assert_close(x.grad, gy @ w_q)
    if mode != "deployed":
        torch.testing.assert_close(layer.weight.grad, gy.reshape(-1, 5).t() @ x.detach().reshape(-1, 12))

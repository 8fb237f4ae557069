"""BitLab kernels: the C++ kernels against the pure-PyTorch reference at every SIMD level."""

from __future__ import annotations

import pytest
import torch

import lowbit
from bitcore.config import BitQuantConfig
from bitcore.kernels import BitKernelBase, CppInt8Kernel, KernelRegistry, TorchReferenceKernel
from bitcore.kernels.bindings import bitlinear_cpp as cpp
from bitcore.ops import packing, quant

AWKWARD = [1, 3, 7, 15, 17, 33, 100, 257]
CONFIGS = [
    BitQuantConfig(wg, ad, ag)
    for wg in ("per_tensor", "per_channel")
    for ad in ("int8", "float32")
    for ag in ("per_tensor", "per_channel")
]


@pytest.fixture
def each_simd_level():
    saved = lowbit.simd_level()
    yield lowbit.available_simd_levels()
    lowbit.set_simd_level(saved)


def test_config_validation():
    with pytest.raises(ValueError, match="weight_granularity"):
        BitQuantConfig(weight_granularity="per_block")
    with pytest.raises(ValueError, match="activation_dtype"):
        BitQuantConfig(activation_dtype="int4")
    with pytest.raises(ValueError, match="activation_granularity"):
        BitQuantConfig(activation_granularity=None)
    c = BitQuantConfig("per_channel", "float32", "per_channel")
    assert BitQuantConfig.from_dict(c.to_dict()) == c and hash(c) == hash(BitQuantConfig(**c.to_dict()))
    with pytest.raises(AttributeError):
        c.activation_dtype = "int8"


def test_registry_priorities_and_fallback():
    config = BitQuantConfig(activation_dtype="int8")
    with lowbit.backend("auto"):
        assert isinstance(KernelRegistry.get_kernel_for_config(config), CppInt8Kernel)
        assert KernelRegistry.get_kernel_from_config(config).has_cpp_backend

    @KernelRegistry.register(activation_dtype="int8", weight_granularity="per_channel", priority=500)
    class Preferred(TorchReferenceKernel):
        pass

    try:
        assert type(KernelRegistry.get_kernel_for_config(BitQuantConfig("per_channel", "int8"))) is Preferred
        with lowbit.backend("auto"):
            assert type(KernelRegistry.get_kernel_for_config(BitQuantConfig("per_tensor", "int8"))) is CppInt8Kernel
    finally:
        KernelRegistry.unregister(Preferred)
    with pytest.raises(ValueError):
        KernelRegistry.register(activation_dtype="int3")
    with pytest.raises(ValueError):
        KernelRegistry.register()(int)
    with pytest.raises(ValueError):
        KernelRegistry.get_kernel_for_config({"activation_dtype": "int8"})
    with pytest.raises(TypeError):
        BitKernelBase(config)  # abstract


@pytest.mark.parametrize("cols", AWKWARD + [256, 513])
def test_packing_twins_agree(cols):
    g = torch.Generator().manual_seed(cols)
    trits = torch.randint(-1, 2, (5, cols), generator=g, dtype=torch.int8)
    packed = packing.pack_2bit(trits)
    assert packed.shape == (5, packing.packed_row_bytes(cols))
    assert torch.equal(packed, cpp.pack_2bit(trits))
    assert torch.equal(packing.unpack_2bit(packed, cols), trits)
    assert torch.equal(cpp.unpack_2bit(packed, cols), trits)
    stored = packing.pack_base3(trits)
    assert stored.numel() == (5 * cols + 4) // 5
    assert torch.equal(stored, cpp.pack_base3(trits))
    assert torch.equal(packing.unpack_base3(stored, 5, cols), trits)
    assert torch.equal(cpp.unpack_base3(stored, 5, cols), trits)


def test_corrupt_packed_bytes_are_rejected():
    trits = torch.zeros((2, 10), dtype=torch.int8)
    packed = cpp.pack_2bit(trits)
    packed[0, 0] = 0xFF
    with pytest.raises(ValueError, match="0b11"):
        cpp.unpack_2bit(packed, 10)
    with pytest.raises(ValueError):
        packing.unpack_2bit(packed, 10)
    with pytest.raises(ValueError, match="243"):
        cpp.unpack_base3(torch.tensor([250, 0, 0, 0], dtype=torch.uint8), 2, 10)
    with pytest.raises(ValueError):
        cpp.unpack_base3(torch.zeros(3, dtype=torch.uint8), 2, 10)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_quantizer_twins_agree(granularity):
    g = torch.Generator().manual_seed(7)
    w = torch.randn(33, 100, generator=g) * 0.02
    t_ref, s_ref = quant.quantize_weights(w, granularity)
    t_cpp, s_cpp = cpp.quantize_weights(w, granularity)
    assert torch.equal(t_ref, t_cpp) and torch.equal(s_ref, s_cpp)
    x = torch.randn(9, 100, generator=g) * 3
    x[2] = 0.0  # a zero row: scale 0, values 0
    q_ref, a_ref = quant.quantize_activations(x, granularity)
    q_cpp, a_cpp = cpp.quantize_activations(x, granularity)
    assert torch.equal(q_ref, q_cpp) and torch.equal(a_ref, a_cpp)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c.to_dict().values()))
def test_cpp_kernels_bit_identical_to_reference_at_every_level(config, each_simd_level):
    reference = TorchReferenceKernel(config)
    with lowbit.backend("auto"):
        native = KernelRegistry.get_kernel_for_config(config)
    assert native.has_cpp_backend
    g = torch.Generator().manual_seed(3)
    for k in AWKWARD:
        for n in (1, 7, 17):
            m = 5 if k % 2 else 1
            w = torch.randn(n, k, generator=g)
            x = torch.randn(m, k, generator=g)
            bias = torch.randn(n, generator=g)
            trits, scales = native.ternarize(w)
            packed = native.pack(trits)
            expected = reference.linear(x, packed, k, scales, bias)
            for level in each_simd_level:
                lowbit.set_simd_level(level)
                got = native.linear(x, packed, k, scales, bias)
                assert lowbit._native.last_dispatched_level() == level
                assert torch.equal(got, expected), (level, n, k)


def test_int8_gemm_exact_and_unsaturated(each_simd_level):
    k, n = 1031, 6
    trits = torch.ones((n, k), dtype=torch.int8)
    trits[1] = -1
    xq = torch.full((4, k), -128, dtype=torch.int8)
    xq[0, ::2] = 127
    packed = cpp.pack_2bit(trits)
    expected = (xq.long() @ trits.long().t()).int()
    for level in each_simd_level:
        lowbit.set_simd_level(level)
        assert torch.equal(cpp.gemm_int8(xq, packed), expected), level


def test_native_rejects_bad_shapes_and_values():
    trits = torch.zeros((4, 20), dtype=torch.int8)
    packed = cpp.pack_2bit(trits)
    scales = torch.ones(4)
    with pytest.raises(ValueError, match="features"):
        cpp.bitlinear_int8(torch.zeros(2, 21), packed, 20, scales, None, "per_tensor")
    with pytest.raises(ValueError, match="weight_scale"):
        cpp.bitlinear_int8(torch.zeros(2, 20), packed, 20, torch.ones(3), None, "per_tensor")
    with pytest.raises(ValueError, match="NaN"):
        cpp.bitlinear_f32(torch.full((2, 20), float("nan")), packed, 20, scales, None)
    with pytest.raises(ValueError, match="granularity"):
        cpp.bitlinear_int8(torch.zeros(2, 20), packed, 20, scales, None, "per_block")
    with pytest.raises(ValueError, match="trit"):
        cpp.pack_2bit(torch.full((2, 3), 2, dtype=torch.int8))
    with pytest.raises(ValueError, match="dtype"):
        cpp.bitlinear_f32(torch.zeros(2, 20, dtype=torch.float64), packed, 20, scales, None)

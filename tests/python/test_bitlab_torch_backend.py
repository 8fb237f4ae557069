"""BitLab pure-PyTorch backend: every op bit-identical to the C++ core on CPU tensors, over awkward
sizes and every config, and never touching the native module or numpy."""

from __future__ import annotations

import pytest
import torch

import lowbit
from bitcore.config import BitQuantConfig
from bitcore.kernels import KernelRegistry, TorchReferenceKernel
from bitcore.kernels.bindings import bitlinear_cpp as cpp
from bitcore.ops import dispatch, quant, torch_ops
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, BitMLPConfig

AWKWARD = [1, 3, 7, 15, 17, 33, 64, 100, 255, 257, 513]
CONFIGS = [
    BitQuantConfig(wg, ad, ag)
    for wg in ("per_tensor", "per_channel")
    for ad in ("int8", "float32")
    for ag in ("per_tensor", "per_channel")
]


def config_id(c):
    return "-".join(c.to_dict().values())


def heavy_tailed(shape, g, scale=1.0):
    """Values over many binades (sums in float64 then lose bits, unlike plain randn)."""
    return torch.randn(shape, generator=g) * torch.exp(torch.randn(shape, generator=g) * 4) * scale


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_quantizers_bit_identical(granularity):
    g = torch.Generator().manual_seed(11)
    for k in AWKWARD:
        for n in (1, 5, 17):
            w = heavy_tailed((n, k), g, 0.02)
            t_cpp, s_cpp = cpp.quantize_weights(w, granularity)
            t_pt, s_pt = torch_ops.quantize_weights(w, granularity)
            assert torch.equal(t_cpp, t_pt) and torch.equal(s_cpp, s_pt), (n, k)
            x = heavy_tailed((n + 2, k), g)
            x[0] = 0.0
            q_cpp, a_cpp = cpp.quantize_activations(x, granularity)
            q_pt, a_pt = torch_ops.quantize_activations(x, granularity)
            assert torch.equal(q_cpp, q_pt) and torch.equal(a_cpp, a_pt), (n, k)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_weight_scale_sum_runs_in_the_cpp_order(granularity, monkeypatch):
    # The C++ core adds |w| left to right in float64. Here 1 + 2^-24 is a float32 tie after the
    # first two terms, and each later 2^-54 is lost in that running sum; any other order (torch's
    # vectorized sum) keeps some of them and rounds the mean up: 0x1.000002p-10 instead of 2^-10.
    n = 1024
    w = torch.full((3, n), 2.0 ** -54)
    w[:, 0] = 1.0
    w[:, 1] = 2.0 ** -24
    expected = cpp.quantize_weights(w, granularity)[1]
    assert torch.equal(expected, torch.full((3,), 2.0 ** -10))
    assert torch.equal(quant.weight_scales(w, granularity), expected)
    monkeypatch.setattr(quant, "_SEQUENTIAL_BLOCK", 100)  # the chain continues across cumsum blocks
    assert torch.equal(quant.weight_scales(w, granularity), expected)


def test_weight_scales_of_heavy_tailed_weights(monkeypatch):
    monkeypatch.setattr(quant, "_SEQUENTIAL_BLOCK", 1000)
    g = torch.Generator().manual_seed(5)
    for seed in range(4):
        w = heavy_tailed((64, 4099), g)
        w[seed, 0] = 2.0 ** 40  # later small terms now round in the running sum
        for granularity in ("per_tensor", "per_channel"):
            assert torch.equal(quant.weight_scales(w, granularity), cpp.quantize_weights(w, granularity)[1])


def test_packing_ops_bit_identical():
    g = torch.Generator().manual_seed(2)
    for k in AWKWARD:
        trits = torch.randint(-1, 2, (6, k), generator=g, dtype=torch.int8)
        packed = torch_ops.pack_2bit(trits)
        assert torch.equal(packed, cpp.pack_2bit(trits))
        assert torch.equal(torch_ops.unpack_2bit(packed, k), cpp.unpack_2bit(packed, k))
        stored = torch_ops.pack_base3(trits)
        assert torch.equal(stored, cpp.pack_base3(trits))
        assert torch.equal(torch_ops.unpack_base3(stored, 6, k), trits)


def test_gemm_int8_exact_at_the_extremes(monkeypatch):
    k, n = 1031, 6
    trits = torch.ones((n, k), dtype=torch.int8)
    trits[1] = -1
    trits[2, ::3] = 0
    xq = torch.full((4, k), -128, dtype=torch.int8)
    xq[0, ::2] = 127
    packed = cpp.pack_2bit(trits)
    expected = cpp.gemm_int8(xq, packed)
    assert torch.equal(torch_ops.gemm_int8(xq, packed), expected)
    assert torch.equal(expected, (xq.long() @ trits.long().t()).int())
    monkeypatch.setattr(torch_ops, "EXACT_F32_TERMS", 100)  # the chunked float32 path
    assert torch.equal(torch_ops.gemm_int8(xq, packed), expected)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_linear_ops_bit_identical(config, monkeypatch):
    # Small partial-sum blocks exercise the M / N blocking of the float path too.
    monkeypatch.setattr(torch_ops, "_F32_BLOCK_ELEMENTS", 64 * 8)
    g = torch.Generator().manual_seed(3)
    native = CppKernel = KernelRegistry.get_kernel_by_name(
        "CppInt8Kernel" if config.activation_dtype == "int8" else "CppFloat32Kernel", config)
    reference = TorchReferenceKernel(config)
    assert CppKernel.has_cpp_backend and not reference.has_cpp_backend
    for k in AWKWARD:
        for n in (1, 7, 17):
            m = 5 if k % 2 else 1
            w = heavy_tailed((n, k), g, 0.05)
            x = heavy_tailed((m, k), g)
            bias = torch.randn(n, generator=g)
            trits, scales = native.ternarize(w)
            t2, s2 = reference.ternarize(w)
            assert torch.equal(trits, t2) and torch.equal(scales, s2)
            packed = native.pack(trits)
            for b in (bias, None):
                got = reference.linear(x, packed, k, scales, b)
                assert torch.equal(got, native.linear(x, packed, k, scales, b)), (n, k)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_layers_and_models_identical_under_both_backends(config):
    torch.manual_seed(0)
    layer = BitLinear(131, 29, quant_config=config).eval()
    x = torch.randn(3, 4, 131) * 2
    with lowbit.backend("auto"):
        assert layer.kernel.has_cpp_backend
        y_cpp = layer(x)
    with lowbit.backend("torch"):
        assert type(layer.kernel) is TorchReferenceKernel and not layer.kernel.has_cpp_backend
        assert torch.equal(layer(x), y_cpp)
        layer.deploy()
        assert torch.equal(layer(x), y_cpp)
    model = AutoBitModel.from_config(BitMLPConfig(3, 40, 24, 5, quant_config=config)).deploy()
    x = torch.randn(7, 40)
    with lowbit.backend("auto"):
        y = model(x)
    with lowbit.backend("torch"):
        assert torch.equal(model(x), y)


def test_cpp_backend_refuses_what_it_cannot_run():
    with lowbit.backend("cpp"):
        assert KernelRegistry.get_kernel_for_config(BitQuantConfig()).has_cpp_backend
        with pytest.raises(ValueError, match="cpp"):
            KernelRegistry.get_kernel_for_config(BitQuantConfig(), "meta")


def test_torch_ops_raise_value_errors():
    packed = torch_ops.pack_2bit(torch.zeros((4, 20), dtype=torch.int8))
    scales = torch.ones(4)
    with pytest.raises(ValueError, match="in_features"):
        torch_ops.linear_int8(torch.zeros(2, 21), packed, 20, scales, None, "per_tensor")
    with pytest.raises(ValueError, match="weight_scale"):
        torch_ops.linear_int8(torch.zeros(2, 20), packed, 20, torch.ones(3), None, "per_tensor")
    with pytest.raises(ValueError, match="NaN"):
        torch_ops.linear_f32(torch.full((2, 20), float("nan")), packed, 20, scales, None)
    with pytest.raises(ValueError, match="granularity"):
        torch_ops.linear_int8(torch.zeros(2, 20), packed, 20, scales, None, "per_block")
    with pytest.raises(ValueError, match="dtype"):
        torch_ops.linear_f32(torch.zeros(2, 20, dtype=torch.float64), packed, 20, scales, None)
    with pytest.raises(ValueError, match="NaN"):
        torch_ops.quantize_weights(torch.tensor([[1.0, float("inf")]]), "per_tensor")
    with pytest.raises(ValueError, match="device"):
        torch_ops.linear_f32(torch.zeros(2, 20), packed.to("meta"), 20, scales, None)


def test_op_table_names_every_dispatched_op():
    assert set(torch_ops.OPS) == {"bitlab." + op for op in dispatch._CPP_NAMES}
    for name, fn in torch_ops.OPS.items():
        assert getattr(torch_ops, name.split(".", 1)[1]) is fn


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_torch_path_never_touches_native_or_numpy(config, no_native_no_numpy):
    with lowbit.backend("torch"):
        torch.manual_seed(0)
        layer = BitLinear(70, 9, quant_config=config)
        x = torch.randn(4, 70)
        y_train = layer(x)
        layer.eval()
        y = layer(x)
        assert layer.qweight.dtype == torch.int8 and layer.qweight_scale.dtype == torch.float32
        sd = layer.deploy().state_dict()
        assert torch.equal(layer(x), y) and y_train.shape == y.shape
        fresh = BitLinear(70, 9, quant_config=config)
        fresh.load_state_dict(sd)
        assert torch.equal(fresh.eval()(x), y)
        from bitcore.ops import bitlinear

        scale, qweight = bitlinear.quantize_weights(torch.randn(9, 70), config)
        assert bitlinear.eval_forward(x, scale, qweight, None, config).shape == (4, 9)
        model = AutoBitModel.from_config(BitMLPConfig(2, 70, 16, 3, quant_config=config)).deploy()
        assert model(x).shape == (4, 3)


def test_cuda_ops_take_over_their_op_and_fall_back_to_torch(monkeypatch):
    from lowbit import _cuda_ops

    from bitcore.kernels import CudaFloat32Kernel, CudaInt8Kernel

    seen = []

    def fake_linear_int8(*args):
        seen.append(len(args))
        return torch_ops.linear_int8(*args)

    monkeypatch.setattr(_cuda_ops, "_OPS", {})
    assert not CudaInt8Kernel.is_available() and not CudaFloat32Kernel.is_available()
    _cuda_ops.register("bitlab.linear_int8")(fake_linear_int8)
    assert CudaInt8Kernel.is_available() and not CudaFloat32Kernel.is_available()
    kernel = CudaInt8Kernel(BitQuantConfig(activation_dtype="int8"))
    assert kernel.has_cuda_backend and not kernel.has_cpp_backend
    w, x = torch.randn(5, 40), torch.randn(3, 40)
    with pytest.raises(ValueError, match="cuda"):
        kernel.ternarize(w)  # a CPU tensor: this kernel serves CUDA tensors only
    trits, scales = dispatch.call("quantize_weights", w, "per_tensor", impl="cuda")  # no CUDA op: PyTorch
    packed = dispatch.call("pack_2bit", trits, impl="cuda")
    y = dispatch.call("linear_int8", x, packed, 40, scales, None, "per_tensor", impl="cuda")
    assert seen == [6] and torch.equal(y, cpp.bitlinear_int8(x, packed, 40, scales, None, "per_tensor"))
    y = dispatch.call("linear_f32", x, packed, 40, scales, None, impl="cuda")  # not registered: PyTorch
    assert torch.equal(y, cpp.bitlinear_f32(x, packed, 40, scales, None)) and seen == [6]


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_activations_whose_max_is_below_127_over_flt_max_quantize_to_zeros_in_both_backends(granularity):
    # 127 / a overflows float32 for a < 127 / FLT_MAX (about 3.7e-37): inv = 0 (ternary.h), zeros.
    x = torch.zeros(3, 40)
    x[0, :5] = torch.tensor([1e-38, -2e-39, 0.0, 5e-40, 3e-38])
    x[1, 7] = 1e-45
    if granularity == "per_channel":
        x[2] = torch.linspace(-1, 1, 40)
    for q, a in (cpp.quantize_activations(x, granularity), torch_ops.quantize_activations(x, granularity)):
        rows = [0, 1] if granularity == "per_channel" else []
        for r in rows:
            assert torch.equal(q[r], torch.zeros_like(q[r])), r
        assert bool(torch.isfinite(a).all())
    q_cpp, a_cpp = cpp.quantize_activations(x, granularity)
    q_pt, a_pt = torch_ops.quantize_activations(x, granularity)
    assert torch.equal(q_cpp, q_pt) and torch.equal(a_cpp, a_pt)
    if granularity == "per_tensor":  # max 1e-45 rows alone: per-tensor max 3e-38 < 3.7e-37: all zeros
        assert torch.equal(q_cpp, torch.zeros_like(q_cpp))

"""BitLab on every device: results on the input's device, the CPU path's values, dtype casts of
layers and models, kernels picked by config and device, and errors naming both devices."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import lowbit
from bitcore.config import BitQuantConfig
from bitcore.kernels import CppInt8Kernel, KernelRegistry, TorchReferenceKernel
from bitcore.ops import bitlinear
from bitlayers.bitlinear import BitLinear
from bitmodels import AutoBitModel, BitMLPConfig, export_bitmlp, load_bitmlp

CONFIGS = [BitQuantConfig("per_tensor", "int8", "per_tensor"), BitQuantConfig("per_channel", "int8", "per_channel"),
           BitQuantConfig("per_channel", "float32", "per_tensor"), BitQuantConfig()]


def config_id(c):
    return "-".join(c.to_dict().values())


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_layer_train_eval_deploy_on_every_device(config, device, backend_name):
    torch.manual_seed(0)
    cpu_layer = BitLinear(300, 33, quant_config=config)
    x_cpu = torch.randn(2, 5, 300)
    with lowbit.backend("auto"):
        expected = cpu_layer.eval()(x_cpu)  # the C++ path
    layer = BitLinear(300, 33, quant_config=config).to(device)
    layer.load_state_dict(cpu_layer.state_dict())
    x = x_cpu.to(device)
    layer.train()
    y_train = layer(x)
    assert y_train.device == x.device and y_train.shape == (2, 5, 33)
    y_train.sum().backward()
    assert layer.weight.grad.device == x.device
    layer.eval()
    assert layer.kernel.has_cpp_backend == (x.device.type == "cpu" and backend_name == "auto")
    y = layer(x)
    assert y.device == x.device
    # Bit-identical to the C++ path (the weight scale on a non-CPU device may differ by
    # DEVICE_SCALE_ULPS, which random weights do not hit).
    assert torch.equal(y.cpu(), expected)
    assert layer.qweight.device == x.device and layer.qweight_scale.device == x.device
    layer.deploy()
    assert layer.packed_2bit.device == x.device and torch.equal(layer(x).cpu(), expected)
    sd = layer.state_dict()
    assert sd["packed_weight"].device == x.device
    again = BitLinear(300, 33, quant_config=config).to(device)
    again.load_state_dict(sd)
    assert again.deployed and again.packed_2bit.device == x.device
    assert torch.equal(again.eval()(x).cpu(), expected)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_functional_ops_stay_on_the_device(config, device, backend_name):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(9, 40, generator=g)
    x = torch.randn(4, 40, generator=g)
    b = torch.randn(9, generator=g)
    with lowbit.backend("auto"):
        scale_cpu, q_cpu = bitlinear.quantize_weights(w, config)
        expected = bitlinear.eval_forward(x, scale_cpu, q_cpu, b, config)
    scale, q = bitlinear.quantize_weights(w.to(device), config)
    assert scale.device == q.device == w.to(device).device
    assert torch.equal(q.cpu(), q_cpu)
    y = bitlinear.eval_forward(x.to(device), scale, q, b.to(device), config)
    assert y.device == x.to(device).device and torch.equal(y.cpu(), expected)
    y2 = bitlinear(x.to(device), w.to(device), b.to(device), config)  # the callable module
    assert torch.equal(y2.cpu(), expected)
    t = bitlinear.train_forward(x.to(device), w.to(device), b.to(device), config)
    assert t.device == x.to(device).device


def test_model_on_every_device(device, backend_name, tmp_path):
    torch.manual_seed(0)
    config = BitMLPConfig(3, 50, 40, 7, dropout=0.1, quant_config=BitQuantConfig("per_channel", "int8", "per_channel"))
    model = AutoBitModel.from_config(config).deploy()
    x = torch.randn(6, 50)
    with lowbit.backend("auto"):
        expected = model(x)
    model.to(device)
    y = model(x.to(device))
    assert y.device == x.to(device).device and torch.equal(y.cpu(), expected)
    path = export_bitmlp(model, tmp_path / "m.blm")  # export copies to the host: a file is host data
    assert torch.equal(torch.from_numpy(load_bitmlp(path).forward(x.numpy())), expected)


def test_registry_picks_by_config_and_device(backend_name):
    int8 = BitQuantConfig(activation_dtype="int8")
    cpu_kernel = KernelRegistry.get_kernel_for_config(int8, "cpu")
    if backend_name == "auto":
        assert type(cpu_kernel) is CppInt8Kernel and cpu_kernel.has_cpp_backend
    else:
        assert type(cpu_kernel) is TorchReferenceKernel and not cpu_kernel.has_cpp_backend
    meta = KernelRegistry.get_kernel_for_config(int8, torch.device("meta"))
    assert type(meta) is TorchReferenceKernel and not meta.has_cpp_backend
    assert KernelRegistry.candidates(int8, "meta") == [TorchReferenceKernel]
    if torch.cuda.is_available():
        cuda = KernelRegistry.get_kernel_for_config(int8, "cuda")
        assert not cuda.has_cpp_backend and cuda.supports_device(torch.device("cuda"))


def test_a_cpp_kernel_refuses_other_devices():
    kernel = KernelRegistry.get_kernel_by_name("CppInt8Kernel", BitQuantConfig(activation_dtype="int8"))
    with pytest.raises(ValueError, match="meta"):
        kernel.forward(torch.empty(2, 8, device="meta"), torch.tensor(1.0), torch.zeros(3, 8, dtype=torch.int8))


def test_input_on_another_device_names_both_devices():
    layer = BitLinear(8, 4)
    x = torch.empty(2, 8, device="meta")
    for mode in (layer.train, layer.eval, layer.deploy):
        mode()
        with pytest.raises(ValueError, match="meta.*cpu"):
            layer(x)
    with pytest.raises(ValueError, match="meta.*cpu"):
        bitlinear.train_forward(x, torch.randn(4, 8))
    with pytest.raises(ValueError, match="meta.*cpu"):
        bitlinear.eval_forward(x, torch.tensor(1.0), torch.zeros(4, 8, dtype=torch.int8))


@pytest.mark.parametrize("cast", ["bfloat16", "half", "float64"])
def test_dtype_casts_of_layers(cast, device, backend_name):
    dtype = {"bfloat16": torch.bfloat16, "half": torch.float16, "float64": torch.float64}[cast]
    torch.manual_seed(0)
    config = BitQuantConfig("per_channel", "int8", "per_channel")
    x = torch.randn(4, 64, device=device)
    deployed = BitLinear(64, 8, quant_config=config).to(device).eval().deploy()
    y32 = deployed(x)
    scales = deployed.weight_scale.clone()
    deployed.half() if cast == "half" else deployed.to(dtype)
    assert deployed.weight_scale.dtype == torch.float32 and torch.equal(deployed.weight_scale, scales)
    assert deployed.bias.dtype == dtype
    y = deployed(x.to(dtype))
    assert y.dtype == dtype and y.device == x.device
    # Scales stayed float32; only the input, the bias and the output were rounded to the dtype.
    assert torch.allclose(y.float(), y32, atol=0.02 * float(y32.abs().max()))
    assert deployed(x).dtype == torch.float32  # the output follows the input's dtype
    assert deployed.state_dict()["weight_scale"].dtype == torch.float32
    live = BitLinear(64, 8, quant_config=config).to(device)
    live.to(dtype)
    for mode in (live.train, live.eval):
        mode()
        for in_dtype in (dtype, torch.float32):
            out = live(x.to(in_dtype))
            assert out.dtype == in_dtype and out.device == x.device
    assert live.qweight_scale.dtype == torch.float32


def test_dtype_casts_of_models(device):
    torch.manual_seed(0)
    model = AutoBitModel.from_config(BitMLPConfig(3, 32, 16, 4, quant_config=BitQuantConfig(activation_dtype="int8")))
    model.to(device).deploy()
    x = torch.randn(5, 32, device=device)
    model.to(torch.bfloat16)
    assert model(x.bfloat16()).dtype == torch.bfloat16
    model.half()
    if device.type != "cpu" or hasattr(torch, "compile"):  # torch 1.x has no float16 ReLU on the CPU
        assert model(x.half()).dtype == torch.float16
    assert model.network[0](x.half()).dtype == torch.float16
    model.float()
    assert model(x).dtype == torch.float32


def test_module_level_device_moves_keep_outputs(device):
    torch.manual_seed(0)
    layer = BitLinear(40, 6, quant_config=BitQuantConfig(activation_dtype="int8")).eval()
    x = torch.randn(3, 40)
    y = layer(x)
    model = nn.Sequential(layer).to(device)
    assert torch.equal(model(x.to(device)).cpu(), y)
    model.cpu()
    assert torch.equal(model(x), y)

"""The BitLab seed's examples (the user-facing contract), run exactly as written.

Copied verbatim from the seed README. Blocks that rely on names imported by earlier blocks (as in a
notebook session: Example 2 uses ``torch``, "Verify C++ Backend" uses ``BitLinear``) run in one
shared namespace in README order; the self-contained ones also run alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SEED_BLOCKS = {}
SEED_BLOCKS["verify_installation"] = "from bitcore.config import BitQuantConfig\nfrom bitcore.kernels import KernelRegistry\nfrom bitlayers.bitlinear import BitLinear\n\n# Create config\nconfig = BitQuantConfig(\n    activation_dtype='int8',\n    activation_granularity='per_tensor',\n    weight_granularity='per_tensor'\n)\n\n# Test kernel dispatch\nkernel = KernelRegistry.get_kernel_for_config(config)\nprint(f'✅ BitLab installation successful!')\nprint(f'Kernel: {type(kernel).__name__}')\nprint(f'Has C++ backend: {kernel.has_cpp_backend}')\n"
SEED_BLOCKS["example1_first_layer"] = 'import torch\nfrom bitcore.config import BitQuantConfig\nfrom bitlayers.bitlinear import BitLinear\n\n# Step 1: Create quantization configuration\nconfig = BitQuantConfig(\n    activation_dtype="int8",           # Use int8 for activations\n    activation_granularity="per_tensor",  # Per-tensor quantization\n    weight_granularity="per_tensor"    # Per-tensor quantization\n)\n\n# Step 2: Create a quantized linear layer (just like nn.Linear!)\nlayer = BitLinear(\n    in_features=512,\n    out_features=256,\n    bias=True,\n    quant_config=config\n)\n\n# Step 3: Use the layer\nx = torch.randn(32, 512)  # Batch size 32, 512 input features\n\n# Training mode (full precision weights)\nlayer.train()\noutput_train = layer(x)\nprint(f"Training output shape: {output_train.shape}")\n\n# Evaluation mode (quantized weights - this is where the magic happens!)\nlayer.eval()\noutput_eval = layer(x)\nprint(f"Quantized output shape: {output_eval.shape}")\n\n# Check if weights are actually quantized\nprint(f"Quantized weight dtype: {layer.qweight.dtype}")  # Should be torch.int8\nprint(f"Memory savings: {layer.qweight.numel() * 1.58 / (layer.qweight.numel() * 32):.1%}")\n'
SEED_BLOCKS["example2_drop_in"] = 'import torch.nn as nn\nfrom bitlayers.bitlinear import BitLinear\nfrom bitcore.config import BitQuantConfig\n\n# Replace this PyTorch model...\nclass OriginalModel(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = nn.Sequential(\n            nn.Linear(784, 256),  # Regular PyTorch layer\n            nn.ReLU(),\n            nn.Linear(256, 10)\n        )\n    \n    def forward(self, x):\n        return self.layers(x)\n\n# ...with this quantized version (just change nn.Linear to BitLinear!)\nclass QuantizedModel(nn.Module):\n    def __init__(self):\n        super().__init__()\n        # Create quantization config once\n        self.quant_config = BitQuantConfig(\n            activation_dtype="int8",\n            activation_granularity="per_tensor",\n            weight_granularity="per_tensor"\n        )\n        \n        self.layers = nn.Sequential(\n            BitLinear(784, 256, quant_config=self.quant_config),  # Quantized!\n            nn.ReLU(),\n            BitLinear(256, 10, quant_config=self.quant_config)   # Quantized!\n        )\n    \n    def forward(self, x):\n        return self.layers(x)\n\n# Use it exactly like a regular PyTorch model\nmodel = QuantizedModel()\nx = torch.randn(64, 784)\noutput = model(x)\nprint(f"Model output shape: {output.shape}")\n'
SEED_BLOCKS["example3_prebuilt"] = 'import torch\nfrom bitmodels import AutoBitModel\nfrom bitmodels.mlp import BitMLPConfig\n\n# Create a quantized MLP with just a few lines!\nconfig = BitMLPConfig(\n    n_layers=3,\n    in_channels=256,\n    hidden_dim=128,\n    out_channels=10,\n    dropout=0.1,\n)\n\n# AutoBitModel handles all the quantization setup for you\nmodel = AutoBitModel.from_config(config)\n\n# Test it\nx = torch.randn(1, 256)\noutput = model(x)\nprint(f"Auto model output: {output.shape}")\n'
SEED_BLOCKS["example4_memory"] = 'import torch\nfrom bitcore.config import BitQuantConfig\nfrom bitlayers.bitlinear import BitLinear\n\n# Compare memory usage\nconfig = BitQuantConfig(activation_dtype="int8", activation_granularity="per_tensor", weight_granularity="per_tensor")\n\n# Regular PyTorch layer\nregular_layer = torch.nn.Linear(1000, 1000)\nregular_memory = regular_layer.weight.numel() * 4  # 4 bytes per float32\n\n# Quantized BitLab layer  \nquantized_layer = BitLinear(1000, 1000, quant_config=config)\nquantized_layer.eval()  # Enter eval mode to quantize weights\nquantized_memory = quantized_layer.qweight.numel() * 1.58  # 1.58 bits per weight\n\nprint(f"Regular layer memory: {regular_memory / 1024:.1f} KB")\nprint(f"Quantized layer memory: {quantized_memory / 8 / 1024:.1f} KB")  # Convert bits to bytes\nprint(f"Memory reduction: {(1 - quantized_memory / (regular_memory * 8)) * 100:.1f}%")\n'
SEED_BLOCKS["configuration_options"] = 'from bitcore.config import BitQuantConfig\n\n# Available configurations\nconfig = BitQuantConfig(\n    weight_granularity="per_tensor",     # "per_tensor" or "per_channel"\n    activation_dtype="int8",             # "float32" or "int8"\n    activation_granularity="per_tensor"  # "per_tensor" or "per_channel"\n)\n'
SEED_BLOCKS["kernel_dispatch"] = 'from bitcore.kernels import KernelRegistry\nfrom bitcore.config import BitQuantConfig\n\n# The registry automatically selects the best kernel\nconfig = BitQuantConfig(activation_dtype="int8", activation_granularity="per_tensor", weight_granularity="per_tensor")\nkernel = KernelRegistry.get_kernel_for_config(config)\nprint(f"Selected kernel: {type(kernel).__name__}")\n'
SEED_BLOCKS["verify_cpp_backend"] = 'from bitcore.kernels import KernelRegistry\nfrom bitcore.config import BitQuantConfig\n\nconfig = BitQuantConfig(activation_dtype="int8", activation_granularity="per_tensor", weight_granularity="per_tensor")\nkernel = KernelRegistry.get_kernel_for_config(config)\n\nprint(f"Kernel: {type(kernel).__name__}")\nprint(f"Has C++ backend: {kernel.has_cpp_backend}")\n\n# Check quantized weight dtype (int8 = C++, float32 = PyTorch fallback)\nlayer = BitLinear(10, 5, quant_config=config)\nlayer.eval()\nprint(f"Quantized weight dtype: {layer.qweight.dtype}")\n'
SEED_BLOCKS["test_cpp_extensions"] = 'try:\n    from bitcore.kernels.bindings import bitlinear_int8_pt_pt_cpp\n    print("✅ C++ extensions available")\n    print(f"Available functions: {[f for f in dir(bitlinear_int8_pt_pt_cpp) if not f.startswith(\'_\')]}")\nexcept ImportError as e:\n    print(f"❌ C++ extensions not available: {e}")\n    print("Will use PyTorch fallback")\n'
SEED_BLOCKS["benchmarks_sizes"] = '# Example: Compare model sizes\nimport torch\nfrom bitcore.config import BitQuantConfig\nfrom bitlayers.bitlinear import BitLinear\n\n# 1M parameter model\nconfig = BitQuantConfig(activation_dtype="int8", activation_granularity="per_tensor", weight_granularity="per_tensor")\n\n# Regular PyTorch\nregular_model = torch.nn.Linear(1000, 1000)  # 1M parameters\nregular_size = regular_model.weight.numel() * 4  # 4MB\n\n# Quantized BitLab\nquantized_model = BitLinear(1000, 1000, quant_config=config)\nquantized_model.eval()  # Quantize weights\nquantized_size = quantized_model.qweight.numel() * 1.58 / 8  # ~200KB\n\nprint(f"Regular model: {regular_size / 1024 / 1024:.1f} MB")\nprint(f"Quantized model: {quantized_size / 1024:.1f} KB")\nprint(f"Size reduction: {(1 - quantized_size / regular_size) * 100:.1f}%")\n'

SELF_CONTAINED = [
    "verify_installation",
    "example1_first_layer",
    "example3_prebuilt",
    "example4_memory",
    "configuration_options",
    "kernel_dispatch",
    "test_cpp_extensions",
    "benchmarks_sizes",
]


def test_verify_installation_shell_command(repo_root):
    # The README runs it as `python -c "..."`, in the user's environment: whatever makes the
    # packages importable for this test run (the installed .venv, or PYTHONPATH=python in a dev
    # build) is inherited unchanged - except LOWBIT_BACKEND: the README's promise ("Has C++
    # backend: True") is about the default backend; under LOWBIT_BACKEND=torch the kernel says False.
    env = {k: v for k, v in os.environ.items() if k != "LOWBIT_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", SEED_BLOCKS["verify_installation"]],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "BitLab installation successful" in result.stdout
    assert "Has C++ backend: True" in result.stdout


@pytest.mark.parametrize("name", SELF_CONTAINED)
def test_self_contained_block_runs_alone(name, capsys):
    namespace = {"__name__": "__seed__"}
    exec(compile(SEED_BLOCKS[name], f"<seed:{name}>", "exec"), namespace)
    if name == "configuration_options":  # the one block that prints nothing
        assert namespace["config"].activation_dtype == "int8"
    else:
        assert capsys.readouterr().out


def test_all_blocks_run_in_one_session(capsys):
    import lowbit

    namespace = {"__name__": "__seed__"}
    with lowbit.backend("auto"):  # the README's outputs are those of the default backend
        for name, code in SEED_BLOCKS.items():
            exec(compile(code, f"<seed:{name}>", "exec"), namespace)
    out = capsys.readouterr().out
    # The outputs the README promises.
    assert "Training output shape: torch.Size([32, 256])" in out
    assert "Quantized output shape: torch.Size([32, 256])" in out
    assert "Quantized weight dtype: torch.int8" in out
    assert "Model output shape: torch.Size([64, 10])" in out
    assert "Auto model output: torch.Size([1, 10])" in out
    assert "Regular layer memory: 3906.2 KB" in out
    assert "Quantized layer memory: 192.9 KB" in out
    assert "C++ extensions available" in out
    assert "Has C++ backend: True" in out

"""BitLab models: prebuilt ternary models, converters, export, and the namesake's registries.

``MODEL_REGISTRY`` / ``CONFIG_REGISTRY`` / ``register_model`` / ``register_config`` /
``build_model(name, config, quant_config=None)`` work as in OliverGrainge/BitLab;
``BitMLPModel`` is :class:`BitMLP`; ``BitLMModel`` is :class:`BitLM` (a BitNet b1.58 decoder LM).
"""

from lowbit._deps import require_torch

require_torch("bitmodels")  # a clear ImportError, naming the fix, when PyTorch is missing

from .registry import CONFIG_REGISTRY, MODEL_REGISTRY, build_model, register_config, register_model
from .base import BitModelBase
from .mlp import BitMLP, BitMLPConfig, BitMLPModel
from .lm import BitLM, BitLMConfig, BitLMModel
from .tokenizer import ByteTokenizer
from .auto import AutoBitModel
from .convert import convert_to_bitlinear, deploy_model
from .export import export_bitmlp, load_bitmlp
from .gguf_io import export_gguf, load_gguf
from .hf import llama_to_bitlm

__all__ = [
    "MODEL_REGISTRY",
    "CONFIG_REGISTRY",
    "register_model",
    "register_config",
    "build_model",
    "BitModelBase",
    "AutoBitModel",
    "BitMLP",
    "BitMLPModel",
    "BitMLPConfig",
    "BitLM",
    "BitLMModel",
    "BitLMConfig",
    "ByteTokenizer",
    "convert_to_bitlinear",
    "deploy_model",
    "export_bitmlp",
    "load_bitmlp",
    "export_gguf",
    "load_gguf",
    "llama_to_bitlm",
]

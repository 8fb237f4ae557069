"""BitLab models: prebuilt ternary models and converters."""

from .auto import AutoBitModel
from .convert import convert_to_bitlinear, deploy_model
from .export import export_bitmlp, load_bitmlp
from .mlp import BitMLP, BitMLPConfig

__all__ = ["AutoBitModel", "BitMLP", "BitMLPConfig", "convert_to_bitlinear", "deploy_model", "export_bitmlp", "load_bitmlp"]

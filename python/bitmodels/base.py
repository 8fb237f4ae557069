"""BitModelBase: what every BitLab model shares (the namesake's ``bitmodels.base.BitModelBase``)."""

from __future__ import annotations

from typing import Any, Optional

import torch.nn as nn

from bitcore.config import BitQuantConfig


class BitModelBase(nn.Module):
    """Base class of BitLab models: keeps the model config and the quantization config.

    Args:
        config: the model's config object (e.g. :class:`~bitmodels.mlp.BitMLPConfig`).
        quant_config: the :class:`~bitcore.config.BitQuantConfig` of its layers, or None.
    """

    def __init__(self, config: Any, quant_config: Optional[BitQuantConfig] = None) -> None:
        super().__init__()
        self.config = config
        self.quant_config = quant_config

    def forward(self, x):  # pragma: no cover - subclasses define it
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def get_config(self) -> Any:
        """The model config."""
        return self.config

    def get_quant_config(self) -> Optional[BitQuantConfig]:
        """The quantization config of the model's layers."""
        return self.quant_config

    def deploy(self) -> "BitModelBase":
        """Deploy every BitLab layer (drop latent weights, 2-bit packed weights) and switch to eval()."""
        from bitlayers.base import BitLayerBase

        for module in self.modules():
            if isinstance(module, BitLayerBase):
                module.deploy()
        return self.eval()

"""AutoBitModel: build a BitLab model from its config."""

from __future__ import annotations

from typing import Dict, Type

import torch.nn as nn

from .mlp import BitMLP, BitMLPConfig


class AutoBitModel:
    """``AutoBitModel.from_config(config)`` picks the model class registered for ``type(config)``."""

    _models: Dict[type, Type[nn.Module]] = {BitMLPConfig: BitMLP}

    def __init__(self) -> None:
        raise ValueError("AutoBitModel is a factory: use AutoBitModel.from_config(config)")

    @classmethod
    def register(cls, config_cls: type, model_cls: Type[nn.Module]) -> None:
        cls._models[config_cls] = model_cls

    @classmethod
    def from_config(cls, config) -> nn.Module:
        model_cls = cls._models.get(type(config))
        if model_cls is None:
            known = ", ".join(c.__name__ for c in cls._models)
            raise ValueError(f"AutoBitModel: no model for config type {type(config).__name__} (known: {known})")
        return model_cls(config)

"""AutoBitModel: build a BitLab model from its config."""

from __future__ import annotations

from typing import Dict, Optional, Type

import torch.nn as nn

from bitcore.config import BitQuantConfig

from .lm import BitLM, BitLMConfig
from .mlp import BitMLP, BitMLPConfig
from .registry import MODEL_REGISTRY


class AutoBitModel:
    """``AutoBitModel.from_config(config, quant_config=None)`` builds the model for ``type(config)``.

    Lookup: a class registered with :meth:`register`, else the namesake's naming rule - the model
    registered in ``MODEL_REGISTRY`` as the config class name with ``Config`` replaced by ``Model``
    (``BitMLPConfig`` -> ``"BitMLPModel"``).
    """

    _models: Dict[type, Type[nn.Module]] = {BitMLPConfig: BitMLP, BitLMConfig: BitLM}

    def __init__(self) -> None:
        raise ValueError("AutoBitModel is a factory: use AutoBitModel.from_config(config)")

    @classmethod
    def register(cls, config_cls: type, model_cls: Type[nn.Module]) -> None:
        cls._models[config_cls] = model_cls

    @classmethod
    def from_config(cls, config, quant_config: Optional[BitQuantConfig] = None) -> nn.Module:
        """A fresh model (training mode) for ``config``; ``quant_config`` overrides the config's.

        Raises:
            ValueError: no model is known for ``type(config)``.
        """
        model_cls = cls._models.get(type(config))
        if model_cls is None:
            config_name = type(config).__name__
            base = config_name[:-6] if config_name.endswith("Config") else config_name
            model_cls = MODEL_REGISTRY.get(base + "Model")
        if model_cls is None:
            known = sorted({c.__name__ for c in cls._models} | set(MODEL_REGISTRY))
            raise ValueError(f"AutoBitModel: no model for config type {type(config).__name__} (known: {known})")
        return model_cls(config, quant_config)

    @staticmethod
    def from_pretrained(path: str, **kwargs):
        """A ``.gguf`` file written by :func:`bitmodels.export_gguf` (or llama.cpp's BitNet
        converter): the model from :func:`bitmodels.load_gguf` (``kwargs`` go there).

        Other paths raise ``NotImplementedError`` as upstream BitLab does (it has no checkpoint
        format): build with ``from_config(...)`` and ``load_state_dict(...)`` instead.
        """
        if str(path).lower().endswith(".gguf"):
            from .gguf_io import load_gguf

            return load_gguf(path, **kwargs)
        raise NotImplementedError(f"AutoBitModel.from_pretrained({str(path)!r}): only .gguf files are read "
                                  "(bitmodels.load_gguf); otherwise build with from_config() and load_state_dict()")

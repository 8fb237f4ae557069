"""Name -> class registries of models and configs (the namesake's ``bitmodels`` registries)."""

from __future__ import annotations

from typing import Callable, Dict

#: Registered model classes by name (``"BitMLPModel"``); plain mutable dicts, as upstream.
MODEL_REGISTRY: Dict[str, type] = {}
#: Registered config classes by name (``"BitMLPConfig"``).
CONFIG_REGISTRY: Dict[str, type] = {}


def _decorator(registry: Dict[str, type], what: str, name: str) -> Callable[[type], type]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: name must be a non-empty string, got {name!r}")

    def decorator(cls: type) -> type:
        registry[name] = cls
        return cls

    return decorator


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: ``MODEL_REGISTRY[name] = cls``. The model is built as ``cls(config, quant_config)``."""
    return _decorator(MODEL_REGISTRY, "register_model", name)


def register_config(name: str) -> Callable[[type], type]:
    """Class decorator: ``CONFIG_REGISTRY[name] = cls``."""
    return _decorator(CONFIG_REGISTRY, "register_config", name)


def build_model(name: str, config, quant_config=None):
    """``MODEL_REGISTRY[name](config, quant_config)``.

    Raises:
        ValueError: no model registered under ``name`` (the message lists those that are).
    """
    if name not in MODEL_REGISTRY:
        raise ValueError(f"Model {name!r} not found. Available: {list(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](config, quant_config)

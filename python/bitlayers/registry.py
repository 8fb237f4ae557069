"""Name -> layer class registry (the namesake's ``bitlayers.LAYER_REGISTRY``)."""

from __future__ import annotations

from typing import Callable, Dict

#: Registered layer classes by name; a plain, mutable dict (as upstream).
LAYER_REGISTRY: Dict[str, type] = {}


def register_layer(name: str) -> Callable[[type], type]:
    """Class decorator: ``LAYER_REGISTRY[name] = cls``.

    Raises:
        ValueError: ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_layer: name must be a non-empty string, got {name!r}")

    def decorator(cls: type) -> type:
        LAYER_REGISTRY[name] = cls
        return cls

    return decorator

"""Kernel dispatch: kernels register the configs they support with a priority; the registry
returns the highest-priority available kernel for a config."""

from __future__ import annotations

from typing import Callable, List, Optional, Type

from ..config import ACTIVATION_DTYPES, ACTIVATION_GRANULARITIES, WEIGHT_GRANULARITIES, BitQuantConfig
from .base import BitKernelBase


class _Entry:
    __slots__ = ("kernel_cls", "priority", "order", "criteria")

    def __init__(self, kernel_cls: Type[BitKernelBase], priority: int, order: int, criteria: dict) -> None:
        self.kernel_cls = kernel_cls
        self.priority = priority
        self.order = order
        self.criteria = criteria

    def matches(self, config: BitQuantConfig) -> bool:
        return all(getattr(config, key) in allowed for key, allowed in self.criteria.items())


def _criterion(name: str, value, choices: tuple) -> Optional[tuple]:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    for v in values:
        if v not in choices:
            raise ValueError(f"KernelRegistry.register: {name} must be in {choices}, got {v!r}")
    return values


class KernelRegistry:
    """Which kernel runs a :class:`~bitcore.config.BitQuantConfig`.

    >>> @KernelRegistry.register(activation_dtype="int8", priority=50)
    ... class MyKernel(BitKernelBase): ...

    Criteria left as ``None`` match every value; among matching, available kernels the highest
    priority wins (ties: the one registered last).
    """

    _entries: List[_Entry] = []

    @classmethod
    def register(
        cls,
        activation_dtype=None,
        activation_granularity=None,
        weight_granularity=None,
        priority: int = 0,
    ) -> Callable[[Type[BitKernelBase]], Type[BitKernelBase]]:
        criteria = {}
        for key, value, choices in (
            ("activation_dtype", activation_dtype, ACTIVATION_DTYPES),
            ("activation_granularity", activation_granularity, ACTIVATION_GRANULARITIES),
            ("weight_granularity", weight_granularity, WEIGHT_GRANULARITIES),
        ):
            allowed = _criterion(key, value, choices)
            if allowed is not None:
                criteria[key] = allowed
        if not isinstance(priority, int):
            raise ValueError(f"KernelRegistry.register: priority must be an int, got {priority!r}")

        def decorator(kernel_cls: Type[BitKernelBase]) -> Type[BitKernelBase]:
            if not (isinstance(kernel_cls, type) and issubclass(kernel_cls, BitKernelBase)):
                raise ValueError(f"KernelRegistry.register: {kernel_cls!r} is not a BitKernelBase subclass")
            cls._entries = [e for e in cls._entries if e.kernel_cls is not kernel_cls]
            cls._entries.append(_Entry(kernel_cls, priority, len(cls._entries), criteria))
            return kernel_cls

        return decorator

    @classmethod
    def unregister(cls, kernel_cls: Type[BitKernelBase]) -> None:
        cls._entries = [e for e in cls._entries if e.kernel_cls is not kernel_cls]

    @classmethod
    def candidates(cls, config: BitQuantConfig) -> List[Type[BitKernelBase]]:
        """Available kernels for ``config``, best first."""
        if not isinstance(config, BitQuantConfig):
            raise ValueError(f"KernelRegistry: expected a BitQuantConfig, got {type(config).__name__}")
        matching = [e for e in cls._entries if e.matches(config) and e.kernel_cls.is_available()]
        matching.sort(key=lambda e: (e.priority, e.order), reverse=True)
        return [e.kernel_cls for e in matching]

    @classmethod
    def get_kernel_for_config(cls, config: BitQuantConfig) -> BitKernelBase:
        """An instance of the best available kernel for ``config``."""
        found = cls.candidates(config)
        if not found:
            raise ValueError(f"KernelRegistry: no registered kernel supports {config!r}")
        return found[0](config)

    # The seed documents both spellings.
    get_kernel_from_config = get_kernel_for_config

    @classmethod
    def kernel_names(cls) -> List[str]:
        return [e.kernel_cls.__name__ for e in cls._entries]

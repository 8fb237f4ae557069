"""Kernel dispatch: kernels register the configs they support with a priority; the registry
returns the highest-priority kernel that supports the config AND runs on the device in use."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Type, Union

from lowbit import _cuda_ops

from ..config import ACTIVATION_DTYPES, ACTIVATION_GRANULARITIES, WEIGHT_GRANULARITIES, BitQuantConfig
from ..ops import dispatch
from .base import BitKernelBase, as_device


class NoSuitableKernelError(ValueError):
    """No registered, available kernel supports the config on the device (a ``ValueError``)."""


class _Entry:
    __slots__ = ("kernel_cls", "name", "priority", "order", "criteria", "matcher")

    def __init__(self, kernel_cls, name: str, priority: int, order: int, criteria: dict,
                 matcher: Optional[Callable[[BitQuantConfig], bool]]) -> None:
        self.kernel_cls = kernel_cls
        self.name = name
        self.priority = priority
        self.order = order
        self.criteria = criteria
        self.matcher = matcher

    def rank(self, config: BitQuantConfig) -> int:
        """The priority this entry competes with for ``config``.

        lowbit's shipped kernels (defined in :mod:`bitcore.kernels`) cover every config, where the
        namesake ships one kernel - int8 activations, per tensor, per tensor, priority 100, with a
        PyTorch fallback - and falls back to its reference kernel otherwise. So that a kernel a user
        registers without a priority (0) runs wherever it would run with the namesake, shipped
        kernels rank at least 100 on that config (the registered priority breaks ties between
        them) and ``SHIPPED_OFFSET`` below their priority on every other one.
        """
        if not self.kernel_cls.__module__.startswith("bitcore.kernels"):
            return self.priority
        if config == _NAMESAKE_SHIPPED_CONFIG:
            return max(self.priority, _NAMESAKE_SHIPPED_PRIORITY)
        return self.priority - SHIPPED_OFFSET

    def matches(self, config: BitQuantConfig) -> bool:
        if not all(getattr(config, key) in allowed for key, allowed in self.criteria.items()):
            return False
        if self.matcher is not None and not self.matcher(config):
            return False
        return bool(self.kernel_cls.is_suitable_for(config))


def _criterion(name: str, value, choices: tuple) -> Optional[tuple]:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    for v in values:
        if v not in choices:
            raise ValueError(f"KernelRegistry.register: {name} must be in {choices}, got {v!r}")
    return values


#: How much lower lowbit's shipped kernels rank outside the namesake's one shipped config (see _Entry.rank).
SHIPPED_OFFSET = 1000
_NAMESAKE_SHIPPED_CONFIG = BitQuantConfig("per_tensor", "int8", "per_tensor")
_NAMESAKE_SHIPPED_PRIORITY = 100

# Kernel names of the namesake that are another kernel's here (bitcore.kernels.ReferenceKernel is
# TorchReferenceKernel).
_NAMESAKE_NAMES = {"ReferenceKernel": "TorchReferenceKernel", "int8_per_tensor": "CppInt8Kernel",
                   "bitlinear_kernel_i8_pt_pt": "CppInt8Kernel"}


class KernelRegistry:
    """Which kernel runs a :class:`~bitcore.config.BitQuantConfig` on a device.

    >>> @KernelRegistry.register(activation_dtype="int8", priority=50)
    ... class MyKernel(TorchReferenceKernel): ...

    Criteria left as ``None`` match every value; a kernel is a candidate for ``(config, device)``
    when it matches the config, runs on the device's type (``device_types``), is available there,
    and its ``backend`` is ``"torch"`` or the implementation :func:`lowbit._backend.select` picks
    for the device (so under ``lowbit.backend("torch")`` the C++ kernels are never chosen, and a
    CUDA tensor never gets a CPU-only kernel). Among candidates the highest priority wins (ties:
    the higher registered priority, then the one registered last). lowbit's own kernels (C++/CUDA
    priority 100, PyTorch reference 0) rank at least 100 for the namesake's one shipped config
    (int8 activations, per tensor, per tensor) and 1000 below their priority for every other
    config, so that a kernel registered as the namesake's users register them - default priority
    0 - is the one used wherever the namesake would use it. The namesake's spellings work too: ``register(matcher, name=...,
    priority=...)`` with a callable, ``register_kernel(name, priority, activation_dtype=...)``,
    ``get_kernel_from_config``, ``get_kernel_by_name``, ``list_kernels``.
    """

    _entries: List[_Entry] = []
    _generation = 0
    _lookup: Dict[tuple, Type[BitKernelBase]] = {}

    # ------------------------------------------------------------------ registration
    @classmethod
    def register(
        cls,
        activation_dtype: Union[None, str, Callable] = None,
        activation_granularity=None,
        weight_granularity=None,
        priority: int = 0,
        name: Optional[str] = None,
        *,
        config_matcher: Optional[Callable] = None,
    ) -> Callable[[Type[BitKernelBase]], Type[BitKernelBase]]:
        """Class decorator. ``register(matcher, name=None, priority=0)`` (a callable first, or the
        namesake's keyword ``config_matcher=``) is the namesake's form: ``matcher(config) -> bool``.

        Raises:
            ValueError: a criterion outside its choices, a non-int priority, or decorating
            something that is not a :class:`BitKernelBase` subclass.
        """
        matcher = None
        if config_matcher is not None:  # the namesake's keyword: register(config_matcher=..., name=...)
            if not callable(config_matcher):
                raise ValueError(f"KernelRegistry.register: config_matcher must be callable, got {config_matcher!r}")
            if activation_dtype is not None:
                raise ValueError("KernelRegistry.register: give a config_matcher or criteria, not both")
            activation_dtype = config_matcher
        if callable(activation_dtype):
            matcher, activation_dtype = activation_dtype, None
        criteria = {}
        for key, value, choices in (
            ("activation_dtype", activation_dtype, ACTIVATION_DTYPES),
            ("activation_granularity", activation_granularity, ACTIVATION_GRANULARITIES),
            ("weight_granularity", weight_granularity, WEIGHT_GRANULARITIES),
        ):
            allowed = _criterion(key, value, choices)
            if allowed is not None:
                criteria[key] = allowed
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"KernelRegistry.register: priority must be an int, got {priority!r}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"KernelRegistry.register: name must be a string, got {name!r}")

        def decorator(kernel_cls: Type[BitKernelBase]) -> Type[BitKernelBase]:
            if not (isinstance(kernel_cls, type) and issubclass(kernel_cls, BitKernelBase)):
                raise ValueError(f"KernelRegistry.register: {kernel_cls!r} is not a BitKernelBase subclass")
            entry_name = name or kernel_cls.__name__
            cls._entries = [e for e in cls._entries if e.kernel_cls is not kernel_cls and e.name != entry_name]
            cls._entries.append(_Entry(kernel_cls, entry_name, priority, cls._next_order(), criteria, matcher))
            cls._changed()
            return kernel_cls

        return decorator

    @classmethod
    def register_kernel(cls, name: str, priority: int = 0, activation_dtype: Optional[str] = None,
                        activation_granularity: Optional[str] = None, weight_granularity: Optional[str] = None):
        """The namesake's declarative form, e.g.
        ``@KernelRegistry.register_kernel(name="x", priority=100, activation_dtype="int8")``."""
        return cls.register(activation_dtype=activation_dtype, activation_granularity=activation_granularity,
                            weight_granularity=weight_granularity, priority=priority, name=name)

    @classmethod
    def unregister(cls, kernel: Union[str, Type[BitKernelBase]]) -> None:
        """Remove a kernel, given by class or registered name."""
        cls._entries = [e for e in cls._entries if e.kernel_cls is not kernel and e.name != kernel]
        cls._changed()

    @classmethod
    def _next_order(cls) -> int:
        return max((e.order for e in cls._entries), default=-1) + 1

    @classmethod
    def _changed(cls) -> None:
        cls._generation += 1
        cls._lookup = {}

    # ------------------------------------------------------------------ lookup
    @classmethod
    def candidates(cls, config: BitQuantConfig, device: Any = None) -> List[Type[BitKernelBase]]:
        """Kernel classes that can run ``config`` on ``device`` (default CPU), best first.

        Raises:
            ValueError: ``config`` is not a BitQuantConfig, or the ``cpp`` backend is forced for a
            non-CPU device.
        """
        if not isinstance(config, BitQuantConfig):
            raise ValueError(f"KernelRegistry: expected a BitQuantConfig, got {type(config).__name__}")
        dev = as_device(device)
        impl = dispatch.resolve(dev, "KernelRegistry")
        matching = [
            e for e in cls._entries
            if e.kernel_cls.backend in ("torch", impl) and e.kernel_cls.supports_device(dev)
            and e.matches(config) and e.kernel_cls.is_available(dev)
        ]
        matching.sort(key=lambda e: (e.rank(config), e.priority, e.order), reverse=True)
        return [e.kernel_cls for e in matching]

    @classmethod
    def get_kernel_for_config(cls, config: BitQuantConfig, device: Any = None) -> BitKernelBase:
        """An instance of the best kernel for ``config`` on ``device`` (a ``torch.device``, a string
        such as ``"cuda:0"``, or None for the CPU).

        Raises:
            NoSuitableKernelError: (a ValueError) nothing registered can run it there.
            ValueError: a bad config, or the ``cpp`` backend forced for a non-CPU device.
        """
        if not isinstance(config, BitQuantConfig):
            raise ValueError(f"KernelRegistry: expected a BitQuantConfig, got {type(config).__name__}")
        dev = as_device(device)
        impl = dispatch.resolve(dev, "KernelRegistry")
        # CUDA kernels register themselves in lowbit._cuda_ops at any time: key on what is there.
        key = (config, dev.type, impl, tuple(_cuda_ops.names()) if impl == "cuda" else ())
        kernel_cls = cls._lookup.get(key)
        if kernel_cls is None:
            found = cls.candidates(config, dev)
            if not found:
                raise NoSuitableKernelError(f"KernelRegistry: no registered kernel supports {config!r} on device {dev}")
            kernel_cls = cls._lookup[key] = found[0]
        return kernel_cls(config)

    #: The namesake's spelling.
    get_kernel_from_config = get_kernel_for_config
    get_optimal_kernel = get_kernel_for_config

    @classmethod
    def get_kernel_by_name(cls, name: str, config: Optional[BitQuantConfig] = None) -> BitKernelBase:
        """The kernel registered as ``name`` (its class name unless given), built for ``config``
        (default ``BitQuantConfig()``), whatever the device or backend.

        Raises:
            ValueError: no kernel of that name.
        """
        name = _NAMESAKE_NAMES.get(name, name)
        for e in cls._entries:
            if e.name == name or e.kernel_cls.__name__ == name:
                return e.kernel_cls(config if config is not None else BitQuantConfig())
        raise ValueError(f"Unknown kernel: {name!r} (registered: {cls.list_kernels()})")

    get_kernel_from_name = get_kernel_by_name

    @classmethod
    def list_kernels(cls) -> List[str]:
        """Registered kernel names, highest priority first."""
        return [e.name for e in sorted(cls._entries, key=lambda e: (e.priority, e.order), reverse=True)]

    list_available_kernels = list_kernels

    @classmethod
    def kernel_names(cls) -> List[str]:
        """Registered kernel class names, in registration order."""
        return [e.kernel_cls.__name__ for e in sorted(cls._entries, key=lambda e: e.order)]

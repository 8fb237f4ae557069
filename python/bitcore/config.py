"""Quantization settings of a BitLab layer."""

from __future__ import annotations

from typing import Any, Dict

WEIGHT_GRANULARITIES = ("per_tensor", "per_channel")
ACTIVATION_DTYPES = ("int8", "float32")
ACTIVATION_GRANULARITIES = ("per_tensor", "per_channel")


def _check_choice(name: str, value: Any, choices: tuple) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"BitQuantConfig: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class BitQuantConfig:
    """How a ternary layer quantizes.

    Args:
        weight_granularity: ``"per_tensor"`` (one scale ``mean|W|``) or ``"per_channel"`` (one per output row).
        activation_dtype: ``"int8"`` (activations quantized to int8 with ``max|x|``) or ``"float32"``
            (float activations times ternary weights: additions and subtractions only).
        activation_granularity: ``"per_tensor"`` (one ``max|x|`` over the whole input) or
            ``"per_channel"`` (one per row / token). Ignored for ``float32`` activations.

    Raises:
        ValueError: on any other value.
    """

    __slots__ = ("_weight_granularity", "_activation_dtype", "_activation_granularity")

    def __init__(
        self,
        weight_granularity: str = "per_tensor",
        activation_dtype: str = "int8",
        activation_granularity: str = "per_tensor",
    ) -> None:
        self._weight_granularity = _check_choice("weight_granularity", weight_granularity, WEIGHT_GRANULARITIES)
        self._activation_dtype = _check_choice("activation_dtype", activation_dtype, ACTIVATION_DTYPES)
        self._activation_granularity = _check_choice(
            "activation_granularity", activation_granularity, ACTIVATION_GRANULARITIES
        )

    # Read-only: a layer's packed weights depend on the config it was built with.
    @property
    def weight_granularity(self) -> str:
        return self._weight_granularity

    @property
    def activation_dtype(self) -> str:
        return self._activation_dtype

    @property
    def activation_granularity(self) -> str:
        return self._activation_granularity

    def to_dict(self) -> Dict[str, str]:
        return {
            "weight_granularity": self.weight_granularity,
            "activation_dtype": self.activation_dtype,
            "activation_granularity": self.activation_granularity,
        }

    @classmethod
    def from_dict(cls, values: Dict[str, str]) -> "BitQuantConfig":
        unknown = set(values) - {"weight_granularity", "activation_dtype", "activation_granularity"}
        if unknown:
            raise ValueError(f"BitQuantConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)

    def _key(self) -> tuple:
        return (self.weight_granularity, self.activation_dtype, self.activation_granularity)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BitQuantConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"BitQuantConfig(weight_granularity={self.weight_granularity!r}, "
            f"activation_dtype={self.activation_dtype!r}, activation_granularity={self.activation_granularity!r})"
        )

    def __getstate__(self) -> Dict[str, str]:
        return self.to_dict()

    def __setstate__(self, state: Dict[str, str]) -> None:
        fresh = BitQuantConfig(**state)
        for slot in self.__slots__:
            object.__setattr__(self, slot, getattr(fresh, slot))

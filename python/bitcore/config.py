"""Quantization settings of a BitLab layer."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

WEIGHT_GRANULARITIES = ("per_tensor", "per_channel")
ACTIVATION_DTYPES = ("int8", "float32")
ACTIVATION_GRANULARITIES = ("per_tensor", "per_channel")


def _check_choice(name: str, value: Any, choices: tuple) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"BitQuantConfig: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class BitQuantConfig:
    """How a ternary layer quantizes (BitNet b1.58: Ma et al. 2024, arXiv:2402.17764).

    A frozen dataclass, like the namesake's ``BitQuantConfig`` (same field names, order and
    defaults), but validated and read-only: a layer's packed weights depend on it.

    Args:
        weight_granularity: ``"per_tensor"`` (one scale ``mean|W|``) or ``"per_channel"`` (one per output row).
        activation_dtype: ``"float32"`` (default, as upstream: float activations times ternary weights,
            additions and subtractions only) or ``"int8"`` (activations quantized to int8 with ``max|x|``,
            the BitNet b1.58 W1.58A8 layer and the fastest kernel).
        activation_granularity: ``"per_tensor"`` (one ``max|x|`` over the whole input) or
            ``"per_channel"`` (one per row of the ``[M, K]`` input, i.e. one per token for a language
            model: the namesake's name, where an activation "channel" is a row). Ignored for
            ``float32`` activations.

    Raises:
        ValueError: on any other value. Assigning a field raises ``dataclasses.FrozenInstanceError``
        (an ``AttributeError``).
    """

    weight_granularity: str = "per_tensor"
    activation_dtype: str = "float32"
    activation_granularity: str = "per_tensor"

    def __post_init__(self) -> None:
        _check_choice("weight_granularity", self.weight_granularity, WEIGHT_GRANULARITIES)
        _check_choice("activation_dtype", self.activation_dtype, ACTIVATION_DTYPES)
        _check_choice("activation_granularity", self.activation_granularity, ACTIVATION_GRANULARITIES)

    def to_dict(self) -> Dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, str]) -> "BitQuantConfig":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"BitQuantConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)

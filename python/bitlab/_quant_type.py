"""The namesake's ``quant_type`` strings (``"{activation}_{weight}"``) as lowbit quantization configs."""

from __future__ import annotations

from typing import Optional

from bitcore.config import BitQuantConfig

# activation scheme -> (activation_dtype, activation_granularity) of a lowbit BitLinear
_ACT = {
    "ai8pc": ("int8", "per_channel"),   # int8, one absmax scale per row (token) of the [M, K] input
    "ai8ptk": ("int8", "per_channel"),  # the same, the namesake's later name
    "ai8pt": ("int8", "per_tensor"),    # int8, one absmax scale over the whole input
    "none": ("float32", "per_tensor"),  # float activations times ternary weights
}
# weight scheme -> weight_granularity
_WEIGHT = {"wpt": "per_tensor", "wpc": "per_channel"}

_NOT_PROVIDED = {
    "ai8pg": "int8 activations with one scale per group of elements",
    "abf16": "bfloat16-rounded activations",
    "af16": "float16-rounded activations",
    "wpg": "ternary weights with one scale per group of input columns",
    "wbf16": "bfloat16 weights",
    "wf16": "float16 weights",
}

SUPPORTED = sorted(f"{a}_{w}" for a in _ACT for w in _WEIGHT) + ["none"]


def _describe(part: str) -> Optional[str]:
    for prefix, what in _NOT_PROVIDED.items():
        if part.startswith(prefix):
            return what
    return None


def quant_config_for(quant_type) -> Optional[BitQuantConfig]:
    """The :class:`BitQuantConfig` of a layer built with the namesake's ``quant_type``.

    Returns None for ``None`` / ``"none"`` (no quantization: a float linear layer, as upstream).
    Case-insensitive, like the namesake's parser.

    Raises:
        TypeError: ``quant_type`` neither a str nor None.
        ValueError: a malformed string, or a scheme lowbit's kernels do not compute (per-group
            scales, float16 / bfloat16 rounding, float weights with int8 activations); the message
            lists the supported strings.
    """
    if quant_type is None:
        return None
    if not isinstance(quant_type, str):
        raise TypeError(f"quant_type must be a str or None, got {type(quant_type).__name__}")
    text = quant_type.strip().lower()
    if text == "none":
        return None
    act, sep, weight = text.rpartition("_")
    if not sep or not act:
        raise ValueError(f"quant_type {quant_type!r}: expected '<activation>_<weight>' such as 'ai8pc_wpt' "
                         f"(supported: {', '.join(SUPPORTED)})")
    for part in (act, weight):
        what = _describe(part)
        if what is not None:
            raise ValueError(f"quant_type {quant_type!r}: {part!r} ({what}) is not provided by lowbit's kernels "
                             f"(supported: {', '.join(SUPPORTED)})")
    if act not in _ACT or weight not in _WEIGHT:
        raise ValueError(f"quant_type {quant_type!r}: unknown scheme (supported: {', '.join(SUPPORTED)}; "
                         f"weights 'none' with quantized activations are not supported)")
    dtype, granularity = _ACT[act]
    return BitQuantConfig(weight_granularity=_WEIGHT[weight], activation_dtype=dtype,
                          activation_granularity=granularity)

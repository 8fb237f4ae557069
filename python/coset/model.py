"""Model-level API: swap ``nn.Linear`` for ``QLinear`` and ``QLinear`` for its deployed form.

>>> model = coset.quantize_model(model, coset.QuantizationConfig("E8", q=16, M=1), skip=["head"])
>>> ...                                  # optional QAT; or none (post-training quantization)
>>> model = coset.deploy_model(model)    # every QLinear -> coset.deploy.PackedLinear

Layers whose ``in_features`` is not a multiple of the lattice dimension are zero-padded (QLinear
pads its rows, PackedLinear pads its input), never refused.
"""

from __future__ import annotations

from typing import Callable, Iterable, Union

import torch.nn as nn

from .config import QuantizationConfig

Skip = Union[None, str, Iterable[str], Callable[[str, nn.Module], bool]]


def _skipper(skip: Skip) -> Callable[[str, nn.Module], bool]:
    if skip is None:
        return lambda name, module: False
    if callable(skip):
        return lambda name, module: bool(skip(name, module))
    names = {skip} if isinstance(skip, str) else set(skip)
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"skip: expected layer names (str) or a predicate, got {n!r}")
    return lambda name, module: name in names


def _replace(model: nn.Module, want: Callable[[str, nn.Module], bool], make: Callable[[str, nn.Module], nn.Module]) -> int:
    count = 0
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if want(full, child):
                setattr(parent, child_name, make(full, child))
                count += 1
    return count


def quantize_model(model: nn.Module, config: QuantizationConfig, skip: Skip = None,
                   quantize_weights: bool = True) -> nn.Module:
    """Replaces every ``nn.Linear`` (not already a QLinear, not skipped) by a ``QLinear`` with the
    same weights, bias, device and dtype. ``skip``: layer names (as in ``named_modules``) or a
    predicate ``(name, module) -> bool``. Returns ``model`` (changed in place)."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
    skipped = _skipper(skip)

    def make(name: str, lin: nn.Module) -> nn.Module:
        q = QLinear(lin.in_features, lin.out_features, config, quantize_weights=quantize_weights,
                    bias=lin.bias is not None, device=lin.weight.device, dtype=lin.weight.dtype)
        q.weight.data.copy_(lin.weight.data)
        if lin.bias is not None:
            q.bias.data.copy_(lin.bias.data)
        q.train(lin.training)
        return q

    _replace(model, lambda n, m: type(m) is nn.Linear and not skipped(n, m), make)
    return model


def deploy_model(model: nn.Module, skip: Skip = None, row_scale: str = "qlinear") -> nn.Module:
    """Replaces every ``QLinear`` (not skipped) by its deployed ``PackedLinear``. Returns ``model``.

    ``row_scale="qlinear"`` (default) keeps the QLinear's row scales and config, so the deployed
    weights are the ones its forward used (QAT); ``"rms"`` divides rows by their rms only, for
    tuned configs such as ``coset.deployable_config("E8", 16, 1)`` whose beta is the whole scale
    (post-training quantization). Refusals (a config the kernels cannot run, NaN weights) raise
    ValueError naming the layer."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    skipped = _skipper(skip)

    def make(name: str, q: nn.Module) -> nn.Module:
        deployed = q.deploy(name=name, row_scale=row_scale)
        deployed.train(False)
        return deployed

    _replace(model, lambda n, m: isinstance(m, QLinear) and not skipped(n, m), make)
    return model

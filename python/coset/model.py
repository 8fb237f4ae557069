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


def _skipper(model: nn.Module, skip: Skip) -> Callable[[str, nn.Module], bool]:
    if skip is None:
        return lambda name, module: False
    if callable(skip):
        return lambda name, module: bool(skip(name, module))
    names = {skip} if isinstance(skip, str) else set(skip)
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"skip: expected layer names (str) or a predicate, got {n!r}")
    known = {name for name, _ in model.named_modules(remove_duplicate=False)}
    unknown = sorted(names - known)
    if unknown:  # a typo would silently quantize the layer meant to be kept
        raise ValueError(f"skip: no layer named {', '.join(map(repr, unknown))} in the model")
    return lambda name, module: name in names


def _replace(model: nn.Module, want: Callable[[str, nn.Module], bool],
             make: Callable[[str, nn.Module], nn.Module]) -> nn.Module:
    """Replaces every module ``want`` selects (the root too) by ``make(name, module)``; a module
    reachable under several names is replaced once and stays shared (weight ties are kept).
    Returns the model, or the replacement of the root."""
    if want("", model):
        return make("", model)
    new = {}  # id(old module) -> its replacement
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):  # named_children() hides repeats
            if child is None:
                continue
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if id(child) not in new and want(full, child):
                new[id(child)] = make(full, child)
            if id(child) in new:
                setattr(parent, child_name, new[id(child)])
    return model


def quantize_model(model: nn.Module, config: QuantizationConfig, skip: Skip = None,
                   quantize_weights: bool = True) -> nn.Module:
    """Replaces every ``nn.Linear`` (not already a QLinear, not skipped) by a ``QLinear`` with the
    same weights, bias, device and dtype. ``skip``: layer names (as in ``named_modules``) or a
    predicate ``(name, module) -> bool``. Returns ``model`` (changed in place; a bare ``nn.Linear``
    is returned as its ``QLinear``). A layer used at several places becomes one shared QLinear.

    Raises:
        ValueError: ``model`` is not a Module, ``config`` not a QuantizationConfig, or a ``skip``
        name matches no layer."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
    skipped = _skipper(model, skip)

    def make(name: str, lin: nn.Module) -> nn.Module:
        q = QLinear(lin.in_features, lin.out_features, config, quantize_weights=quantize_weights,
                    bias=lin.bias is not None, device=lin.weight.device, dtype=lin.weight.dtype)
        q.weight.data.copy_(lin.weight.data)
        if lin.bias is not None:
            q.bias.data.copy_(lin.bias.data)
        q.train(lin.training)
        return q

    return _replace(model, lambda n, m: type(m) is nn.Linear and not skipped(n, m), make)


def deploy_model(model: nn.Module, skip: Skip = None, row_scale: str = "qlinear") -> nn.Module:
    """Replaces every ``QLinear`` (not skipped) by its deployed ``PackedLinear``. Returns ``model``.

    ``row_scale="qlinear"`` (default) keeps the QLinear's row scales and config, so the deployed
    weights are the ones its forward used (QAT); ``"rms"`` divides rows by their rms only, for
    tuned configs such as ``coset.deployable_config("E8", 16, 1)`` whose beta is the whole scale
    (post-training quantization). Refusals (a config the kernels cannot run, NaN weights) raise
    ValueError naming the layer; so does a ``skip`` name that matches no layer. A bare QLinear is
    returned as its PackedLinear; a QLinear used at several places becomes one shared PackedLinear."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    skipped = _skipper(model, skip)

    def make(name: str, q: nn.Module) -> nn.Module:
        deployed = q.deploy(name=name or None, row_scale=row_scale)
        deployed.train(False)
        return deployed

    return _replace(model, lambda n, m: isinstance(m, QLinear) and not skipped(n, m), make)

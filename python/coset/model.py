"""Model-level API: swap ``nn.Linear`` for ``QLinear`` and ``QLinear`` for its deployed form.

>>> model = coset.quantize_model(model, coset.QuantizationConfig("E8", q=16, M=1), skip=["head"])
>>> ...                                  # optional QAT; or none (post-training quantization)
>>> model = coset.deploy_model(model)    # every QLinear -> coset.deploy.PackedLinear

Layers whose ``in_features`` is not a multiple of the lattice dimension are zero-padded (QLinear
pads its rows, PackedLinear pads its input), never refused.
"""

from __future__ import annotations

from typing import Callable, Iterable, Set, Union

import torch.nn as nn

from .config import QuantizationConfig

Skip = Union[None, str, Iterable[str], Callable[[str, nn.Module], bool]]


def _skipped_ids(model: nn.Module, skip: Skip, candidate: Callable[[nn.Module], bool]) -> Set[int]:
    """The ids of the candidate modules that ``skip`` keeps as they are. A name skips the module of
    that name and every module under it (a container's whole subtree); a predicate is asked about
    each candidate under each of its names. A module reachable under several names (a shared or
    tied layer) is skipped when any of its names is, so it stays one module either way."""
    if skip is None:
        return set()
    if callable(skip):
        test = lambda name, module: bool(skip(name, module))  # noqa: E731
    else:
        names = {skip} if isinstance(skip, str) else set(skip)
        for n in names:
            if not isinstance(n, str):
                raise ValueError(f"skip: expected layer names (str) or a predicate, got {n!r}")
        known = {name for name, _ in model.named_modules(remove_duplicate=False)}
        unknown = sorted(names - known)
        if unknown:  # a typo would silently quantize the layer meant to be kept
            raise ValueError(f"skip: no layer named {', '.join(map(repr, unknown))} in the model")
        prefixes = tuple(n + "." for n in names if n)
        everything = "" in names  # the root: the whole model
        test = lambda name, module: everything or name in names or name.startswith(prefixes)  # noqa: E731
    return {id(m) for name, m in model.named_modules(remove_duplicate=False) if candidate(m) and test(name, m)}


def _carry_over(old: nn.Module, new: nn.Module) -> nn.Module:
    """What a module swap keeps besides the weights (as torch.ao.quantization's swap_module does): the
    training flag, the forward hooks and pre-hooks, and which parameters are frozen."""
    new.train(old.training)
    for hook in old._forward_pre_hooks.values():
        new.register_forward_pre_hook(hook)
    for hook in old._forward_hooks.values():
        new.register_forward_hook(hook)
    for pname in ("weight", "bias"):
        p_old, p_new = getattr(old, pname, None), getattr(new, pname, None)
        if isinstance(p_old, nn.Parameter) and isinstance(p_new, nn.Parameter):
            p_new.requires_grad_(p_old.requires_grad)
    return new


def _replace(model: nn.Module, want: Callable[[str, nn.Module], bool],
             make: Callable[[str, nn.Module], nn.Module]) -> nn.Module:
    """Replaces every module ``want`` selects (the root too) by ``make(name, module)``; a module
    reachable under several names is replaced once and stays shared (weight ties are kept).
    Every replacement is made before any is put in place, so a ``make`` that raises (a layer the
    format refuses) leaves the model as it was. Returns the model, or the replacement of the root."""
    if want("", model):
        return make("", model)
    new = {}  # id(old module) -> its replacement
    places = []  # (parent, attribute, id(old module))
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):  # named_children() hides repeats
            if child is None:
                continue
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if id(child) not in new and want(full, child):
                new[id(child)] = make(full, child)
            if id(child) in new:
                places.append((parent, child_name, id(child)))
    for parent, child_name, old in places:
        setattr(parent, child_name, new[old])
    return model


def quantize_model(model: nn.Module, config: QuantizationConfig, skip: Skip = None,
                   quantize_weights: bool = True) -> nn.Module:
    """Replaces every ``nn.Linear`` (not already a QLinear, not skipped) by a ``QLinear`` with the
    same weights, bias, device and dtype, the same frozen parameters (``requires_grad``), training
    flag and forward hooks. ``skip``: module names (as in ``named_modules``; a container's name
    skips every layer under it) or a predicate ``(name, module) -> bool`` asked about each
    ``nn.Linear``. Returns ``model`` (changed in place; a bare ``nn.Linear`` is returned as its
    ``QLinear``). A layer used at several places becomes one shared QLinear, or, when any of its
    names is skipped, stays one shared ``nn.Linear``.

    Raises:
        ValueError: ``model`` is not a Module, ``config`` not a QuantizationConfig, or a ``skip``
        name matches no layer."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, QuantizationConfig):
        raise ValueError(f"config: expected a QuantizationConfig, got {type(config).__name__}")
    candidate = lambda m: type(m) is nn.Linear  # noqa: E731
    skipped = _skipped_ids(model, skip, candidate)

    def make(name: str, lin: nn.Module) -> nn.Module:
        q = QLinear(lin.in_features, lin.out_features, config, quantize_weights=quantize_weights,
                    bias=lin.bias is not None, device=lin.weight.device, dtype=lin.weight.dtype)
        q.weight.data.copy_(lin.weight.data)
        if lin.bias is not None:
            q.bias.data.copy_(lin.bias.data)
        return _carry_over(lin, q)

    return _replace(model, lambda n, m: candidate(m) and id(m) not in skipped, make)


def deploy_model(model: nn.Module, skip: Skip = None, row_scale: str = "qlinear", t_group: int = 1) -> nn.Module:
    """Replaces every ``QLinear`` (not skipped) by its deployed ``PackedLinear``. Returns ``model``.

    ``row_scale="qlinear"`` (default) keeps the QLinear's row scales and config, so the deployed
    weights are the ones its forward used (QAT); ``"rms"`` divides rows by their rms only, for
    tuned configs such as ``coset.deployable_config("E8", 16, 1)`` whose beta is the whole scale
    (post-training quantization), ``"auto"`` also searches a better factor for rows with outliers or
    heavy tails (:meth:`coset.deploy.PackedLinear.from_weight`); ``t_group=4`` shares one T per 16
    weights (D4 configs, e.g. ``coset.deployable_config("D4", 4, 2, t_group=4)``: the fastest batch-1
    format). Refusals (a config the kernels cannot run, NaN weights) raise
    ValueError naming the layer; so does a ``skip`` name that matches no module. ``skip`` as in
    :func:`quantize_model`. Forward hooks carry over. A bare QLinear is returned as its
    PackedLinear; a QLinear used at several places becomes one shared PackedLinear (or stays one
    shared QLinear when any of its names is skipped)."""
    from .nn import QLinear

    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    candidate = lambda m: isinstance(m, QLinear)  # noqa: E731
    skipped = _skipped_ids(model, skip, candidate)

    def make(name: str, q: nn.Module) -> nn.Module:
        deployed = _carry_over(q, q.deploy(name=name or None, row_scale=row_scale, t_group=t_group))
        deployed.train(False)  # a deployed layer has no training mode of its own
        return deployed

    return _replace(model, lambda n, m: candidate(m) and id(m) not in skipped, make)

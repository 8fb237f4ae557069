"""Swap the nn.Linear layers of any model for BitLinear."""

from __future__ import annotations

import fnmatch
from typing import Iterable, Optional

import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import BitLayerBase, resolve_config
from bitlayers.bitlinear import BitLinear


def _skipped(name: str, patterns) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def convert_to_bitlinear(
    model: nn.Module, quant_config: Optional[BitQuantConfig] = None, skip: Iterable[str] = ()
) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` whose qualified name is not in ``skip`` (exact names
    or fnmatch patterns such as ``"head"`` or ``"blocks.*.proj"``) by a BitLinear holding a copy
    of its weights as latent weights. Returns ``model`` (also when it is itself an nn.Linear, in
    which case the new layer is returned)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"convert_to_bitlinear: expected an nn.Module, got {type(model).__name__}")
    if isinstance(skip, str):
        skip = (skip,)
    patterns = tuple(skip)
    config = resolve_config(quant_config)
    names = {name for name, _ in model.named_modules()}
    unknown = [p for p in patterns if not any(_skipped(n, (p,)) for n in names)]
    if unknown:
        raise ValueError(f"convert_to_bitlinear: skip entries {unknown} match no module of the model")
    if isinstance(model, nn.Linear) and not isinstance(model, BitLayerBase):
        return model if _skipped("", patterns) else BitLinear.from_linear(model, config)
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, nn.Linear) and not _skipped(full, patterns):
                setattr(parent, child_name, BitLinear.from_linear(child, config).train(child.training))
    return model


def deploy_model(model: nn.Module) -> nn.Module:
    """Deploy every BitLab layer of ``model`` (drop latent weights) and switch it to eval()."""
    for module in model.modules():
        if isinstance(module, BitLayerBase):
            module.deploy()
    return model.eval()

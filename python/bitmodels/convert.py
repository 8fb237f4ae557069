"""Swap the nn.Linear layers of any model for BitLinear, or convert a transformers Llama into a BitLM."""

from __future__ import annotations

import fnmatch
from typing import Iterable, Optional

import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import BitLayerBase, resolve_config
from bitlayers.bitlinear import BitLinear

from .lm import BITNET_QUANT as LM_DEFAULT_QUANT


def _skipped(name: str, patterns) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _output_head_name(model: nn.Module) -> Optional[str]:
    """Qualified name of the output head of a transformers-style language model (the module its
    ``get_output_embeddings()`` returns), or None."""
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Linear):
        return None
    return next((name for name, module in model.named_modules() if module is head), None)


def convert_to_bitlinear(
    model: nn.Module, quant_config: Optional[BitQuantConfig] = None, skip: Optional[Iterable[str]] = None,
    target: str = "inplace", sub_norms: bool = True,
) -> nn.Module:
    """Turn ``model`` into a BitLab model that trains (QAT in ``train()``, packed kernels in ``eval()``).

    ``target="inplace"`` (default): replace, in place, every ``nn.Linear`` whose qualified name is
    not in ``skip`` (exact names or fnmatch patterns such as ``"head"`` or ``"blocks.*.proj"``) by a
    :class:`BitLinear` holding a float32 copy of its weights (and bias) as latent weights, in the
    same train/eval mode. Returns ``model`` (when ``model`` is itself an nn.Linear, the new layer).
    Works on any model, Hugging Face ``transformers`` ones included (their forward, loss and
    ``labels`` argument keep working).

    Defaults for language models (a model whose ``get_output_embeddings()`` returns an nn.Linear,
    e.g. any transformers ``*ForCausalLM``), as in BitNet b1.58: ``skip=None`` keeps that output
    head an nn.Linear (embeddings are never converted: they are not nn.Linear), and
    ``quant_config=None`` means :data:`bitmodels.lm.BITNET_QUANT` (ternary weights with one scale
    per tensor, int8 activations with one scale per token; a per-tensor activation scale would let
    later tokens change how earlier ones are quantized). For other models ``skip=None`` skips nothing
    and ``quant_config=None`` is the library default (``BitQuantConfig()``). Pass ``skip=()`` to
    convert the head too.

    ``target="bitlm"``: ``model`` must be a transformers Llama-style causal LM; returns a new
    :class:`bitmodels.BitLM` with its weights (:func:`bitmodels.hf.llama_to_bitlm`: BitNet's
    sub-norms added with weights of ones when ``sub_norms=True``, the default; ``model`` unchanged).
    ``skip`` must then be None or empty.

    Raises:
        ValueError: ``model`` not an nn.Module; ``skip`` entries that match no module; an unknown
        ``target``; ``target="bitlm"`` with a model that is not Llama-style or with ``skip``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"convert_to_bitlinear: expected an nn.Module, got {type(model).__name__}")
    if target not in ("inplace", "bitlm"):
        raise ValueError(f"convert_to_bitlinear: target must be 'inplace' or 'bitlm', got {target!r}")
    if isinstance(skip, str):
        skip = (skip,)
    head = _output_head_name(model)
    if quant_config is None and head is not None:
        quant_config = LM_DEFAULT_QUANT
    if target == "bitlm":
        if skip:
            raise ValueError(f"convert_to_bitlinear: skip={tuple(skip)} is not supported with target='bitlm' "
                             "(every BitLM projection is a BitLinear; embeddings and head stay float)")
        from .hf import llama_to_bitlm

        return llama_to_bitlm(model, quant_config=quant_config, sub_norms=sub_norms)
    patterns = tuple(skip) if skip is not None else ((head,) if head else ())
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

"""Swap the linear layers of any model (nn.Linear, transformers Conv1D) for BitLinear, or convert a
transformers Llama into a BitLM."""

from __future__ import annotations

import fnmatch
from collections import Counter
from typing import Iterable, Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import BitLayerBase, resolve_config
from bitlayers.bitlinear import BitLinear

from .lm import BITNET_QUANT as LM_DEFAULT_QUANT


def _skipped(name: str, patterns) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def is_hf_conv1d(module: nn.Module) -> bool:
    """True for a transformers ``Conv1D`` (GPT-2, GPT, ...): despite the name a linear layer,
    ``y = x @ weight + bias`` with ``weight`` stored ``[in_features, out_features]``. Recognised by
    duck typing (class name and module, 2-D ``weight`` of ``[nx, nf]``), so transformers need not be
    importable."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")
            and isinstance(weight, torch.Tensor) and weight.dim() == 2
            and tuple(weight.shape) == (getattr(module, "nx", None), getattr(module, "nf", None)))


def _to_bitlinear(module: nn.Module, config: BitQuantConfig) -> BitLinear:
    """A BitLinear computing what ``module`` (an nn.Linear or a transformers Conv1D) computes, with a
    float32 copy of its weights as latent weights, on its device and in its train/eval mode."""
    if isinstance(module, nn.Linear):
        return BitLinear.from_linear(module, config).train(module.training)
    in_features, out_features = module.weight.shape
    layer = BitLinear(in_features, out_features, module.bias is not None, quant_config=config,
                      device=module.weight.device)
    with torch.no_grad():
        layer.weight.copy_(module.weight.detach().t().float())
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach().float())
    return layer.train(module.training)


def _convertible(module: nn.Module) -> bool:
    return (isinstance(module, nn.Linear) and not isinstance(module, BitLayerBase)) or is_hf_conv1d(module)


def _module_census(model: nn.Module) -> str:
    """``"Embedding x2, LayerNorm x5"``: the kinds of parameter-holding leaf modules of ``model``."""
    counts = Counter(type(m).__name__ for m in model.modules()
                     if not list(m.children()) and any(True for _ in m.parameters(recurse=False)))
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common()) or "no layer with parameters"


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

    ``target="inplace"`` (default): replace, in place, every linear layer whose qualified name is
    not in ``skip`` (exact names or fnmatch patterns such as ``"head"`` or ``"blocks.*.proj"``) by a
    :class:`BitLinear` holding a float32 copy of its weights (and bias) as latent weights, in the
    same train/eval mode. Linear layers are ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2's
    projections: ``y = x @ W + b`` with ``W`` stored ``[in, out]``, so the BitLinear gets ``W.T``;
    a fused projection such as GPT-2's ``c_attn`` becomes one BitLinear, one weight scale for the
    fused matrix). BitLinear layers already there are kept (converting twice changes nothing).
    Returns ``model`` (when ``model`` is itself a linear layer, the new layer). Works on any model,
    Hugging Face ``transformers`` ones included (their forward, loss and ``labels`` argument keep
    working).

    Defaults for language models (a model whose ``get_output_embeddings()`` returns an nn.Linear,
    e.g. any transformers ``*ForCausalLM``), as in BitNet b1.58: ``skip=None`` keeps that output
    head an nn.Linear (embeddings are never converted: they are not nn.Linear), and
    ``quant_config=None`` means :data:`bitmodels.lm.BITNET_QUANT` (ternary weights with one scale
    per tensor, int8 activations with one scale per token, ``activation_granularity="per_channel"``;
    a per-tensor activation scale would let later tokens change how earlier ones are quantized). For
    other models ``skip=None`` skips nothing and ``quant_config=None`` is the library default
    (``BitQuantConfig()``). Pass ``skip=()`` to convert the head too.

    ``target="bitlm"``: ``model`` must be a transformers Llama-style causal LM, float or already
    converted in place; returns a new :class:`bitmodels.BitLM` with its weights
    (:func:`bitmodels.hf.llama_to_bitlm`: BitNet's sub-norms added with weights of ones when
    ``sub_norms=True``, the default; ``model`` unchanged; ``quant_config=None`` is
    :data:`bitmodels.lm.BITNET_QUANT`, or the config of projections converted in place). ``skip``
    must then be None or empty.

    Raises:
        ValueError: ``model`` not an nn.Module; ``skip`` entries that match no module (listed); a
        model with no linear layer and no BitLinear (the message names its type and the layers it
        has); an unknown ``target``; ``target="bitlm"`` with a model that is not Llama-style or
        with ``skip``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"convert_to_bitlinear: expected an nn.Module, got {type(model).__name__}")
    if target not in ("inplace", "bitlm"):
        raise ValueError(f"convert_to_bitlinear: target must be 'inplace' or 'bitlm', got {target!r}")
    if isinstance(skip, str):
        skip = (skip,)
    if target == "bitlm":
        if skip:
            raise ValueError(f"convert_to_bitlinear: skip={tuple(skip)} is not supported with target='bitlm' "
                             "(every BitLM projection is a BitLinear; embeddings and head stay float)")
        from .hf import llama_to_bitlm

        return llama_to_bitlm(model, quant_config=quant_config, sub_norms=sub_norms)
    head = _output_head_name(model)
    if quant_config is None and head is not None:
        quant_config = LM_DEFAULT_QUANT
    patterns = tuple(skip) if skip is not None else ((head,) if head else ())
    config = resolve_config(quant_config)
    names = {name for name, _ in model.named_modules()}
    unknown = [p for p in patterns if not any(_skipped(n, (p,)) for n in names)]
    if unknown:
        raise ValueError(f"convert_to_bitlinear: skip entries {unknown} match no module of the model")
    if _convertible(model):
        return model if _skipped("", patterns) else _to_bitlinear(model, config)
    if not any(_convertible(m) or isinstance(m, BitLayerBase) for m in model.modules()):
        raise ValueError(f"convert_to_bitlinear: {type(model).__name__} has no layer to convert (nn.Linear or "
                         f"transformers Conv1D); found {_module_census(model)}")
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if _convertible(child) and not _skipped(full, patterns):
                setattr(parent, child_name, _to_bitlinear(child, config))
    return model


def deploy_model(model: nn.Module) -> nn.Module:
    """Deploy every BitLab layer of ``model`` (drop latent weights) and switch it to eval()."""
    for module in model.modules():
        if isinstance(module, BitLayerBase):
            module.deploy()
    return model.eval()

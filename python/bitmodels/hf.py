"""Hugging Face ``transformers`` Llama-style models -> BitLab (used by :func:`convert_to_bitlinear`).

No import of ``transformers`` here: a model is recognised by duck typing (its ``config.model_type``
and module names), so bitmodels works without the package and with any version whose Llama keeps
the module layout ``model.embed_tokens``, ``model.layers[i].{input_layernorm, self_attn.{q,k,v,o}_proj,
post_attention_layernorm, mlp.{gate,up,down}_proj}``, ``model.norm``, ``lm_head`` (transformers 4.x).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import BitLayerBase
from bitlayers.bitlinear import BitLinear

from .lm import BitLM, BitLMConfig

#: ``config.model_type`` values whose causal LMs have Llama's block (pre-norm RMSNorm, rotate-half
#: RoPE, grouped-query attention without biases, gated FFN).
LLAMA_STYLE_TYPES = ("llama",)

#: transformers ``hidden_act`` names -> :class:`BitLMConfig` ``hidden_act``.
_ACTS = {"silu": "silu", "swish": "silu", "relu2": "relu2"}

_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def is_llama_style(model) -> bool:
    """True when ``model`` looks like a transformers Llama causal LM (config ``model_type`` in
    :data:`LLAMA_STYLE_TYPES`, an ``lm_head`` and ``model.layers``)."""
    config = getattr(model, "config", None)
    return (isinstance(model, nn.Module) and getattr(config, "model_type", None) in LLAMA_STYLE_TYPES
            and isinstance(getattr(model, "lm_head", None), nn.Linear)
            and isinstance(getattr(getattr(model, "model", None), "layers", None), nn.ModuleList))


def _check_llama(model, where: str) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"{where}: expected a transformers Llama-style model (nn.Module), got {type(model).__name__}")
    if isinstance(getattr(model, "lm_head", None), BitLayerBase):
        raise ValueError(f"{where}: the output head lm_head of {type(model).__name__} was converted to a "
                         f"{type(model.lm_head).__name__}; a BitLM keeps a float head (convert in place with the "
                         f"default skip, which keeps lm_head an nn.Linear)")
    if not is_llama_style(model):
        kind = getattr(getattr(model, "config", None), "model_type", None)
        raise ValueError(f"{where}: {type(model).__name__} (model_type {kind!r}) is not a transformers Llama-style "
                         f"causal LM (model_type in {LLAMA_STYLE_TYPES} with lm_head and model.layers)")
    c = model.config
    hidden, heads = c.hidden_size, c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or hidden // heads
    problems = []
    if head_dim * heads != hidden:
        problems.append(f"head_dim {head_dim} x {heads} heads != hidden_size {hidden}")
    if getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        problems.append("projection biases (attention_bias / mlp_bias)")
    scaling = getattr(c, "rope_scaling", None)
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        problems.append(f"rope_scaling {scaling}")
    if c.hidden_act not in _ACTS:
        problems.append(f"hidden_act {c.hidden_act!r} (supported: {sorted(_ACTS)})")
    if problems:
        raise ValueError(f"{where}: {type(model).__name__} has what BitLM does not model: {'; '.join(problems)}")
    for i, layer in enumerate(model.model.layers):
        for name in _PROJECTIONS:
            try:
                module = layer.get_submodule(name)
            except AttributeError:
                module = None
            if not isinstance(module, (nn.Linear, BitLinear)):
                raise ValueError(f"{where}: model.layers.{i}.{name} is a {type(module).__name__}, not an nn.Linear "
                                 "or a BitLinear (not a Llama block)")


def _converted_projections(model) -> Dict[str, BitLinear]:
    """The projections of a Llama converted in place (:func:`convert_to_bitlinear`), by BitLM name."""
    return {f"layers.{i}.{name}": layer.get_submodule(name) for i, layer in enumerate(model.model.layers)
            for name in _PROJECTIONS if isinstance(layer.get_submodule(name), BitLinear)}


def _source_quant_config(model, quant_config: Optional[BitQuantConfig]) -> Optional[BitQuantConfig]:
    """``quant_config``, or, when None, the one of the model's BitLinear projections (all must agree)."""
    if quant_config is not None:
        return quant_config
    configs = {layer.quant_config for layer in _converted_projections(model).values()}
    if len(configs) > 1:
        raise ValueError(f"llama_to_bitlm: the model's BitLinear projections use different quantization configs "
                         f"{sorted(map(repr, configs))}; pass quant_config")
    return configs.pop() if configs else None


def _token_id(value, vocab_size: int) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < vocab_size else None


def _end_tokens(value, vocab_size: int):
    """A transformers ``eos_token_id`` (None, an id, or a list of ids as in Llama 3's config) as
    :class:`BitLMConfig` takes it: the ids inside the vocabulary (a list keeps every such id, so that
    ``generate`` stops where transformers' does), None when there are none."""
    if isinstance(value, (list, tuple)):
        ids = [v for v in value if _token_id(v, vocab_size) is not None]
        return (ids[0] if len(ids) == 1 else tuple(ids)) if ids else None
    return _token_id(value, vocab_size)


def bitlm_config_from_llama(model, ternary: bool = True, quant_config: Optional[BitQuantConfig] = None,
                            sub_norms: bool = True) -> BitLMConfig:
    """The :class:`BitLMConfig` of a transformers Llama-style causal LM: sizes, heads and KV heads
    (GQA), ``rms_norm_eps``, ``rope_theta``, ``hidden_act`` (silu -> SwiGLU), tied embeddings, and
    BOS/EOS ids inside the vocabulary (a list of EOS ids, as in Llama 3's config, is kept whole: the
    BitLM's ``generate`` stops at any of them, as transformers' does).

    Raises:
        ValueError: not a Llama-style model, or one with what BitLM does not model (projection biases,
        rope scaling, ``head_dim * heads != hidden_size``, another activation).
    """
    _check_llama(model, "bitlm_config_from_llama")
    quant_config = _source_quant_config(model, quant_config)
    c = model.config
    return BitLMConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings,
        num_kv_heads=getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
        hidden_act=_ACTS[c.hidden_act], rms_norm_eps=float(c.rms_norm_eps),
        rope_theta=float(getattr(c, "rope_theta", 10000.0)),
        tie_word_embeddings=bool(getattr(c, "tie_word_embeddings", False)), ternary=ternary,
        quant_config=quant_config, bos_token_id=_token_id(getattr(c, "bos_token_id", None), c.vocab_size),
        eos_token_id=_end_tokens(getattr(c, "eos_token_id", None), c.vocab_size), sub_norms=sub_norms)


def llama_to_bitlm(model, quant_config: Optional[BitQuantConfig] = None, sub_norms: bool = True,
                   ternary: bool = True) -> BitLM:
    """A new :class:`BitLM` with the weights of a transformers Llama-style causal LM (``model`` is
    left as it is).

    Mapping: ``model.embed_tokens``, ``model.layers.i.*`` and ``model.norm`` keep their names without
    the ``model.`` prefix, ``lm_head`` stays ``lm_head`` (tied to the embeddings when the Llama config
    ties them); every q/k/v/o/gate/up/down weight ``[out, in]`` becomes the latent float32 weight of a
    :class:`BitLinear` (quantized by QAT in ``train()`` mode, packed in ``eval()``), embeddings, norms
    and head stay float32. Rotary embeddings (rotate-half pairing, ``rope_theta``) and grouped KV heads
    are the same formulas in both models.

    BitNet's two extra sub-norms per block (before ``o_proj`` and ``down_proj``) do not exist in
    Llama. ``sub_norms=True`` (default, the BitNet b1.58 architecture, exportable with
    :func:`export_gguf`) adds them with weights initialised to ones: the converted model is then a
    BitNet b1.58 model that starts from the Llama weights and needs fine-tuning (the sub-norms
    rescale every token's attention output and FFN hidden state to unit RMS). ``sub_norms=False``
    keeps Llama's block exactly: with ``ternary=False`` the BitLM reproduces the Llama logits (up to
    float32 rounding; tested).

    A Llama already converted in place (``convert_to_bitlinear(model)``: BitLinear projections, float
    ``lm_head``) is accepted too: each BitLinear is copied whole (latent weights, or the packed
    weights of a deployed layer), and ``quant_config=None`` then means the projections' own config.
    With ``sub_norms=False`` the BitLM computes the converted model's function (tested); with the
    default ``sub_norms=True`` it gains the sub-norms, as above.

    Args:
        model: a transformers ``LlamaForCausalLM`` (any dtype, any device; the BitLM lands on the same
            device, in float32).
        quant_config: quantization of the projections (default :data:`bitmodels.lm.BITNET_QUANT`:
            per-tensor ternary weights, int8 per-token activations).
        sub_norms: add BitNet's sub-norms (see above).
        ternary: False builds the float32 twin (nn.Linear projections) with the same weights.

    Raises:
        ValueError: see :func:`bitlm_config_from_llama`; also a weight whose shape does not match the
        config; BitLinear projections with different quantization configs (pass ``quant_config``),
        with a bias, or deployed with ``ternary=False``; a BitLinear ``lm_head``.
    """
    config = bitlm_config_from_llama(model, ternary=ternary, quant_config=quant_config, sub_norms=sub_norms)
    converted = _converted_projections(model)
    source: Dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("model."):
            name = name[len("model."):]
        elif name != "lm_head.weight":
            continue
        if name.rpartition(".")[0] not in converted:  # BitLinear projections are copied whole below
            source[name] = tensor
    device = model.lm_head.weight.device
    bitlm = BitLM(config).to(device)
    used = {"lm_head.weight"} if config.tie_word_embeddings else set()
    with torch.no_grad():
        for name, layer in converted.items():
            _copy_projection(layer, bitlm.get_submodule(name), name)
        for name, dest in list(bitlm.named_parameters()):  # a tied head appears once, as embed_tokens.weight
            if name.endswith("sub_norm.weight") or name.rpartition(".")[0] in converted:
                continue  # sub-norms are not in Llama (RMSNorm's ones); converted projections are done
            if name not in source:
                raise ValueError(f"llama_to_bitlm: the Llama model has no weight for '{name}'")
            src = source[name]
            if tuple(src.shape) != tuple(dest.shape):
                raise ValueError(f"llama_to_bitlm: '{name}' has shape {tuple(src.shape)} in the Llama model, "
                                 f"expected {tuple(dest.shape)} from its config")
            dest.copy_(src.detach().to(dest.dtype))
            used.add(name)
    unused = sorted(n for n in source if n not in used and not n.endswith("rotary_emb.inv_freq"))
    if unused:
        raise ValueError(f"llama_to_bitlm: weights with no place in a BitLM: {unused[:5]}")
    return bitlm.train(model.training)


def _copy_projection(source: BitLinear, dest: nn.Module, name: str) -> None:
    """Copy a projection converted in place into the BitLM's: the whole BitLinear state (latent
    weights, or the packed weights and scales of a deployed layer) into a BitLinear, the latent
    weights into the nn.Linear of a float twin."""
    if (source.out_features, source.in_features) != (dest.out_features, dest.in_features):
        raise ValueError(f"llama_to_bitlm: '{name}' has shape {(source.out_features, source.in_features)} in the "
                         f"Llama model, expected {(dest.out_features, dest.in_features)} from its config")
    if source.bias is not None:
        raise ValueError(f"llama_to_bitlm: '{name}' has a bias, which BitLM's projections do not have")
    if isinstance(dest, BitLinear):
        dest.load_state_dict(source.state_dict())
    elif source.deployed:
        raise ValueError(f"llama_to_bitlm: '{name}' is deployed (packed weights only): no float weights for "
                         f"ternary=False")
    else:
        dest.weight.copy_(source.weight.detach().to(dest.weight.dtype))

"""``BitNetForCausalLM`` ("bitnet"): the namesake's BitNet b1.58 causal LM, on :class:`bitmodels.BitLM`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitlayers.bitlinear import BitLinear as _LowbitBitLinear
from bitmodels.lm import BitLM, BitLMConfig

from ..bnn.bitlayers.bitlinear import TrainGradsInEval

from .._quant_type import quant_config_for
from .auto import register_bitmodel
from .base import BaseBitModel
from .config import BaseBitModelConfig, positive_int, register_bitconfig
from .mixins import CausalLMMixin
from .tasks import ModelTask

_ACTIVATIONS = {"relu2": "relu2", "silu": "silu", "swish": "silu"}


@register_bitconfig("bitnet")
@dataclasses.dataclass(frozen=True)
class BitNetConfig(BaseBitModelConfig):
    """The namesake's BitNet config (field names and defaults: BitNet b1.58 2B4T).

    ``head_dim`` None means ``hidden_size // num_attention_heads``; lowbit's BitLM needs
    ``num_attention_heads * head_dim == hidden_size``. ``hidden_act``: ``"relu2"``, ``"silu"`` or
    ``"swish"``. ``quant_type``: see :class:`bitlab.bnn.BitLinear` (default ``"ai8ptk_wpt"``, int8
    per-token activations and per-tensor ternary weights; None / ``"none"`` builds the float model).
    ``attention_bias`` and ``attention_dropout`` are accepted and unused, as upstream (its
    projections have no bias and its attention no dropout).

    Raises:
        ValueError: non-positive sizes, heads that do not divide, ``head_dim`` inconsistent with
        ``hidden_size``, an unsupported ``hidden_act`` or ``quant_type``.
    """

    task: str = ModelTask.CAUSAL_LM.value
    model_type: str = "bitnet"
    vocab_size: int = 128256
    hidden_size: int = 2560
    intermediate_size: int = 6912
    num_hidden_layers: int = 30
    num_attention_heads: int = 20
    num_key_value_heads: int = 5
    head_dim: Optional[int] = None
    hidden_act: str = "relu2"
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    tie_word_embeddings: bool = True
    rope_theta: float = 500000.0
    attention_bias: bool = False
    attention_dropout: float = 0.0
    quant_type: Optional[str] = "ai8ptk_wpt"

    def _validate(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "max_position_embeddings"):
            positive_int("BitNetConfig", name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BitNetConfig: num_attention_heads ({self.num_attention_heads}) must divide "
                             f"hidden_size ({self.hidden_size})")
        if self.head_dim is not None:
            positive_int("BitNetConfig", "head_dim", self.head_dim)
            if self.head_dim * self.num_attention_heads != self.hidden_size:
                raise ValueError(f"BitNetConfig: head_dim ({self.head_dim}) x num_attention_heads "
                                 f"({self.num_attention_heads}) must equal hidden_size ({self.hidden_size}) in lowbit's BitLM")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"BitNetConfig: hidden_act {self.hidden_act!r} is not supported "
                             f"(supported: {sorted(_ACTIVATIONS)})")
        if not (0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"BitNetConfig: pad_token_id ({self.pad_token_id}) must lie in [0, vocab_size)")
        quant_config_for(self.quant_type)

    def to_bitlm_config(self) -> BitLMConfig:
        """The equivalent :class:`bitmodels.BitLMConfig`."""
        qc = quant_config_for(self.quant_type)
        return BitLMConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_layers=self.num_hidden_layers,
            num_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings, num_kv_heads=self.num_key_value_heads,
            hidden_act=_ACTIVATIONS[self.hidden_act], rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta,
            tie_word_embeddings=self.tie_word_embeddings, ternary=qc is not None, quant_config=qc,
            bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id)


class BitNetLinear(TrainGradsInEval, _LowbitBitLinear):
    """The projections of :class:`BitNetForCausalLM`: lowbit's BitLinear whose ``eval()`` still
    trains (a loss computed in eval mode backpropagates the training-mode gradients into the
    weights), as the namesake's ``bitlab.bnn.BitLinear`` projections do."""


def _rename_namesake_keys(module, state_dict, prefix, *args) -> None:
    # the namesake nests its decoder one level deeper: model.model.<decoder> / model.lm_head
    old = prefix + "model.model."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "model." + key[len(old):]] = state_dict.pop(key)


@register_bitmodel("bitnet")
class BitNetForCausalLM(CausalLMMixin, BaseBitModel):
    """BitNet b1.58 causal LM: ``self.model`` is a :class:`bitmodels.BitLM` built from the config.

    ``forward(input_ids [B, T] int64, *, attention_mask=None, position_ids=None,
    past_key_values=None, labels=None, use_cache=False)`` -> dict with ``"logits"`` (float32
    ``[B, T, vocab_size]``), ``"loss"`` (next-token cross entropy against ``labels`` shifted by one,
    or None) and ``"past_key_values"`` (list of ``(k, v)`` per layer, ``[B, kv_heads, T_total,
    head_dim]``, with ``use_cache=True``, else None). ``attention_mask`` is Hugging Face's 2-D
    ``[B, T_total]`` of 0/1 (see ``BitLM.forward``); the namesake's 4-D additive masks raise ValueError.
    As upstream, eval mode (``BitAutoModel.from_config``'s default) changes no arithmetic for
    training: a loss computed in eval mode gives the projections their training-mode gradients
    (the forward runs the packed kernels). The embedding's ``pad_token_id`` row starts at zero and gets no gradient, as upstream.
    State dicts of the namesake's model (``model.model.*`` keys) load (renamed to ``model.*``).

    Raises:
        ValueError: as ``BitLM.forward`` (bad ids, masks, caches); ``labels`` not ``[B, T]``.
    """

    config_cls: ClassVar[type] = BitNetConfig

    def __init__(self, config: Optional[BitNetConfig] = None, **overrides: Any) -> None:
        super().__init__(config=config, **overrides)
        self._register_load_state_dict_pre_hook(_rename_namesake_keys, with_module=True)

    def build_model(self, config: BitNetConfig) -> nn.Module:
        lm = BitLM(config.to_bitlm_config())
        for module in lm.modules():
            if type(module) is _LowbitBitLinear:
                module.__class__ = BitNetLinear  # same state; eval() keeps the weights' gradients
        emb = lm.embed_tokens
        emb.padding_idx = config.pad_token_id
        with torch.no_grad():
            emb.weight[config.pad_token_id].zero_()
        return lm

    def forward(self, input_ids: torch.Tensor, *, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, past_key_values=None,
                labels: Optional[torch.Tensor] = None, use_cache: bool = False) -> Dict[str, Any]:
        out = self.model(input_ids, past_key_values=past_key_values, use_cache=use_cache,
                         attention_mask=attention_mask, position_ids=position_ids)
        logits, cache = out if use_cache else (out, None)
        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(input_ids.shape):
                raise ValueError(f"BitNetForCausalLM: labels must be a tensor shaped like input_ids "
                                 f"{tuple(input_ids.shape)}, got {getattr(labels, 'shape', type(labels).__name__)}")
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1).to(logits.device))
        return {"loss": loss, "logits": logits, "past_key_values": cache}

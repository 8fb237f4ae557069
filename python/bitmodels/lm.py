"""BitLM: the BitNet b1.58 decoder-only language model, every projection a ternary BitLinear.

Architecture (Ma et al. 2024, "The Era of 1-bit LLMs", arXiv:2402.17764; BitNet b1.58 2B4T
technical report, arXiv:2504.12285), laid out as llama.cpp's ``bitnet`` architecture so that
:func:`bitmodels.gguf_io.export_gguf` maps it one to one::

    h = embed(ids)                                    # float embeddings (higher precision)
    for each block:
        a = attn_norm(h)                              # RMSNorm
        q, k, v = Wq a, Wk a, Wv a                    # BitLinear, int8 per-token activations
        q, k = rope(q), rope(k)                       # rotary, half-split ("NeoX") pairing
        o = softmax(q k^T / sqrt(d) + causal) v       # grouped KV heads repeated to the query heads
        h = h + Wo attn_sub_norm(o)                   # the extra "subln" before the output projection
        f = ffn_norm(h)
        g = act(Wgate f) * (Wup f)                    # act: relu^2 (2B4T) or silu (SwiGLU)
        h = h + Wdown ffn_sub_norm(g)                 # subln before the down projection
    logits = lm_head(output_norm(h))                  # float head, tied to the embeddings by default

``BitLMConfig(ternary=False)`` builds the float32 twin (``nn.Linear`` projections, same shapes)
used as the baseline in ``examples/train_bitlm.py``.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import math
import numbers
import operator
import sys
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitcore.config import BitQuantConfig
from bitcore.threads import torch_ops_on_one_thread
from bitlayers.base import resolve_config
from bitlayers.bitlinear import BitLinear

from .base import BitModelBase
from .registry import register_config, register_model

#: FFN activations: ``relu2`` = squared ReLU (BitNet b1.58 2B4T), ``silu`` = SwiGLU (LLaMA, BitNet b1.58 3B).
HIDDEN_ACTS = ("relu2", "silu")

#: The default quantization of a BitLM projection: one absmean scale per weight tensor, int8 absmax
#: activations per token (W1.58A8 as in the paper). Its repr says ``activation_granularity='per_channel'``:
#: for activations that is one scale per row of the input, i.e. per token (:class:`BitQuantConfig`). Per-token activations also make a token's output
#: independent of the other tokens in the batch, which is what lets the KV cache reproduce the full pass.
BITNET_QUANT = BitQuantConfig(weight_granularity="per_tensor", activation_dtype="int8",
                              activation_granularity="per_channel")

KVCache = List[Tuple[torch.Tensor, torch.Tensor]]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"BitLMConfig: {name} must be a positive int, got {value!r}")
    return value


def _is_bool(value) -> bool:
    """A Python, numpy or 0-d torch bool (each also passes ``operator.index``, which must not take it)."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        return True
    np = sys.modules.get("numpy")  # not imported: the value cannot be a numpy bool
    return np is not None and isinstance(value, np.bool_)


def _as_int(value) -> Tuple[Optional[int], str]:
    """``(int, "")`` when ``value`` is an integer (anything ``operator.index`` takes: int, a numpy integer,
    a 0-d integer tensor), else ``(None, why not)``: bools and floats are refused, not rounded."""
    if _is_bool(value):
        return None, "a bool, not an int"
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            return None, f"a {value.dim()}-D tensor, not a scalar"
        if value.dtype.is_floating_point or value.is_complex():
            return None, f"a {value.dtype} tensor, not an int"
    try:
        return operator.index(value), ""
    except TypeError:
        return None, f"a {type(value).__name__}, not an int"


def _int_arg(where: str, name: str, value, what: str) -> int:
    """``value`` as a Python int (see :func:`_as_int`), else ValueError
    ``"{where}: {name} must be {what}, got {value!r} (why not)"``."""
    i, reason = _as_int(value)
    if i is None:
        raise ValueError(f"{where}: {name} must be {what}, got {value!r} ({reason})")
    return i


def _real_arg(where: str, name: str, value, what: str) -> float:
    """``value`` as a Python float when it is a real number other than NaN (int, float, a numpy number, a
    0-d real tensor), else ValueError ``"{where}: {name} must be {what}, got ..."`` with the reason."""
    if _is_bool(value):
        reason = "a bool, not a number"
    elif isinstance(value, torch.Tensor) and (value.dim() != 0 or value.is_complex()):
        reason = "a complex tensor, not a real number" if value.is_complex() else \
            f"a {value.dim()}-D tensor, not a scalar"
    elif not isinstance(value, (numbers.Real, torch.Tensor)):
        reason = f"a {type(value).__name__}, not a number"
    else:
        x = float(value)
        if not math.isnan(x):
            return x
        reason = "NaN"
    raise ValueError(f"{where}: {name} must be {what}, got {value!r} ({reason})")


@register_config("BitLMConfig")
@dataclasses.dataclass
class BitLMConfig:
    """Shape of a :class:`BitLM` (field names follow Hugging Face's ``LlamaConfig`` where they exist).

    Args:
        vocab_size: number of tokens (a byte-level tokenizer needs 258: 256 bytes, BOS, EOS).
        hidden_size: model width; must be ``num_heads * head_dim``.
        num_layers: decoder blocks.
        num_heads: query heads; must divide ``hidden_size``.
        intermediate_size: FFN width.
        max_position_embeddings: longest sequence (prompt plus generated tokens) the model accepts.
        num_kv_heads: key/value heads (grouped-query attention); None = ``num_heads``; must divide it.
        hidden_act: ``"relu2"`` (default, BitNet b1.58 2B4T) or ``"silu"`` (SwiGLU).
        rms_norm_eps: RMSNorm epsilon. Default 1e-5.
        rope_theta: rotary base. Default 10000.0.
        tie_word_embeddings: output head shares the embedding matrix (default True; llama.cpp's
            ``bitnet`` graph always uses ``token_embd`` as the head).
        ternary: True (default) for BitLinear projections; False builds the float32 twin.
        quant_config: the :class:`BitQuantConfig` of every projection (default :data:`BITNET_QUANT`).
        bos_token_id, eos_token_id: special token ids (default 256 and 257: :class:`ByteTokenizer`);
            ``eos_token_id`` may also be a list of ids, as in transformers configs (Llama 3's): stored as
            a tuple (one id: that int), :meth:`BitLM.generate` stops at any of them by default.
        sub_norms: True (default) for BitNet's RMSNorms before the attention output and FFN down
            projections; False leaves them out (a plain Llama block: what
            :func:`bitmodels.llama_to_bitlm` builds to reproduce a Llama model exactly; such
            models do not export to GGUF, whose ``bitnet`` graph has the sub-norms).

    Raises:
        ValueError: non-positive sizes, heads that do not divide, an unknown ``hidden_act``, a
        ``quant_config`` that is not a BitQuantConfig, special token ids outside the vocabulary.
    """

    vocab_size: int = 258
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    num_kv_heads: Optional[int] = None
    hidden_act: str = "relu2"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    ternary: bool = True
    quant_config: Optional[BitQuantConfig] = None
    bos_token_id: Optional[int] = 256
    eos_token_id: Union[None, int, Tuple[int, ...]] = 257
    sub_norms: bool = True

    model_type = "bit_lm"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings"):
            _positive_int(name, getattr(self, name))
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_heads
        _positive_int("num_kv_heads", self.num_kv_heads)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"BitLMConfig: num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"BitLMConfig: num_kv_heads ({self.num_kv_heads}) must divide num_heads ({self.num_heads})")
        if self.head_dim % 2:
            raise ValueError(f"BitLMConfig: head_dim ({self.head_dim}) must be even for rotary embeddings")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"BitLMConfig: hidden_act must be one of {HIDDEN_ACTS}, got {self.hidden_act!r}")
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"BitLMConfig: {name} must be a positive number, got {value!r}")
            setattr(self, name, float(value))
        for name in ("tie_word_embeddings", "ternary", "sub_norms"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BitLMConfig: {name} must be a bool, got {getattr(self, name)!r}")
        self.quant_config = BITNET_QUANT if self.quant_config is None else resolve_config(self.quant_config)
        def token_id(value) -> bool:
            return not isinstance(value, bool) and isinstance(value, int) and 0 <= value < self.vocab_size
        if self.bos_token_id is not None and not token_id(self.bos_token_id):
            raise ValueError(f"BitLMConfig: bos_token_id must be None or a token id below vocab_size, "
                             f"got {self.bos_token_id!r}")
        eos = self.eos_token_id
        if isinstance(eos, (list, tuple)):  # several end tokens, as transformers configs allow (Llama 3)
            if not eos or not all(token_id(e) for e in eos):
                raise ValueError(f"BitLMConfig: eos_token_id must be None, a token id below vocab_size or a "
                                 f"non-empty list of them, got {eos!r}")
            self.eos_token_id = eos[0] if len(eos) == 1 else tuple(eos)
        elif eos is not None and not token_id(eos):
            raise ValueError(f"BitLMConfig: eos_token_id must be None, a token id below vocab_size or a "
                             f"non-empty list of them, got {eos!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def _projection(config: BitLMConfig, fan_in: int, fan_out: int, device=None) -> nn.Module:
    if config.ternary:
        return BitLinear(fan_in, fan_out, bias=False, quant_config=config.quant_config, device=device)
    return nn.Linear(fan_in, fan_out, bias=False, device=device)


def _sub_norm(config: BitLMConfig, dim: int) -> nn.Module:
    return RMSNorm(dim, config.rms_norm_eps) if config.sub_norms else nn.Identity()


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin ``[..., T, head_dim]`` (float32) for int64 ``positions [..., T]`` (``[T]``, or
    ``[B, T]`` for per-row positions): frequencies ``theta^(-2i/d)``, each repeated for the two
    halves of the head (rotate-half pairing)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.to(torch.float32)[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x [B, H, T, D]`` rotated: pairs ``(x_i, x_{i+D/2})`` (llama.cpp's NEOX rope, HF's rotate_half).
    ``cos``/``sin``: ``[T, D]`` (every row at the same positions) or ``[B, 1, T, D]`` (per row)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     visible: Optional[torch.Tensor]) -> torch.Tensor:
    """``softmax(q k^T / sqrt(D), keys not visible masked out) v`` for ``q [..., L, D]``, ``k, v [..., S, D]``
    and a bool ``visible`` broadcastable to ``[..., L, S]`` (True: the query sees the key; None:
    every key; every query must see at least one key), ``[..., L, D]``.

    ``torch.nn.functional.scaled_dot_product_attention`` (PyTorch 2.x: one fused op, no ``[L, S]``
    score tensor kept) when the installed PyTorch has it, else the same formula in matmuls and a
    float32 softmax (PyTorch 1.13). The two agree up to float rounding (tests/python/test_bitlm.py).
    """
    if _SDPA is not None:
        return _SDPA(q, k, v, attn_mask=visible)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v)


#: PyTorch 2.x's fused attention, None on PyTorch 1.13 (:func:`causal_attention` then uses matmuls).
_SDPA = getattr(F, "scaled_dot_product_attention", None)


class _FusedProjections:
    """Deployed projections that read the same input run as ONE packed C++ call, as ``bitlab-run``
    fuses q/k/v and gate/up: the input is quantized once and the weight rows of all of them go
    through one GEMM. Each output element is the same int32 sum and the same epilogue as in the
    separate calls, so the outputs are bit-identical (tests/python/test_bitlm.py checks it).

    The layers' ``packed_2bit`` / ``weight_scale`` buffers become row slices (views) of one
    concatenated buffer each, so fusing costs no memory. Used only while every layer is deployed,
    bias-free, on the same shipped C++ kernel (CPU), the input needs no gradient, and each
    layer's buffers are still the views made here with the shared buffers unwritten; otherwise
    (``load_state_dict``, a write, ``.to()``...) the layers run one by one, or are fused again.
    Not a module: it holds no state of its own beyond those shared buffers.
    """

    def __init__(self, *layers: nn.Module) -> None:
        self.layers = layers
        self.state = None  # (packed, scales, versions, views)

    def _usable(self, x: torch.Tensor):
        """The kernel to fuse with, or None when the layers must run one by one."""
        first = self.layers[0]
        if not all(isinstance(l, BitLinear) and l.deployed and l.bias is None for l in self.layers):
            return None
        if torch.is_grad_enabled() and x.requires_grad:
            return None
        kernel = first.kernel
        if not first._kernel_checks_finite(kernel, x):
            return None
        if any(l.quant_config != first.quant_config or l.in_features != first.in_features
               or l.packed_2bit.device != x.device for l in self.layers):
            return None
        return kernel

    def _fused_buffers(self):
        if torch.is_inference_mode_enabled():
            # Fuse into ordinary tensors: inference tensors have no version counter (the check
            # below raised on the first forward under torch.inference_mode()), and the layers'
            # buffers become views of these.
            with torch.inference_mode(False):
                return self._fused_buffers()
        st = self.state
        if st is not None:
            packed, scales, versions, views = st
            if (packed._version, scales._version) == versions and all(
                    l.packed_2bit is p and l.weight_scale is s for l, (p, s) in zip(self.layers, views)):
                return packed, scales
        packed = torch.cat([l.packed_2bit for l in self.layers])
        scales = torch.cat([l.weight_scale for l in self.layers])
        views, row = [], 0
        for l in self.layers:
            n = l.out_features
            view = (packed[row:row + n], scales[row:row + n])
            l.packed_2bit, l.weight_scale = view  # same values: the separate buffers are freed
            views.append(view)
            row += n
        self.state = (packed, scales, (packed._version, scales._version), views)
        return packed, scales

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        """``[y_i]`` = each layer applied to ``x [..., K]``: ``[..., N_i]`` in ``x``'s dtype. Fused, each is a
        column slice (a view, not contiguous) of the one ``[..., sum N_i]`` output: the callers reshape or
        compute on them, so no copy is made; run one by one, separate contiguous tensors."""
        kernel = self._usable(x)
        if kernel is None:
            self.state = None  # keep no stale buffers (after a .to(), a reload...)
            return [l(x) for l in self.layers]
        first = self.layers[0]
        first._check_input(x, check_finite=False)  # NaN/Inf: the C++ op raises (reworded below)
        packed, scales = self._fused_buffers()
        x2d = x.detach().reshape(-1, first.in_features).to(torch.float32).contiguous()
        if x2d.shape[0] == 0:
            return [l(x) for l in self.layers]
        try:
            y = kernel.linear(x2d, packed, first.in_features, scales, None)
        except ValueError as e:
            if "NaN or Inf" in str(e):
                raise ValueError(f"{type(first).__name__}: input contains NaN or Inf") from None
            raise
        y = y.reshape(*x.shape[:-1], y.shape[-1]).to(x.dtype)
        out, col = [], 0
        for l in self.layers:
            out.append(y[..., col:col + l.out_features])  # a view: same values as a separate call
            col += l.out_features
        return out


class BitLMAttention(nn.Module):
    """Causal multi-head attention with grouped KV heads, rotary embeddings and the BitNet sub-norm."""

    def __init__(self, config: BitLMConfig, projection_device=None) -> None:
        super().__init__()
        self.config = config
        d, hd = config.hidden_size, config.head_dim
        self.q_proj = _projection(config, d, config.num_heads * hd, projection_device)
        self.k_proj = _projection(config, d, config.num_kv_heads * hd, projection_device)
        self.v_proj = _projection(config, d, config.num_kv_heads * hd, projection_device)
        self.attn_sub_norm = _sub_norm(config, config.num_heads * hd)
        self.o_proj = _projection(config, config.num_heads * hd, d, projection_device)
        self._qkv = _FusedProjections(self.q_proj, self.k_proj, self.v_proj)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, key_mask: Optional[torch.Tensor] = None):
        """``key_mask``: None, or bool ``[B, total]`` (False: a padding position no query may read)."""
        b, t, _ = x.shape
        c = self.config
        q, k, v = self._qkv(x)
        q = q.view(b, t, c.num_heads, c.head_dim).transpose(1, 2)
        k = k.view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = v.view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        groups = c.num_heads // c.num_kv_heads
        total = k.shape[2]
        # Grouped KV heads: query head h reads KV head h // groups; the `groups` query heads of one KV
        # head are one block of groups * t rows (row r: query position r % t), so k and v are not repeated.
        q = q.reshape(b, c.num_kv_heads, groups * t, c.head_dim)
        visible = None
        if t > 1 or key_mask is not None:  # query i sits at position total - t + i and sees keys 0..that position
            rows = torch.arange(total - t, total, device=x.device).repeat(groups)[:, None]
            keys = torch.arange(total, device=x.device)[None, :]
            visible = keys <= rows
            if key_mask is not None:  # [B, 1, rows, total]; a query always sees its own key, so a
                # padding query (whose outputs nothing reads) never has every key masked (NaN)
                visible = (visible & key_mask[:, None, None, :]) | (keys == rows)
        out = causal_attention(q, k, v, visible).view(b, c.num_heads, t, c.head_dim)
        out = out.transpose(1, 2).reshape(b, t, c.num_heads * c.head_dim)
        return self.o_proj(self.attn_sub_norm(out)), present


class BitLMFeedForward(nn.Module):
    """Gated FFN: ``down(ffn_sub_norm(act(gate(x)) * up(x)))``, act = relu^2 or silu."""

    def __init__(self, config: BitLMConfig, projection_device=None) -> None:
        super().__init__()
        d, f = config.hidden_size, config.intermediate_size
        self.hidden_act = config.hidden_act
        self.gate_proj = _projection(config, d, f, projection_device)
        self.up_proj = _projection(config, d, f, projection_device)
        self.ffn_sub_norm = _sub_norm(config, f)
        self.down_proj = _projection(config, f, d, projection_device)
        self._gate_up = _FusedProjections(self.gate_proj, self.up_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self._gate_up(x)
        g = torch.relu(g).square() if self.hidden_act == "relu2" else F.silu(g)
        return self.down_proj(self.ffn_sub_norm(g * u))


class BitLMBlock(nn.Module):
    """One pre-norm decoder block (attention then FFN, each with a residual)."""

    def __init__(self, config: BitLMConfig, projection_device=None) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = BitLMAttention(config, projection_device)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = BitLMFeedForward(config, projection_device)

    def forward(self, h, cos, sin, past=None, key_mask=None):
        a, present = self.self_attn(self.input_layernorm(h), cos, sin, past, key_mask)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), present


@register_model("BitLMModel")
class BitLM(BitModelBase):
    """BitNet b1.58 decoder LM (see the module docstring).

    ``forward(input_ids [B, T] int64, past_key_values=None, use_cache=False, logits_to_keep=0, *,
    attention_mask=None, position_ids=None)`` returns logits ``[B, T, vocab_size]`` (float32), or
    ``(logits, cache)`` with ``use_cache=True``: the cache is a list of ``(k, v)`` per layer, each
    ``[B, num_kv_heads, T_total, head_dim]``. As in Hugging Face's Llama: ``attention_mask [B, T_total]``
    (1 token, 0 padding; the cached positions too) keeps every query from reading padding keys, and
    ``position_ids [B, T]`` (default: the cache's next positions, the same for every row) sets each
    row's rotary positions; for left-padded prompts pass ``cumsum(attention_mask) - 1``, as
    :meth:`generate` does. Padding positions' own outputs are meaningless (each sees only itself).
    ``logits_to_keep=n > 0`` (Hugging Face's name) computes the output head for the last ``n``
    positions only: logits ``[B, min(n, T), vocab_size]``; :meth:`generate` keeps 1 (a prompt's
    forward needs only its last position's logits). The head is a float matmul, so those rows may
    differ from the same rows of a full forward in the last bits (as a KV-cache step's do). Runs on
    the device of its parameters (BitLinear picks its kernel per device). Train mode = quantization-aware
    training (straight-through), eval mode = packed ternary kernels. Threads: on the C++ path (eval,
    CPU) the projections use ``torch.get_num_threads()`` threads of lowbit's pool while the forward's
    PyTorch ops run on one thread (:mod:`bitcore.threads`); the logits do not depend on either.

    ``projection_device`` (keyword only, default None = the default device): where the projections'
    float weights are created. ``"meta"`` allocates none: a skeleton whose projections must then
    be set from packed weights - ``load_state_dict`` of a deployed model's state dict (the packed
    weights land on that dict's device), or ``load_gguf(trainable=False)`` - so that loading a
    deployed model never holds its float weights; embeddings and norms are always real tensors.
    Until then the skeleton's eval forward and ``deploy()`` raise ValueError naming ``meta``.

    Memory: :meth:`deploy` (from ``BitModelBase``) converts one projection at a time and frees its
    float weights as it goes; called on a model in training mode it holds, at its peak, the float
    weights plus the packed bytes. ``eval()`` before ``deploy()`` first builds every layer's
    eval-mode cache (a float copy of the weights and their int8 trits: see ``BitLinear``), which
    more than doubles that peak: deploy straight from training mode when memory matters.

    Raises:
        ValueError: ``config`` not a BitLMConfig; ``input_ids`` not a 2-D integer tensor, with ids
        outside ``[0, vocab_size)``, or longer (with the cache) than ``max_position_embeddings``;
        ``logits_to_keep`` not a non-negative int; an ``attention_mask`` that is not ``[B, T_total]`` of
        0 and 1, or ``position_ids`` that are not ``[B, T]`` (or ``[1, T]``) integers below
        ``max_position_embeddings``; a ``past_key_values`` that is not a cache for this
        model and these ``input_ids`` (the message names it and the mismatch: number of layers, batch,
        KV heads, head dim, positions per layer, device, dtype).
    """

    config_cls = BitLMConfig

    def __init__(self, config: BitLMConfig, quant_config: Optional[BitQuantConfig] = None, *,
                 projection_device=None) -> None:
        if not isinstance(config, BitLMConfig):
            raise ValueError(f"BitLM: expected a BitLMConfig, got {type(config).__name__}")
        if quant_config is not None:
            config = dataclasses.replace(config, quant_config=resolve_config(quant_config))
        super().__init__(config, config.quant_config if config.ternary else None)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(BitLMBlock(config, projection_device) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=0.02)

    def _check_ids(self, input_ids, past_len: int) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype.is_floating_point \
                or input_ids.dtype == torch.bool or input_ids.is_complex():
            got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"BitLM: input_ids must be a 2-D integer tensor [batch, tokens], got {got}")
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(f"BitLM: token ids must lie in [0, {self.config.vocab_size}), got "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]")
        total = past_len + input_ids.shape[1]
        if total > self.config.max_position_embeddings:
            raise ValueError(f"BitLM: {total} positions exceed max_position_embeddings="
                             f"{self.config.max_position_embeddings}")

    def forward(self, input_ids: torch.Tensor, past_key_values: Optional[KVCache] = None, use_cache: bool = False,
                logits_to_keep: int = 0, *, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None):
        keep = _int_arg("BitLM", "logits_to_keep", logits_to_keep, "a non-negative int")
        if keep < 0:
            raise ValueError(f"BitLM: logits_to_keep must be a non-negative int, got {logits_to_keep!r} (negative)")
        logits_to_keep = keep
        past_len = 0 if past_key_values is None else self._check_cache(past_key_values, input_ids)
        self._check_ids(input_ids, past_len)
        device = self.embed_tokens.weight.device
        b, t = input_ids.shape
        key_mask = None if attention_mask is None else self._check_mask(attention_mask, b, past_len + t)
        h = self.embed_tokens(input_ids.to(device).long())
        if position_ids is None:  # Hugging Face's default: the cache's next positions, every row alike
            positions = torch.arange(past_len, past_len + t, device=h.device)
        else:
            positions = self._check_positions(position_ids, b, t)
        cos, sin = rotary_cos_sin(positions, self.config.head_dim, self.config.rope_theta)
        cos, sin = cos.to(h.dtype), sin.to(h.dtype)
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, D]: per-row positions, all heads alike
        presents = []
        threads = torch_ops_on_one_thread() if self._runs_cpp_kernels() else contextlib.nullcontext()
        with threads:
            for i, layer in enumerate(self.layers):
                h, present = layer(h, cos, sin, None if past_key_values is None else past_key_values[i], key_mask)
                presents.append(present)
            if 0 < logits_to_keep < h.shape[1]:
                h = h[:, -logits_to_keep:]
            logits = self.lm_head(self.norm(h)).float()
        return (logits, presents) if use_cache else logits

    def _check_mask(self, attention_mask, batch: int, total: int) -> torch.Tensor:
        """``attention_mask`` (Hugging Face's: ``[B, past + T]``, 1 for a token, 0 for padding; bool, integer
        or floating point, e.g. ``torch.ones(B, T)``, as transformers takes them) as a bool tensor on the
        model's device, else ValueError naming it and the reason (values other than 0 and 1 included:
        Hugging Face's 2-D masks hold only those, so anything else is not such a mask)."""
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 2 or attention_mask.is_complex():
            got = (f"{attention_mask.dtype} {tuple(attention_mask.shape)}" if isinstance(attention_mask, torch.Tensor)
                   else type(attention_mask).__name__)
            raise ValueError(f"BitLM: attention_mask must be a 2-D bool, integer or float tensor [batch, past + tokens] "
                             f"of 0 and 1, got {got}")
        if tuple(attention_mask.shape) != (batch, total):
            raise ValueError(f"BitLM: attention_mask must be [batch, past + tokens] = [{batch}, {total}], "
                             f"got {list(attention_mask.shape)}")
        if attention_mask.dtype != torch.bool and attention_mask.numel() \
                and bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            raise ValueError("BitLM: attention_mask must hold only 0 (padding) and 1 (token)")
        return attention_mask.to(self.embed_tokens.weight.device).bool()

    def _check_positions(self, position_ids, batch: int, tokens: int) -> torch.Tensor:
        """``position_ids`` (``[B, T]`` or ``[1, T]`` integers in ``[0, max_position_embeddings)``) on the
        model's device, else ValueError naming it and the reason."""
        ok = isinstance(position_ids, torch.Tensor) and position_ids.dim() == 2 and not (
            position_ids.dtype.is_floating_point or position_ids.is_complex() or position_ids.dtype == torch.bool)
        if not ok or position_ids.shape[1] != tokens or position_ids.shape[0] not in (1, batch):
            got = (f"{position_ids.dtype} {list(position_ids.shape)}" if isinstance(position_ids, torch.Tensor)
                   else type(position_ids).__name__)
            raise ValueError(f"BitLM: position_ids must be an integer tensor [batch, tokens] = [{batch}, {tokens}] "
                             f"(or [1, {tokens}]), got {got}")
        limit = self.config.max_position_embeddings
        if position_ids.numel() and (int(position_ids.min()) < 0 or int(position_ids.max()) >= limit):
            raise ValueError(f"BitLM: position_ids must lie in [0, {limit}), got "
                             f"[{int(position_ids.min())}, {int(position_ids.max())}]")
        return position_ids.to(self.embed_tokens.weight.device).long().expand(batch, tokens)

    def _check_cache(self, past_key_values, input_ids) -> int:
        """The position count of ``past_key_values`` (``forward``'s cache: one ``(k, v)`` per layer, each
        ``[batch, num_kv_heads, positions, head_dim]`` on the model's device and in its dtype, every layer
        the same positions), else ValueError naming ``past_key_values`` and the mismatch. That count plus
        the new tokens is checked against ``max_position_embeddings`` by :meth:`_check_ids`."""
        c = self.config
        def bad(what):
            raise ValueError(f"BitLM: past_key_values{'' if what.startswith('[') else ' '}{what}")
        if not isinstance(past_key_values, (list, tuple)) or len(past_key_values) != len(self.layers):
            got = len(past_key_values) if isinstance(past_key_values, (list, tuple)) else type(past_key_values).__name__
            hint = ""
            if isinstance(past_key_values, torch.Tensor):  # model(ids, mask): Hugging Face's second argument
                hint = (f" {list(past_key_values.shape)}: forward's second positional argument is past_key_values "
                        f"(Hugging Face's is attention_mask); pass attention_mask= and position_ids= by keyword")
            elif callable(getattr(past_key_values, "to_legacy_cache", None)):  # a transformers Cache object
                hint = " (a transformers Cache: pass its to_legacy_cache(), the same (k, v) layout)"
            bad(f"must be a list of one (k, v) pair per layer ({len(self.layers)}), got {got}{hint}")
        batch = input_ids.shape[0] if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 else None
        weight = self.embed_tokens.weight
        autocast = torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()  # k, v in the autocast dtype
        positions = None
        for i, pair in enumerate(past_key_values):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 \
                    or not all(isinstance(t, torch.Tensor) for t in pair):
                bad(f"[{i}] must be a (k, v) pair of tensors, got {type(pair).__name__}")
            for name, t in zip("kv", pair):
                if t.dim() != 4 or t.shape[1] != c.num_kv_heads or t.shape[3] != c.head_dim:
                    bad(f"[{i}] {name} must be [batch, num_kv_heads={c.num_kv_heads}, positions, "
                        f"head_dim={c.head_dim}], got {tuple(t.shape)}")
                if batch is not None and t.shape[0] != batch:
                    bad(f"[{i}] {name} holds batch {t.shape[0]}, input_ids has batch {batch}")
                if positions is None:
                    positions = t.shape[2]
                elif t.shape[2] != positions:
                    bad(f"[{i}] {name} holds {t.shape[2]} positions, layer 0's k {positions}")
                if t.device != weight.device:
                    bad(f"[{i}] {name} is on {t.device}, the model on {weight.device}")
                if t.dtype != weight.dtype and not autocast:
                    bad(f"[{i}] {name} is {t.dtype}, the model {weight.dtype}")
        new = input_ids.shape[1] if batch is not None else 0
        if positions + new > c.max_position_embeddings:
            bad(f"holds {positions} positions: with the {new} of input_ids, {positions + new} exceed "
                f"max_position_embeddings={c.max_position_embeddings}")
        return positions

    def _runs_cpp_kernels(self) -> bool:
        """True when the projections run lowbit's C++ kernels (ternary, eval mode, CPU, the C++ backend)
        and PyTorch has more than one thread: the forward then runs its PyTorch ops on one thread and
        the kernels on PyTorch's count (:func:`bitcore.threads.torch_ops_on_one_thread`: PyTorch's
        polling OpenMP threads would otherwise hold the cores lowbit's pool waits for)."""
        if self.training or not self.config.ternary or torch.get_num_threads() <= 1:
            return False
        proj = self.layers[0].self_attn.q_proj
        return (isinstance(proj, BitLinear) and proj.layer_device().type == "cpu"
                and getattr(proj.kernel, "has_cpp_backend", False))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, do_sample: bool = False,
                 temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 eos_token_id: Union[None, int, Sequence[int]] = None, use_cache: bool = True,
                 generator: Optional[torch.Generator] = None, attention_mask: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """Autoregressive decoding, Hugging Face style: returns ``[B, T + n]`` int64 (the prompt
        followed by ``n <= max_new_tokens`` new tokens) on the model's device.

        Greedy (``do_sample=False``) picks the argmax; sampling divides the logits by
        ``temperature``, keeps the ``top_k`` largest and/or the smallest set with probability
        ``>= top_p``, and draws with ``generator``. ``use_cache=False`` recomputes the whole
        sequence each step (same tokens; slower). Each step computes the output head for the last
        position only (``forward(..., logits_to_keep=1)``). Runs in eval mode and restores the mode.

        Prompts of different lengths, as with Hugging Face: pad them on the left (any token id) and
        pass ``attention_mask [B, T]`` (1 for a prompt token, 0 for padding). Each row then runs at
        its own positions (``cumsum(attention_mask) - 1``, as Hugging Face's ``generate`` derives
        ``position_ids``) and never reads padding, so its tokens are those of the row alone up to
        float rounding (the attention's sums run over the padded length; see the docs on greedy
        near-ties). The returned ids keep the padding.

        End of sequence, as Hugging Face's ``generate``: ``eos_token_id=None`` (default) means the
        config's ``eos_token_id`` (257, ``ByteTokenizer``'s EOS, for a default :class:`BitLMConfig`;
        what ``bitlab-run generate`` stops at, so both give the same tokens by default); an int or
        a sequence of ints gives the end tokens explicitly. A row that produced an end token keeps
        emitting that token, and decoding stops once every row has (a single row therefore ends
        with it, as ``bitlab-run``'s output does). To decode ``max_new_tokens`` whatever is
        generated, pass ``eos_token_id=()`` (or build the config with ``eos_token_id=None``).

        Integer arguments (``max_new_tokens``, ``top_k``, the ``eos_token_id`` entries) take any integer
        type (``operator.index``: int, numpy integers, 0-d integer tensors), not bools or floats;
        ``temperature`` and ``top_p`` take any real number (int, float, numpy, 0-d tensor), not bools
        or NaN. The sampling arguments are checked only with ``do_sample=True`` (greedy reads none).

        Raises:
            ValueError: bad ``input_ids`` (see :meth:`forward`), ``max_new_tokens`` not an integer
            >= 0, a prompt plus new tokens beyond ``max_position_embeddings``, with ``do_sample=True``
            a ``temperature`` not a finite number > 0, a ``top_k`` not None or an integer >= 1, a
            ``top_p`` not None or a number in (0, 1]; an ``eos_token_id`` that is not a token id
            below ``vocab_size`` (or a sequence of them); an ``attention_mask`` that is not ``[B, T]``
            of 0 and 1, has a row without a token, or padding after a token (right padding: pad on the
            left, ``padding_side="left"``). The message names the argument, its value
            and what is wrong with it.
        """
        what = "a non-negative int"
        n = _int_arg("generate", "max_new_tokens", max_new_tokens, what)
        if n < 0:
            raise ValueError(f"generate: max_new_tokens must be {what}, got {max_new_tokens!r} (negative)")
        max_new_tokens = n
        if do_sample:  # greedy decoding reads none of these
            what = "a finite number > 0"
            t = _real_arg("generate", "temperature", temperature, what)
            if not 0 < t < math.inf:
                raise ValueError(f"generate: temperature must be {what}, got {temperature!r} (out of range)")
            temperature = t
            if top_k is not None:
                what = "None or an int >= 1"
                k = _int_arg("generate", "top_k", top_k, what)
                if k < 1:
                    raise ValueError(f"generate: top_k must be {what}, got {top_k!r} (out of range)")
                top_k = k
            if top_p is not None:
                what = "None or a number in (0, 1]"
                p = _real_arg("generate", "top_p", top_p, what)
                if not 0 < p <= 1:
                    raise ValueError(f"generate: top_p must be {what}, got {top_p!r} (out of range)")
                top_p = p
        eos = self._end_tokens(eos_token_id)
        self._check_ids(input_ids, 0)
        if input_ids.shape[1] == 0:
            raise ValueError("generate: the prompt must hold at least one token")
        self._check_ids(input_ids, max_new_tokens)
        mask = None if attention_mask is None else self._left_padding(attention_mask, input_ids)
        was_training = self.training
        self.eval()
        try:
            ids = input_ids.to(self.embed_tokens.weight.device).long()
            done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
            cache = None
            step_input = ids
            positions = None if mask is None else (mask.long().cumsum(-1) - 1).clamp(min=0)
            step_positions = positions
            for _ in range(max_new_tokens):
                padded = {} if mask is None else dict(attention_mask=mask)
                if use_cache:
                    if mask is not None:
                        padded["position_ids"] = step_positions
                    logits, cache = self(step_input, past_key_values=cache, use_cache=True, logits_to_keep=1,
                                         **padded)
                else:
                    if mask is not None:
                        padded["position_ids"] = positions
                    logits = self(ids, logits_to_keep=1, **padded)
                nxt = self._pick(logits[:, -1, :], do_sample, temperature, top_k, top_p, generator)
                if eos:
                    nxt = torch.where(done, ids[:, -1], nxt)  # a finished row repeats its end token
                    done |= torch.isin(nxt, torch.tensor(eos, device=nxt.device))
                ids = torch.cat([ids, nxt[:, None]], dim=1)
                step_input = nxt[:, None]
                if mask is not None:  # the new token is a token of every row, one position further
                    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                    step_positions = positions[:, -1:] + 1
                    positions = torch.cat([positions, step_positions], dim=1)
                if eos and bool(done.all()):
                    break
            return ids
        finally:
            self.train(was_training)

    def _left_padding(self, attention_mask, input_ids) -> Optional[torch.Tensor]:
        """``generate``'s ``attention_mask`` as bool ``[B, T]``, None when it pads nothing; ValueError
        for a row without a token or with padding after a token (decoding continues each row from its
        last position, so padding must be on the left)."""
        mask = self._check_mask(attention_mask, *input_ids.shape)
        empty = (~mask.any(dim=1)).nonzero()
        if len(empty):
            raise ValueError(f"generate: attention_mask row {int(empty[0])} has no token (every entry is 0)")
        right = (mask[:, :-1] & ~mask[:, 1:]).any(dim=1).nonzero()
        if len(right):
            raise ValueError(f"generate: attention_mask row {int(right[0])} has padding after a token; pad "
                             f"prompts on the left (padding_side='left'), as decoding continues from the last "
                             f"position")
        return None if bool(mask.all()) else mask

    def _end_tokens(self, eos_token_id) -> Tuple[int, ...]:
        """The end tokens ``generate`` stops at: the config's for None, else the given id(s)."""
        if eos_token_id is None:
            eos_token_id = self.config.eos_token_id
            if eos_token_id is None:
                return ()
        vocab = self.config.vocab_size
        single = (isinstance(eos_token_id, (str, bytes)) or not isinstance(eos_token_id, collections.abc.Iterable)
                  or (isinstance(eos_token_id, torch.Tensor) and eos_token_id.dim() == 0))
        ids = []
        for item in (eos_token_id,) if single else eos_token_id:  # entries: the same rule as max_new_tokens
            i, reason = _as_int(item)
            if i is not None and not 0 <= i < vocab:
                reason = f"{i} is not in [0, {vocab})"
            elif i is None and not single:
                reason = f"entry {item!r} is {reason}"
            if reason:
                raise ValueError(f"generate: eos_token_id must be None, a token id in [0, {vocab}) or "
                                 f"a sequence of them, got {eos_token_id!r} ({reason})")
            ids.append(i)
        return tuple(ids)

    @staticmethod
    def _pick(logits, do_sample, temperature, top_k, top_p, generator) -> torch.Tensor:
        if not do_sample:
            return logits.argmax(dim=-1)
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p is not None and top_p < 1:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the first token always
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    def num_parameters(self) -> int:
        """Distinct parameters (a tied head counts once)."""
        return sum(p.numel() for p in self.parameters())


#: The Hugging Face style name.
BitLMModel = BitLM

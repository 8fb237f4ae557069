"""GGUF export and import of :class:`~bitmodels.lm.BitLM` in llama.cpp's ``bitnet`` layout.

Written with the PyPI ``gguf`` package (``gguf-py`` of llama.cpp; GGUF spec:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md). Layout, as llama.cpp's loader for
``LLM_ARCH_BITNET`` (src/models/bitnet.cpp) creates the tensors::

    general.architecture = "bitnet"
    bitnet.{context_length, embedding_length, block_count, feed_forward_length,
            attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon,
            rope.freq_base, rope.dimension_count, vocab_size, hidden_activation}
    tokenizer.ggml.{model="gpt2", pre="gpt-2", tokens, token_type, merges, bos/eos_token_id, add_bos_token}

    token_embd.weight              F32  {n_embd, n_vocab}   (also the output head: llama.cpp ties it)
    output_norm.weight             F32  {n_embd}
    output.weight                  F32  {n_embd, n_vocab}   only for untied heads (llama.cpp's
                                                            bitnet loader then refuses the file)
    blk.N.attn_norm.weight         F32  {n_embd}
    blk.N.attn_{q,k,v,output}.weight  TQ2_0 (or TQ1_0), trits exactly (block scale d = 1)
    blk.N.attn_{q,k,v,output}.scale   F32 {1}: the absmean weight scale, which llama.cpp multiplies
                                      into the product (build_lora_mm(w, cur, w_s))
    blk.N.attn_sub_norm.weight     F32  {n_embd}
    blk.N.ffn_norm.weight          F32  {n_embd}
    blk.N.ffn_{gate,up,down}.weight / .scale   as the attention projections
    blk.N.ffn_sub_norm.weight      F32  {n_ff}

Storing trits with ``d = 1`` and the float32 scale in its own tensor keeps the scale exact (a
TQ2_0 block scale is float16), so ``load_gguf(export_gguf(m))`` gives bit-identical logits. Files
from llama.cpp's converter (trits times the scale in the block ``d``, no ``.scale``) load too.
llama.cpp applies RoPE to (i, i + d/2) pairs for ``bitnet`` (NEOX), as :class:`BitLM` does.

Ternary tensors need ``in_features`` to be a multiple of 256 (the TQ block size): ``hidden_size``
and ``intermediate_size`` multiples of 256.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from bitcore.kernels import KernelRegistry
from bitlayers.bitlinear import BitLinear

from .lm import BitLM, BitLMConfig, BITNET_QUANT
from .tokenizer import BOS_TOKEN, EOS_TOKEN

ARCH = "bitnet"
TERNARY_TYPES = ("TQ2_0", "TQ1_0")
QK = 256  # elements per TQ1_0 / TQ2_0 block

# our module path -> llama.cpp tensor name (per block)
_BLOCK_TERNARY = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_BLOCK_NORMS = {
    "input_layernorm": "attn_norm",
    "self_attn.attn_sub_norm": "attn_sub_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.ffn_sub_norm": "ffn_sub_norm",
}


def _gguf():
    try:
        import gguf
    except ImportError as e:  # pragma: no cover - gguf is in requirements-dev.txt
        raise ImportError("bitmodels GGUF support needs the 'gguf' package: pip install gguf") from e
    return gguf


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def byte_level_vocab(vocab_size: int):
    """(tokens, token_types) of :class:`ByteTokenizer` in GPT-2 byte-level form, padded to ``vocab_size``."""
    gguf = _gguf()
    if vocab_size < 258:
        raise ValueError(f"export_gguf: a byte-level vocabulary needs vocab_size >= 258, got {vocab_size}")
    table = _bytes_to_unicode()
    tokens = [table[b] for b in range(256)] + [BOS_TOKEN, EOS_TOKEN]
    types = [gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2
    for i in range(258, vocab_size):
        tokens.append(f"<|pad_{i}|>")
        types.append(gguf.TokenType.UNUSED)
    return tokens, types


def _ternary_parts(layer: BitLinear, name: str) -> Tuple[np.ndarray, float]:
    if not isinstance(layer, BitLinear):
        raise ValueError(f"export_gguf: {name} is a {type(layer).__name__}, not a BitLinear (float models "
                         f"have no GGUF bitnet form)")
    if layer.quant_config.weight_granularity != "per_tensor":
        raise ValueError(f"export_gguf: {name} has per_channel weight scales; llama.cpp's bitnet takes one "
                         f"scale per tensor (weight_granularity='per_tensor')")
    if layer.in_features % QK:
        raise ValueError(f"export_gguf: {name} has in_features={layer.in_features}, not a multiple of {QK} "
                         f"(the TQ1_0/TQ2_0 block size)")
    packed, scales = layer.packed_weights()
    trits = layer.kernel.unpack(packed, layer.in_features)
    return trits.detach().cpu().numpy().astype(np.float32), float(scales[0])


def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def export_gguf(model: BitLM, path: Union[str, os.PathLike], ternary_type: str = "TQ2_0",
                name: str = "BitLM") -> Path:
    """Write ``model`` (a ternary :class:`BitLM`, any device, trained or deployed) to ``path`` as a
    GGUF file of llama.cpp's ``bitnet`` architecture, atomically (temp file + rename). The
    tokenizer metadata is :class:`ByteTokenizer`'s (byte-level BPE). Returns the path.

    Args:
        ternary_type: ``"TQ2_0"`` (2 bits per weight, default) or ``"TQ1_0"`` (1.69 bits).

    Raises:
        ValueError: not a BitLM, a float (``ternary=False``) model, one without sub-norms
        (``sub_norms=False``), per-channel weight scales, ``in_features`` not a multiple of 256, a
        vocabulary under 258, an unknown ``ternary_type``.
    """
    gguf = _gguf()
    if not isinstance(model, BitLM):
        raise ValueError(f"export_gguf: expected a BitLM, got {type(model).__name__}; a transformers Llama (float, "
                         f"or converted in place by convert_to_bitlinear) becomes one with "
                         f"bitmodels.llama_to_bitlm(model) or convert_to_bitlinear(model, target='bitlm')")
    if ternary_type not in TERNARY_TYPES:
        raise ValueError(f"export_gguf: ternary_type must be one of {TERNARY_TYPES}, got {ternary_type!r}")
    c: BitLMConfig = model.config
    if not c.ternary:
        raise ValueError("export_gguf: the model is the float twin (ternary=False); only ternary BitLMs export")
    if not c.sub_norms:
        raise ValueError("export_gguf: the model has no sub-norms (sub_norms=False); llama.cpp's bitnet graph "
                         "needs attn_sub_norm and ffn_sub_norm: convert with sub_norms=True")
    if isinstance(c.eos_token_id, tuple):
        raise ValueError(f"export_gguf: the config has several end tokens (eos_token_id={c.eos_token_id}); GGUF's "
                         f"tokenizer.ggml.eos_token_id holds one (what bitlab-run and llama.cpp stop at): set "
                         f"model.config.eos_token_id to one of them first")
    qtype = getattr(gguf.GGMLQuantizationType, ternary_type)
    tokens, types = byte_level_vocab(c.vocab_size)

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        tensors = [("token_embd.weight", _f32(model.embed_tokens.weight), None)]
        for i, block in enumerate(model.layers):
            modules = dict(block.named_modules())
            for ours, theirs in _BLOCK_NORMS.items():
                tensors.append((f"blk.{i}.{theirs}.weight", _f32(modules[ours].weight), None))
            for ours, theirs in _BLOCK_TERNARY.items():
                trits, scale = _ternary_parts(modules[ours], f"layers.{i}.{ours}")
                tensors.append((f"blk.{i}.{theirs}.weight", gguf.quants.quantize(trits, qtype), qtype))
                tensors.append((f"blk.{i}.{theirs}.scale", np.array([scale], dtype=np.float32), None))
        tensors.append(("output_norm.weight", _f32(model.norm.weight), None))
        if not c.tie_word_embeddings:
            tensors.append(("output.weight", _f32(model.lm_head.weight), None))

    writer = gguf.GGUFWriter(str(tmp), ARCH)
    try:
        writer.add_name(name)
        writer.add_file_type(getattr(gguf.LlamaFileType, "MOSTLY_" + ternary_type))
        writer.add_context_length(c.max_position_embeddings)
        writer.add_embedding_length(c.hidden_size)
        writer.add_block_count(c.num_layers)
        writer.add_feed_forward_length(c.intermediate_size)
        writer.add_head_count(c.num_heads)
        writer.add_head_count_kv(c.num_kv_heads)
        writer.add_layer_norm_rms_eps(c.rms_norm_eps)
        writer.add_rope_freq_base(c.rope_theta)
        writer.add_rope_dimension_count(c.head_dim)
        writer.add_vocab_size(c.vocab_size)
        # llama.cpp reads "<arch>.hidden_activation" for bitnet (default silu when absent)
        writer.add_string(f"{ARCH}.hidden_activation", c.hidden_act)
        writer.add_bool("bitlab.tie_word_embeddings", c.tie_word_embeddings)
        writer.add_string("bitlab.activation_quant", "int8_per_token" if c.quant_config.activation_granularity
                          == "per_channel" else "int8_per_tensor" if c.quant_config.activation_dtype == "int8"
                          else "float32")
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        # llama.cpp requires a merges array for "gpt2"; this one pairs the two control tokens, which
        # never occur inside text, so no merge ever applies and every byte stays one token.
        writer.add_token_merges([f"{BOS_TOKEN} {EOS_TOKEN}"])
        if c.bos_token_id is not None:
            writer.add_bos_token_id(c.bos_token_id)
        if c.eos_token_id is not None:
            writer.add_eos_token_id(c.eos_token_id)
        writer.add_add_bos_token(False)
        for tname, data, raw in tensors:
            writer.add_tensor(tname, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ----------------------------------------------------------------------------------------- import
#: Types accepted for float tensors (embeddings, head, norms, scales) and for projections.
FLOAT_TYPES = ("F32", "F16", "BF16")
PROJECTION_TYPES = TERNARY_TYPES + FLOAT_TYPES


def _field(reader, key: str, path, required: bool = True):
    field = reader.fields.get(key)
    if field is None:
        if required:
            raise ValueError(f"load_gguf: {path}: metadata key '{key}' is missing")
        return None
    try:
        return field.contents()
    except Exception as e:  # a corrupt value the reader parsed but cannot convert
        raise ValueError(f"load_gguf: {path}: metadata key '{key}' cannot be read: {type(e).__name__}: {e}") \
            from None


def _int_field(reader, key: str, path, required: bool = True, minimum: int = 1) -> Optional[int]:
    """An integer metadata value ``>= minimum`` (bools and non-integral numbers are refused)."""
    value = _field(reader, key, path, required)
    if value is None:
        return None
    if isinstance(value, float) and np.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"load_gguf: {path}: metadata key '{key}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _float_field(reader, key: str, path, required: bool = True) -> Optional[float]:
    value = _field(reader, key, path, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
            or not value > 0:
        raise ValueError(f"load_gguf: {path}: metadata key '{key}' must be a positive finite number, got {value!r}")
    return float(value)


def _token_id_field(reader, key: str, path, vocab: int) -> Optional[int]:
    """A special token id, or None when absent. An id outside the vocabulary is refused: as EOS it
    would never occur, and generate() would never stop."""
    value = _field(reader, key, path, required=False)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"load_gguf: {path}: metadata key '{key}' must be an integer token id, got {value!r}")
    if not 0 <= value < vocab:
        raise ValueError(f"load_gguf: {path}: metadata key '{key}' is {int(value)}, outside the vocabulary of "
                         f"{vocab} tokens (token_embd.weight's rows)")
    return int(value)


def _read(path):
    gguf = _gguf()
    try:
        return gguf.GGUFReader(str(path), "r")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # the reader raises ValueError, struct/IndexError, numpy errors on bad bytes
        raise ValueError(f"load_gguf: {path}: not a readable GGUF file (truncated or corrupt?): "
                         f"{type(e).__name__}: {e}") from None


def _tensor_shape(t) -> Tuple[int, ...]:
    """A GGUF tensor's shape in torch (row-major) order."""
    return tuple(int(d) for d in reversed(list(t.shape)))


def _tensor_array(t, path) -> np.ndarray:
    """float32 numpy array in torch (row-major) shape."""
    gguf = _gguf()
    try:
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        return np.asarray(values, dtype=np.float32).reshape(_tensor_shape(t))
    except Exception as e:
        raise ValueError(f"load_gguf: {path}: tensor '{t.name}' of type {t.tensor_type.name} cannot be "
                         f"decoded: {e}") from None


def _config_from_metadata(reader, tensors, path) -> BitLMConfig:
    """The :class:`BitLMConfig` the metadata describes (vocabulary size from ``token_embd.weight``).
    Allocates nothing; ValueError (naming the file and the key) on a missing or invalid value."""
    arch = _field(reader, "general.architecture", path)
    if arch != ARCH:
        raise ValueError(f"load_gguf: {path}: architecture '{arch}' is not supported (expected '{ARCH}')")
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise ValueError(f"load_gguf: {path}: tensor 'token_embd.weight' is missing")
    if len(embd.shape) != 2:
        raise ValueError(f"load_gguf: {path}: tensor 'token_embd.weight' has shape {_tensor_shape(embd)}, "
                         f"expected (vocab_size, embedding_length)")
    vocab = _tensor_shape(embd)[0]
    declared = _int_field(reader, f"{ARCH}.vocab_size", path, required=False, minimum=0)
    if declared is not None and declared != vocab:
        raise ValueError(f"load_gguf: {path}: metadata key '{ARCH}.vocab_size' is {declared}, but "
                         f"'token_embd.weight' has {vocab} rows")
    tokens = _field(reader, "tokenizer.ggml.tokens", path, required=False)
    if tokens is not None and len(tokens) != vocab:
        raise ValueError(f"load_gguf: {path}: metadata key 'tokenizer.ggml.tokens' lists {len(tokens)} tokens, but "
                         f"'token_embd.weight' has {vocab} rows")
    heads = _int_field(reader, f"{ARCH}.attention.head_count", path)
    kv = _int_field(reader, f"{ARCH}.attention.head_count_kv", path, required=False)
    act = _field(reader, f"{ARCH}.hidden_activation", path, required=False) or "silu"
    tie = _field(reader, "bitlab.tie_word_embeddings", path, required=False)
    if tie is not None and not isinstance(tie, bool):
        raise ValueError(f"load_gguf: {path}: metadata key 'bitlab.tie_word_embeddings' must be a bool, got {tie!r}")
    try:
        config = BitLMConfig(
            vocab_size=vocab,
            hidden_size=_int_field(reader, f"{ARCH}.embedding_length", path),
            num_layers=_int_field(reader, f"{ARCH}.block_count", path),
            num_heads=heads,
            intermediate_size=_int_field(reader, f"{ARCH}.feed_forward_length", path),
            max_position_embeddings=_int_field(reader, f"{ARCH}.context_length", path),
            num_kv_heads=heads if kv is None else kv,
            hidden_act={"relu2": "relu2", "relu_sqr": "relu2", "silu": "silu", "swiglu": "silu"}.get(act, act),
            rms_norm_eps=_float_field(reader, f"{ARCH}.attention.layer_norm_rms_epsilon", path),
            rope_theta=_float_field(reader, f"{ARCH}.rope.freq_base", path, required=False) or 10000.0,
            tie_word_embeddings=("output.weight" not in tensors) if tie is None else tie,
            quant_config=BITNET_QUANT,
            bos_token_id=_token_id_field(reader, "tokenizer.ggml.bos_token_id", path, vocab),
            eos_token_id=_token_id_field(reader, "tokenizer.ggml.eos_token_id", path, vocab),
        )
    except (ValueError, TypeError) as e:  # BitLMConfig's checks (heads that do not divide, ...)
        msg = str(e)
        raise ValueError(msg if str(path) in msg else f"load_gguf: {path}: {msg}") from None
    rope = _int_field(reader, f"{ARCH}.rope.dimension_count", path, required=False, minimum=0)
    if rope is not None and rope != config.head_dim:
        raise ValueError(f"load_gguf: {path}: metadata key '{ARCH}.rope.dimension_count' is {rope}, but the head "
                         f"size is {config.head_dim} (partial rotary is not supported)")
    return config


def _expected_tensors(config: BitLMConfig):
    """Yield ``(name, shape, allowed types)`` of every tensor a file of ``config`` must hold."""
    d, f, v = config.hidden_size, config.intermediate_size, config.vocab_size
    q, kv = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
    yield "token_embd.weight", (v, d), FLOAT_TYPES
    yield "output_norm.weight", (d,), FLOAT_TYPES
    if not config.tie_word_embeddings:
        yield "output.weight", (v, d), FLOAT_TYPES
    norms = {"attn_norm": d, "attn_sub_norm": q, "ffn_norm": d, "ffn_sub_norm": f}
    projections = {"attn_q": (q, d), "attn_k": (kv, d), "attn_v": (kv, d), "attn_output": (d, q),
                   "ffn_gate": (f, d), "ffn_up": (f, d), "ffn_down": (d, f)}
    for i in range(config.num_layers):
        for name, size in norms.items():
            yield f"blk.{i}.{name}.weight", (size,), FLOAT_TYPES
        for name, shape in projections.items():
            yield f"blk.{i}.{name}.weight", shape, PROJECTION_TYPES


def _check_tensors(config: BitLMConfig, tensors, path) -> None:
    """Every expected tensor present with its shape and an accepted type, optional ``.scale``
    tensors of projections ``(1,)`` floats, and no other tensor."""
    known = set()
    for name, shape, types in _expected_tensors(config):
        checks = [(name, shape, types, True)]
        if types is PROJECTION_TYPES:
            checks.append((name[: -len(".weight")] + ".scale", (1,), FLOAT_TYPES, False))
        for tname, tshape, ttypes, required in checks:
            known.add(tname)
            t = tensors.get(tname)
            if t is None:
                if required:
                    raise ValueError(f"load_gguf: {path}: tensor '{tname}' is missing")
                continue
            got = _tensor_shape(t)
            if got != tshape:
                raise ValueError(f"load_gguf: {path}: tensor '{tname}' has shape {got}, expected {tshape}")
            if t.tensor_type.name not in ttypes:
                raise ValueError(f"load_gguf: {path}: tensor '{tname}' has type {t.tensor_type.name}, expected "
                                 f"one of {ttypes}")
    extra = sorted(n for n in tensors if n not in known)
    if extra:
        raise ValueError(f"load_gguf: {path}: unexpected tensors {extra[:5]}")
    # The reader already checked that each tensor's bytes lie inside the file; tensors sharing bytes
    # could still describe a model bigger than the file (every block reading the same data).
    spans = sorted((int(t.data_offset), int(t.data_offset) + int(t.n_bytes), t.name) for t in tensors.values())
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"load_gguf: {path}: tensors '{first}' and '{second}' share bytes of the file (a "
                             f"model cannot hold more weights than the file)")


def _latent_weights(trits: torch.Tensor, scale: float, layer: BitLinear) -> Optional[torch.Tensor]:
    """Float latent weights whose absmean quantization gives exactly ``trits`` and ``scale``.

    Nonzero trits get magnitude ``v = scale * n / nnz`` (so ``mean|W| = scale``, and ``|W| / scale
    >= 1`` rounds to 1 before clamping), zeros stay 0. The last nonzero takes the remainder of
    ``scale * n`` and is nudged by float32 ulps until the layer's own quantizer returns ``scale``
    bit for bit. None if that fails (the caller then loads the layer deployed or raises).
    """
    flat = trits.reshape(-1).to(torch.float32)
    nz = torch.nonzero(flat).reshape(-1)
    n, nnz = flat.numel(), nz.numel()
    if nnz == 0 or scale == 0:
        return torch.zeros(trits.shape, dtype=torch.float32)
    target = np.float32(scale)
    v = np.float32(np.float64(target) * n / nnz)
    last = np.float32(np.float64(target) * n - np.float64(v) * (nnz - 1))
    w = flat * float(v)
    kernel = layer.kernel
    for _ in range(64):
        w[nz[-1]] = flat[nz[-1]] * float(last)
        got_trits, got_scales = kernel.ternarize(w.reshape(trits.shape))
        got = np.float32(got_scales[0].item())
        if got == target:
            ok = torch.equal(got_trits.to(torch.int8), trits.to(torch.int8))
            return w.reshape(trits.shape).clone() if ok else None
        last = np.nextafter(last, np.float32(np.inf) if got < target else np.float32(0), dtype=np.float32)
    return None


def load_gguf(path: Union[str, os.PathLike], trainable: bool = True, device=None) -> BitLM:
    """A :class:`BitLM` (eval mode) built from a GGUF file of the ``bitnet`` architecture.

    With ``trainable=True`` (default) every projection gets float latent weights chosen so that
    its quantizer reproduces the stored trits and scale exactly (fine-tune with ``.train()``);
    ``trainable=False`` loads them deployed (packed 2-bit weights, inference only). Both give the
    logits of the exported model bit for bit.

    Accepts our files and llama.cpp's (trits times a per-block scale, optional ``.scale``
    tensors). The ByteTokenizer is assumed for ``tokenizer.ggml`` metadata.

    Every check on the file runs before the model is built, so a corrupt file allocates nothing
    beyond what it holds: metadata values of the right kind (positive integer sizes, positive finite
    epsilon and rotary base, ``rope.dimension_count`` equal to the head size when present,
    ``vocab_size`` and the tokenizer's token list agreeing with ``token_embd.weight``'s rows, special
    token ids inside the vocabulary); every
    tensor the metadata implies present, with that shape and an accepted type (F32/F16/BF16;
    projections also TQ2_0/TQ1_0), and no other tensor; no two tensors sharing bytes of the file.
    Every size in the metadata is then backed by tensor bytes in the file: the float32 model takes
    at most about 19 bytes per file byte (TQ1_0 stores a weight in 1.69 bits).

    Raises:
        OSError: the file cannot be opened.
        ValueError (message names the file, and the key or tensor at fault): not a GGUF file,
        truncated or corrupt; an architecture other than ``bitnet``; missing or invalid metadata
        (including a ``rope.dimension_count`` other than the head size: partial rotary is not
        supported, as in ``bitlab-run``); metadata describing more weights than the file holds;
        missing, unexpected, wrongly shaped or wrongly typed tensors, or tensors sharing bytes;
        projection weights that are not ternary; NaN or Inf in any tensor; invalid scales.
    """
    path = Path(path)
    reader = _read(path)
    tensors = {t.name: t for t in reader.tensors}
    config = _config_from_metadata(reader, tensors, path)
    _check_tensors(config, tensors, path)  # all of it before the model is built

    def fetch(name: str) -> torch.Tensor:
        # a writable array of our own (a read-only memory map is copied; a dequantized one is not)
        values = torch.from_numpy(np.require(_tensor_array(tensors[name], path), requirements=["W"]))
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            raise ValueError(f"load_gguf: {path}: tensor '{name}' holds NaN or Inf")
        return values

    # trainable=False: no float weights for the projections at all (set from the packed trits below)
    model = BitLM(config, projection_device=None if trainable else "meta")
    with torch.no_grad():
        model.embed_tokens.weight.copy_(fetch("token_embd.weight"))
        model.norm.weight.copy_(fetch("output_norm.weight"))
        if not config.tie_word_embeddings:
            model.lm_head.weight.copy_(fetch("output.weight"))
        for i, block in enumerate(model.layers):
            modules = dict(block.named_modules())
            for ours, theirs in _BLOCK_NORMS.items():
                modules[ours].weight.copy_(fetch(f"blk.{i}.{theirs}.weight"))
            for ours, theirs in _BLOCK_TERNARY.items():
                _load_projection(modules[ours], f"blk.{i}.{theirs}", tensors, fetch, path, trainable)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _load_projection(layer: BitLinear, base: str, tensors, fetch, path, trainable: bool) -> None:
    """Set ``layer`` from the GGUF tensors ``base.weight`` (trits, times a block scale) and ``base.scale``."""
    wname, sname = base + ".weight", base + ".scale"
    values = fetch(wname)
    scale = float(fetch(sname).reshape(-1)[0]) if sname in tensors else 1.0
    # No float temporaries of the tensor's size (only int8 / bool ones): the largest projection
    # would otherwise cost several times its float size at the peak of loading.
    c = max(float(values.max()), -float(values.min())) if values.numel() else 0.0
    if not bool(torch.all((values == 0) | (values == c) | (values == -c))):  # NaN fails too
        raise ValueError(f"load_gguf: {path}: tensor '{wname}' is not ternary (its nonzero magnitudes differ, "
                         f"or it holds NaN)")
    trits = (values > 0).to(torch.int8) - (values < 0).to(torch.int8)
    del values
    if c > 0:
        scale *= c
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"load_gguf: {path}: tensor '{sname}' holds an invalid scale {scale}")
    latent = _latent_weights(trits, scale, layer) if trainable else None
    if latent is not None:
        layer.weight.copy_(latent)
        return
    if trainable:
        raise ValueError(f"load_gguf: {path}: no float weights reproduce '{wname}' exactly; load with "
                         f"trainable=False")
    # the skeleton's weights are on 'meta': pack with the CPU kernel (the tensors are on the CPU)
    kernel = KernelRegistry.get_kernel_for_config(layer.quant_config, torch.device("cpu"))
    layer._set_deployed(kernel.pack(trits), torch.full((layer.out_features,), scale, dtype=torch.float32))

"""bitmodels.BitLM: the BitNet b1.58 decoder LM (config, layers, KV cache, generate, training)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lowbit
from bitcore.config import BitQuantConfig
from bitlayers.bitlinear import BitLinear
from bitmodels import (CONFIG_REGISTRY, MODEL_REGISTRY, AutoBitModel, BitLM, BitLMConfig, ByteTokenizer,
                       build_model)
from bitmodels.lm import BITNET_QUANT, RMSNorm, apply_rotary, rotary_cos_sin


def small(**kw):
    base = dict(vocab_size=258, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48,
                max_position_embeddings=48)
    base.update(kw)
    return BitLMConfig(**base)


def test_from_config_and_registries():
    config = small(num_kv_heads=2)
    model = AutoBitModel.from_config(config)
    assert isinstance(model, BitLM)
    assert CONFIG_REGISTRY["BitLMConfig"] is BitLMConfig and MODEL_REGISTRY["BitLMModel"] is BitLM
    assert isinstance(build_model("BitLMModel", config), BitLM)
    projections = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert len(projections) == 7 * config.num_layers
    assert all(p.quant_config == BITNET_QUANT and p.bias is None for p in projections)
    assert BITNET_QUANT.activation_dtype == "int8" and BITNET_QUANT.activation_granularity == "per_channel"
    attn = model.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features) == (32, 16, 16)
    assert isinstance(attn.attn_sub_norm, RMSNorm) and isinstance(model.layers[0].mlp.ffn_sub_norm, RMSNorm)
    assert model.layers[0].mlp.ffn_sub_norm.weight.shape == (48,)
    # embeddings and the (tied) head stay float
    assert type(model.embed_tokens) is nn.Embedding and type(model.lm_head) is nn.Linear
    assert model.lm_head.weight is model.embed_tokens.weight


def test_untied_head_and_float_twin():
    untied = BitLM(small(tie_word_embeddings=False))
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    twin = BitLM(small(ternary=False))
    assert not any(isinstance(m, BitLinear) for m in twin.modules())
    assert twin.num_parameters() == BitLM(small()).num_parameters()
    qc = BitQuantConfig("per_tensor", "int8", "per_tensor")
    override = AutoBitModel.from_config(small(), quant_config=qc)
    assert override.layers[0].mlp.up_proj.quant_config == qc


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden_size=30), "num_heads"),
    (dict(num_kv_heads=3), "num_kv_heads"),
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(rms_norm_eps=0), "rms_norm_eps"),
    (dict(quant_config="int8"), "quant_config"),
    (dict(eos_token_id=300), "eos_token_id"),
    (dict(hidden_size=24, num_heads=8), "even"),
])
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_bad_inputs_raise():
    model = BitLM(small()).eval()
    with pytest.raises(ValueError, match="2-D integer"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D integer"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.tensor([[0, 258]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.generate(torch.zeros(1, 40, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), 2, do_sample=True, temperature=0)


def test_rotary_is_a_rotation_and_relative():
    cos, sin = rotary_cos_sin(torch.arange(6), 8, 10000.0)
    x = torch.randn(1, 2, 6, 8)
    y = apply_rotary(x, cos, sin)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(y[:, :, 0], x[:, :, 0])  # position 0: identity
    # q.k depends only on the distance between positions
    q, k = torch.randn(8), torch.randn(8)
    def dot(i, j):
        qi = apply_rotary(q.view(1, 1, 1, 8), cos[i:i + 1], sin[i:i + 1])
        kj = apply_rotary(k.view(1, 1, 1, 8), cos[j:j + 1], sin[j:j + 1])
        return float((qi * kj).sum())
    assert dot(3, 1) == pytest.approx(dot(5, 3), abs=1e-5)


@pytest.mark.parametrize("act, kv", [("relu2", None), ("silu", 2), ("relu2", 1)])
def test_kv_cache_matches_full_pass(act, kv):
    torch.manual_seed(0)
    model = BitLM(small(hidden_act=act, num_kv_heads=kv)).eval()
    ids = torch.randint(0, 256, (3, 20))
    full = model(ids)
    logits, cache = model(ids[:, :7], use_cache=True)
    parts = [logits]
    for t in range(7, 20):
        logits, cache = model(ids[:, t:t + 1], past_key_values=cache, use_cache=True)
        parts.append(logits)
    assert cache[0][0].shape == (3, kv or 4, 20, 8)
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-4)
    # causal: the logits of a prefix do not depend on what follows it
    torch.testing.assert_close(model(ids[:, :5]), full[:, :5], rtol=0, atol=1e-4)


def test_mismatched_kv_cache_is_refused_naming_past_key_values():
    """A cache that does not belong to this model and these input_ids is a ValueError naming
    past_key_values and the mismatch, not a RuntimeError / IndexError from inside attention."""
    torch.manual_seed(0)
    model = BitLM(small(num_kv_heads=2)).eval()
    _, cache = model(torch.randint(0, 256, (2, 3)), use_cache=True)  # batch 2, 3 positions, 2 layers
    step = torch.tensor([[7], [8]])
    logits = model(step, past_key_values=cache)  # the matching cache works (list or tuple)
    assert torch.equal(model(step, past_key_values=tuple(cache)), logits)
    k, v = cache[0]
    cases = [
        (torch.tensor([[7]]), cache, r"\[0\] k holds batch 2, input_ids has batch 1"),
        (step, [], r"one \(k, v\) pair per layer \(2\), got 0"),
        (step, cache[:1], r"per layer \(2\), got 1"),
        (step, {"k": k}, r"per layer \(2\), got dict"),
        (step, [cache[0], k], r"\[1\] must be a \(k, v\) pair of tensors, got Tensor"),
        (step, [cache[0], (k, None)], r"\[1\] must be a \(k, v\) pair of tensors"),
        (step, [cache[0], (k[:, :1], v[:, :1])], r"\[1\] k must be \[batch, num_kv_heads=2, positions, head_dim=8\]"),
        (step, [cache[0], (k, v[..., :4])], r"\[1\] v must be .*head_dim=8\], got \(2, 2, 3, 4\)"),
        (step, [cache[0], (k[0], v[0])], r"\[1\] k must be \[batch"),
        (step, [cache[0], (k[:, :, :2], v[:, :, :2])], r"\[1\] k holds 2 positions, layer 0's k 3"),
        (step, [cache[0], (k, v.double())], r"\[1\] v is torch.float64, the model torch.float32"),
        (torch.zeros(2, 46, dtype=torch.long), cache,
         r"holds 3 positions: with the 46 of input_ids, 49 exceed max_position_embeddings=48"),
    ]
    for ids, past, match in cases:
        with pytest.raises(ValueError, match=r"BitLM: past_key_values" + match if match.startswith(r"\[")
                           else r"BitLM: past_key_values .*" + match):
            model(ids, past_key_values=past)


@pytest.mark.parametrize("kv", [None, 2])
def test_greedy_generate_with_and_without_cache(kv):
    torch.manual_seed(1)
    model = BitLM(small(num_kv_heads=kv))
    prompt = torch.randint(0, 256, (2, 5))
    out = model.generate(prompt, max_new_tokens=16)
    assert out.shape == (2, 21) and out.dtype == torch.int64 and torch.equal(out[:, :5], prompt)
    assert torch.equal(out, model.generate(prompt, max_new_tokens=16, use_cache=False))
    assert model.training  # mode restored
    # greedy = argmax of the full pass at every step
    logits = model.eval()(out[:, :-1])
    assert torch.equal(logits[:, 4:].argmax(-1), out[:, 5:])


def test_sampling_and_eos():
    torch.manual_seed(2)
    model = BitLM(small()).eval()
    prompt = torch.randint(0, 256, (2, 3))
    a = model.generate(prompt, 10, do_sample=True, temperature=0.7, top_k=5, top_p=0.9,
                       generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 10, do_sample=True, temperature=0.7, top_k=5, top_p=0.9,
                       generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2, 13)
    one = model.generate(prompt, 6, do_sample=True, top_k=1)
    assert torch.equal(one, model.generate(prompt, 6))  # top_k=1 sampling is greedy
    greedy = model.generate(prompt, 6)
    eos = int(greedy[0, 4])  # the row emits this as its second new token
    stopped = model.generate(prompt, 6, eos_token_id=eos)
    assert stopped.shape[1] <= 9
    row = stopped[0, 3:].tolist()
    assert all(t == eos for t in row[row.index(eos):])
    assert model.generate(prompt, 0).shape == (2, 3)


def eos_prone_model(eos=257):
    """An untied model whose greedy decode of ``PROMPT`` produces ``eos`` after a few tokens: the
    head row of ``eos`` is a slightly larger copy of the row of the third token it would emit."""
    torch.manual_seed(4)
    model = BitLM(small(tie_word_embeddings=False)).eval()
    free = model.generate(EOS_PROMPT, 12, eos_token_id=())
    target = int(free[0, EOS_PROMPT.shape[1] + 2])
    assert target != eos
    with torch.no_grad():
        model.lm_head.weight[eos] = model.lm_head.weight[target] * 1.05
    return model, free


EOS_PROMPT = torch.tensor([[72, 101, 108, 108, 111]])


def test_generate_stops_at_the_config_eos_by_default():
    """Hugging Face's default (and bitlab-run's): generate stops at config.eos_token_id."""
    model, free = eos_prone_model()
    n = EOS_PROMPT.shape[1]
    assert model.config.eos_token_id == 257 == ByteTokenizer.eos_token_id
    out = model.generate(EOS_PROMPT, 12)
    new = out[0, n:].tolist()
    assert new[-1] == 257 and 257 not in new[:-1] and len(new) < 12  # stopped right after EOS
    assert torch.equal(out, model.generate(EOS_PROMPT, 12, eos_token_id=257))
    assert torch.equal(out, model.generate(EOS_PROMPT, 12, eos_token_id=[5, 257]))
    assert torch.equal(out, model.generate(EOS_PROMPT, 12, use_cache=False))
    # eos_token_id=() decodes every token, EOS or not
    full = model.generate(EOS_PROMPT, 12, eos_token_id=())
    assert full.shape == (1, n + 12) and torch.equal(full[:, :out.shape[1]], out)
    # a config without EOS never stops
    model.config.eos_token_id = None
    assert torch.equal(model.generate(EOS_PROMPT, 12), full)
    # batches: a finished row repeats its end token until every row has finished
    model.config.eos_token_id = 257
    batch = torch.cat([EOS_PROMPT, torch.tensor([[1, 2, 3, 4, 5]])])
    both = model.generate(batch, 12)
    assert torch.equal(both[0, :out.shape[1]], out[0]) and set(both[0, out.shape[1]:].tolist()) <= {257}


@pytest.mark.parametrize("bad", [300, -1, True, 2.0, "257", [257, 999], object()])
def test_generate_refuses_bad_eos_token_id(bad):
    model = BitLM(small()).eval()
    with pytest.raises(ValueError, match="eos_token_id"):
        model.generate(EOS_PROMPT, 2, eos_token_id=bad)


@pytest.mark.parametrize("kwargs, value, reason", [
    (dict(temperature="1"), "'1'", "a str, not a number"),
    (dict(temperature=True), "True", "a bool"),
    (dict(temperature=float("nan")), "nan", "NaN"),
    (dict(temperature=0), "0", "out of range"),
    (dict(temperature=float("inf")), "inf", "out of range"),
    (dict(top_p="0.5"), "'0.5'", "a str, not a number"),
    (dict(top_p=False), "False", "a bool"),
    (dict(top_p=float("nan")), "nan", "NaN"),
    (dict(top_p=1.5), "1.5", "out of range"),
    (dict(top_p=0), "0", "out of range"),
    (dict(top_k=2.0), "2.0", "a float, not an int"),
    (dict(top_k=True), "True", "a bool"),
    (dict(top_k=0), "0", "out of range"),
    (dict(top_k="3"), "'3'", "a str, not an int"),
])
def test_generate_refuses_bad_sampling_arguments_naming_them(kwargs, value, reason):
    """A bad temperature / top_k / top_p is a ValueError naming the argument, its value and why, not a
    TypeError from a comparison deep inside."""
    model = BitLM(small()).eval()
    (name, _), = kwargs.items()
    with pytest.raises(ValueError, match=rf"generate: {name} must be .*, got {re.escape(value)} \({reason}"):
        model.generate(EOS_PROMPT, 2, do_sample=True, **kwargs)


def test_generate_integer_arguments_take_any_integer_type():
    """max_new_tokens, top_k and eos_token_id follow one rule: anything operator.index takes (numpy
    integers, 0-d integer tensors), never a bool or a float."""
    model = BitLM(small()).eval()
    plain = model.generate(EOS_PROMPT, 3, eos_token_id=())
    for n in (np.int64(3), np.int32(3), torch.tensor(3), torch.tensor(3, dtype=torch.uint8)):
        assert torch.equal(model.generate(EOS_PROMPT, n, eos_token_id=()), plain)
    sampled = model.generate(EOS_PROMPT, 3, do_sample=True, top_k=2, generator=torch.Generator().manual_seed(0))
    for k in (np.int64(2), torch.tensor(2)):
        assert torch.equal(model.generate(EOS_PROMPT, 3, do_sample=True, top_k=k,
                                          generator=torch.Generator().manual_seed(0)), sampled)
    eos = int(plain[0, -2])
    stopped = model.generate(EOS_PROMPT, 3, eos_token_id=eos)
    for e in (np.int64(eos), torch.tensor(eos), [np.int32(eos)], torch.tensor([eos]), np.array([eos])):
        assert torch.equal(model.generate(EOS_PROMPT, 3, eos_token_id=e), stopped)
    for bad, reason in ((True, "a bool"), (np.bool_(True), "a bool"), (torch.tensor(True), "a bool"),
                        (3.0, "a float"), (np.float64(3), "a float64"), (torch.tensor(3.0), "a torch.float32 tensor"),
                        (torch.tensor([3]), "a 1-D tensor"), (-1, "negative")):
        with pytest.raises(ValueError, match=rf"generate: max_new_tokens must be a non-negative int, got .* \({reason}"):
            model.generate(EOS_PROMPT, bad)
    for bad in (np.bool_(True), torch.tensor(True), 2.0, torch.tensor(2.0)):
        with pytest.raises(ValueError, match="generate: top_k must be"):
            model.generate(EOS_PROMPT, 2, do_sample=True, top_k=bad)
        with pytest.raises(ValueError, match="generate: eos_token_id must be"):
            model.generate(EOS_PROMPT, 2, eos_token_id=[5, bad])


def test_qat_step_trains_latent_weights():
    torch.manual_seed(3)
    model = BitLM(small())
    tok = ByteTokenizer()
    ids = torch.tensor([tok.encode("the cat sat on the mat. " * 2)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 258), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0]
    assert model.layers[0].self_attn.q_proj.weight.grad is not None
    # train (fake-quant) and eval (packed kernel) agree closely on the same weights
    model.eval()
    with torch.no_grad():
        ev = model(ids)
        tr = model.train()(ids)
    assert (ev - tr).abs().max() < 1e-2 * tr.abs().max()


def test_deploy_keeps_outputs():
    torch.manual_seed(4)
    model = BitLM(small()).eval()
    ids = torch.randint(0, 256, (1, 9))
    before = model(ids)
    model.deploy()
    assert all(m.deployed for m in model.modules() if isinstance(m, BitLinear))
    assert torch.equal(model(ids), before)
    assert torch.equal(model.generate(ids, 4), model.generate(ids, 4, use_cache=False))


def _tensor_bytes(model) -> dict:
    """name -> bytes of every parameter and buffer the model holds (a tied head counts once)."""
    seen, out = set(), {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out[name] = t.numel() * t.element_size()
    return out


def test_deploy_from_training_mode_is_bit_identical_and_holds_packed_weights_only():
    """deploy() straight from training mode (no eval-mode cache: no float snapshot, no trits) gives
    the same packed bytes, scales and logits as eval() then deploy(); a deployed model holds its
    2-bit weights, scales, embeddings and norms and nothing else (no cache, no latent weights)."""
    torch.manual_seed(6)
    a = BitLM(small(num_kv_heads=2))
    b = BitLM(small(num_kv_heads=2))
    b.load_state_dict(a.state_dict())
    a.eval().deploy()
    b.deploy()  # from training mode
    ids = torch.randint(0, 256, (2, 11))
    assert torch.equal(a(ids), b(ids))
    for la, lb in zip(a.modules(), b.modules()):
        if isinstance(la, BitLinear):
            assert la.weight is None and lb.weight is None and lb._cache is None
            assert torch.equal(la.packed_2bit, lb.packed_2bit) and torch.equal(la.weight_scale, lb.weight_scale)
            assert set(dict(lb.named_buffers())) == {"packed_2bit", "weight_scale"}
    c = b.config
    held = sum(_tensor_bytes(b).values())
    floats = 4 * (c.vocab_size * c.hidden_size + c.hidden_size * (1 + c.num_layers * 2)
                  + c.num_layers * (c.hidden_size + c.intermediate_size))  # embeddings, norms, sub-norms
    packed = sum(m.packed_2bit.numel() + 4 * m.out_features for m in b.modules() if isinstance(m, BitLinear))
    assert held == floats + packed


def test_meta_projection_skeleton_allocates_no_float_weights():
    model = BitLM(small(), projection_device="meta")
    layers = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert all(m.weight.is_meta for m in layers)
    assert not model.embed_tokens.weight.is_meta and not model.norm.weight.is_meta
    with pytest.raises(ValueError, match="meta"):
        model.eval()(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="meta"):
        model.deploy()
    # a deployed state dict makes the skeleton a deployed model on the CPU, never holding float weights
    torch.manual_seed(2)
    source = BitLM(small()).deploy()
    skeleton = BitLM(small(), projection_device="meta")
    skeleton.load_state_dict(source.state_dict())
    assert not any(t.is_meta for t in list(skeleton.parameters()) + list(skeleton.buffers()))
    ids = torch.randint(0, 256, (1, 7))
    assert torch.equal(skeleton.eval()(ids), source(ids))


@pytest.mark.parametrize("act", ["relu2", "silu"])
def test_fused_projections_are_bit_identical(monkeypatch, act):
    """A deployed model runs q/k/v and gate/up as one C++ call each (as bitlab-run): the same
    logits bit for bit as the projections one by one, the layers' buffers become views of one
    buffer (no extra memory), and writes or reloads of a layer's weights are followed."""
    with lowbit.backend("cpp"):  # the fusion is the C++ kernels' (the torch backend runs layers one by one)
        from bitmodels import lm

        torch.manual_seed(8)
        model = BitLM(small(num_kv_heads=2, hidden_act=act)).deploy()
        ids = torch.randint(0, 256, (2, 10))
        with monkeypatch.context() as m:
            m.setattr(lm._FusedProjections, "_usable", lambda self, x: None)
            separate = model(ids)
            separate_gen = model.generate(ids[:, :3], 6, eos_token_id=())
        fused = model(ids)
        assert torch.equal(fused, separate)
        assert torch.equal(model.generate(ids[:, :3], 6, eos_token_id=()), separate_gen)
        attn = model.layers[0].self_attn
        base = attn.q_proj.packed_2bit.untyped_storage().data_ptr() if hasattr(torch.Tensor, "untyped_storage") \
            else attn.q_proj.packed_2bit.storage().data_ptr()
        for layer in (attn.k_proj, attn.v_proj):
            ptr = layer.packed_2bit.untyped_storage().data_ptr() if hasattr(torch.Tensor, "untyped_storage") \
                else layer.packed_2bit.storage().data_ptr()
            assert ptr == base
        # a write to one layer's packed weights (a view of the fused buffer) is seen by the next call
        other = BitLM(small(num_kv_heads=2, hidden_act=act)).deploy()
        other.load_state_dict(model.state_dict())
        attn.v_proj.packed_2bit.zero_()
        other.layers[0].self_attn.v_proj.packed_2bit.zero_()
        with monkeypatch.context() as m:
            m.setattr(lm._FusedProjections, "_usable", lambda self, x: None)
            expected = other(ids)
        assert torch.equal(model(ids), expected) and not torch.equal(expected, separate)
        # reloading a state dict replaces the buffers: fused again from the new ones
        model.load_state_dict(BitLM(small(num_kv_heads=2, hidden_act=act)).deploy().state_dict())
        with monkeypatch.context() as m:
            m.setattr(lm._FusedProjections, "_usable", lambda self, x: None)
            expected = model(ids)
        assert torch.equal(model(ids), expected)
        x = torch.randn(1, 3, model.config.hidden_size)
        x[0, 1, 2] = float("nan")
        with pytest.raises(ValueError, match="BitLinear: input contains NaN or Inf"):
            attn._qkv(x)


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "naïve café — 1.58 bits\n"
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == 256 and ids[-1] == 257 and all(0 <= i < 256 for i in ids[1:-1])
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=False).startswith("<|bos|>naïve")
    with pytest.raises(ValueError):
        tok.decode([-1])


def test_pure_pytorch_backend_is_bit_identical():
    """The device-generic path (what runs on CUDA/MPS tensors, or under lowbit.backend("torch"))
    gives the C++ path's logits and tokens exactly."""
    import lowbit

    torch.manual_seed(5)
    model = BitLM(small(num_kv_heads=2)).eval()
    ids = torch.randint(0, 256, (2, 9))
    logits, tokens = model(ids), model.generate(ids[:, :4], 8)
    with lowbit.backend("torch"):
        assert torch.equal(model(ids), logits)
        assert torch.equal(model.generate(ids[:, :4], 8), tokens)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_corrupt_packed_weights_name_the_layer(backend):
    """An invalid TQ1_B3 byte (>= 243) in a deployed state dict names the entry, as a wrong length does."""
    import lowbit

    model = BitLM(small()).deploy()
    sd = model.state_dict()
    key = "layers.1.self_attn.q_proj.packed_weight"
    fresh = BitLM(small()).deploy()
    with lowbit.backend(backend):
        for value, match in ((255, "holds invalid TQ1_B3 trits"), (None, "has shape")):
            bad = dict(sd)
            bad[key] = torch.full_like(sd[key], 255) if value else sd[key][:-3].clone()
            with pytest.raises(ValueError, match=rf"'{key}' {match}"):
                fresh.load_state_dict(bad)
        fresh.load_state_dict(sd)
    ids = torch.randint(0, 258, (1, 6))
    assert torch.equal(fresh(ids), model(ids))


def test_bitnet_quant_per_channel_activations_are_per_token():
    """BITNET_QUANT's repr says activation_granularity='per_channel'; the docs say "one scale per
    token": both hold, a row's output does not depend on the other rows (it does per tensor)."""
    torch.manual_seed(5)
    x = torch.randn(4, 64)
    louder = x.clone()
    louder[1:] *= 1000.0
    for config, independent in ((BITNET_QUANT, True), (BitQuantConfig("per_tensor", "int8", "per_tensor"), False)):
        layer = BitLinear(64, 32, bias=False, quant_config=config)
        for mode in (True, False):
            layer.train(mode)
            with torch.no_grad():
                same = torch.equal(layer(x)[0], layer(louder)[0])
            assert same == independent, (config, mode)
    assert "activation_granularity='per_channel'" in repr(BITNET_QUANT)


def test_logits_to_keep_computes_the_head_for_the_last_positions_only():
    torch.manual_seed(6)
    model = BitLM(small(num_kv_heads=2)).eval()
    ids = torch.randint(0, 256, (2, 9))
    full, full_cache = model(ids, use_cache=True)
    for n in (1, 3):
        last, cache = model(ids, use_cache=True, logits_to_keep=n)
        assert last.shape == (2, n, model.config.vocab_size)
        torch.testing.assert_close(last, full[:, -n:], rtol=0, atol=1e-5)
        assert all(torch.equal(a, b) for pa, pb in zip(cache, full_cache) for a, b in zip(pa, pb))
    assert torch.equal(model(ids, logits_to_keep=0), full)  # 0 = every position
    assert model(ids, logits_to_keep=20).shape == full.shape  # more than T keeps all T
    # the head sees only the kept rows (generate's prompt forward computes [B, 1, vocab])
    rows = []
    handle = model.lm_head.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    try:
        model.generate(ids, 3, eos_token_id=())
        model.generate(ids, 2, eos_token_id=(), use_cache=False)
    finally:
        handle.remove()
    assert rows == [1] * 5
    for bad in (-1, 1.0, True, None):
        with pytest.raises(ValueError, match="logits_to_keep"):
            model(ids, logits_to_keep=bad)


def test_deployed_forward_runs_torch_ops_on_one_thread_and_kernels_on_torchs_count():
    """On the C++ path the forward's PyTorch ops run on one thread and lowbit's kernels get the
    threads PyTorch was given (bitcore.threads); the twin keeps PyTorch's count; logits and the thread
    settings after the call do not depend on it."""
    import lowbit
    from bitcore.threads import kernel_threads

    torch.manual_seed(7)
    model = BitLM(small(num_kv_heads=2)).deploy()
    twin = BitLM(small(num_kv_heads=2, ternary=False)).eval()
    ids = torch.randint(0, 256, (2, 9))
    seen = []
    hook = lambda m, i, o: seen.append((torch.get_num_threads(), kernel_threads()))  # noqa: E731
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with lowbit.backend("cpp"):  # the C++ path this is about, also under LOWBIT_BACKEND=torch
            one = model(ids)
            for m in (model, twin):
                m.layers[0].mlp.register_forward_hook(hook)
            torch.set_num_threads(2)
            assert torch.equal(model(ids), one)
            twin(ids)
        assert torch.get_num_threads() == 2 and kernel_threads() == 2  # restored
        assert seen == [(1, 2), (2, 2)]
        with lowbit.backend("torch"):  # no C++ kernels: PyTorch keeps its threads
            seen.clear()
            assert torch.equal(model(ids), one)
            assert seen == [(2, 2)]
    finally:
        torch.set_num_threads(before)


def _attention_with_repeated_kv(attn, x, cos, sin, past):
    """BitLMAttention.forward written with the KV heads repeated to the query heads (the textbook form)."""
    c = attn.config
    b, t, _ = x.shape
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    q = q.view(b, t, c.num_heads, c.head_dim).transpose(1, 2)
    k = k.view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
    v = v.view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    if past is not None:
        k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
    groups = c.num_heads // c.num_kv_heads
    kr, vr = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    total = k.shape[2]
    scores = q @ kr.transpose(-1, -2) * c.head_dim ** -0.5
    pos = torch.arange(total - t, total)[:, None]
    scores = scores.masked_fill(torch.arange(total)[None, :] > pos, float("-inf"))
    out = (torch.softmax(scores, -1) @ vr).transpose(1, 2).reshape(b, t, -1)
    return attn.o_proj(attn.attn_sub_norm(out)), (k, v)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("kv", [None, 2, 1])
def test_grouped_attention_equals_repeated_kv_heads(kv, fused, monkeypatch):
    """Grouped query rows against unrepeated k/v, on the matmul path and on the fused one (PyTorch 2.x's
    scaled_dot_product_attention, or the documented formula where PyTorch lacks it)."""
    import bitmodels.lm as lm

    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", _documented_sdpa) if fused else None
    monkeypatch.setattr(lm, "_SDPA", sdpa)
    torch.manual_seed(8)
    model = BitLM(small(num_kv_heads=kv)).deploy()
    attn = model.layers[0].self_attn
    x = torch.randn(2, 6, 32)
    cos, sin = rotary_cos_sin(torch.arange(6), 8, 10000.0)
    past = None
    for sl in (slice(0, 4), slice(4, 5), slice(5, 6)):  # a prompt, then one-token steps on the cache
        got, present = attn(x[:, sl], cos[sl], sin[sl], past)
        want, want_present = _attention_with_repeated_kv(attn, x[:, sl], cos[sl], sin[sl], past)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        assert all(torch.equal(a, b) for a, b in zip(present, want_present))
        past = present
    two, _ = attn(x[:, 3:6], cos[3:6], sin[3:6], tuple(p[:, :, :3] for p in past))  # several new tokens on a cache
    torch.testing.assert_close(two, _attention_with_repeated_kv(attn, x[:, 3:6], cos[3:6], sin[3:6],
                                                                tuple(p[:, :, :3] for p in past))[0], rtol=0, atol=1e-5)


def _documented_sdpa(q, k, v, attn_mask=None):
    """torch.nn.functional.scaled_dot_product_attention as PyTorch 2.x documents it (bool mask: True
    takes part in attention; scale 1/sqrt(D))."""
    bias = torch.zeros(q.shape[-2], k.shape[-2])
    if attn_mask is not None:
        bias = bias.masked_fill(attn_mask.logical_not(), float("-inf"))
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + bias, dim=-1) @ v


def test_causal_attention_fused_and_matmul_paths_agree(monkeypatch):
    """causal_attention's two paths: PyTorch 2.x's fused op (the real one where installed, and the
    documented formula standing in for it on PyTorch 1.13, which checks the mask convention) and
    the matmul path."""
    import bitmodels.lm as lm

    torch.manual_seed(9)
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    visible = torch.rand(10, 7) > 0.4
    visible[:, 0] = True  # every query sees a key
    fused = [f for f in (getattr(torch.nn.functional, "scaled_dot_product_attention", None), _documented_sdpa) if f]
    for mask in (visible, None):
        monkeypatch.setattr(lm, "_SDPA", None)
        plain = lm.causal_attention(q, k, v, mask)
        for f in fused:
            monkeypatch.setattr(lm, "_SDPA", f)
            torch.testing.assert_close(lm.causal_attention(q, k, v, mask), plain, rtol=0, atol=1e-5)
    # the matmul path against the formula written out
    monkeypatch.setattr(lm, "_SDPA", None)
    scores = (q @ k.transpose(-1, -2) / 8 ** 0.5).masked_fill(~visible, float("-inf"))
    torch.testing.assert_close(lm.causal_attention(q, k, v, visible), torch.softmax(scores, -1) @ v,
                               rtol=0, atol=1e-6)


def _left_padded(prompts, pad=0):
    """ids [B, T] padded on the left with ``pad`` and Hugging Face's attention_mask."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("ternary, deploy", [(True, False), (True, True), (False, False)])
def test_left_padded_batch_generates_each_rows_own_tokens(ternary, deploy):
    torch.manual_seed(3)
    model = BitLM(small(num_kv_heads=2, ternary=ternary)).eval()
    if deploy:
        model.deploy()
    prompts = [[5, 9, 200, 31, 7, 77], [42], [1, 2, 3]]
    for pad in (0, 255):  # the padding's ids are never read
        ids, mask = _left_padded(prompts, pad)
        for use_cache in (True, False):
            out = model.generate(ids, 12, attention_mask=mask, eos_token_id=(), use_cache=use_cache)
            assert out.shape == (3, 6 + 12) and torch.equal(out[:, :6], ids)
            for row, p in enumerate(prompts):
                alone = model.generate(torch.tensor([p]), 12, eos_token_id=(), use_cache=use_cache)[0]
                assert out[row, 6:].tolist() == alone[len(p):].tolist(), (row, pad, use_cache)
    # forward: each row's logits at its own positions, up to the attention's float rounding
    ids, mask = _left_padded(prompts)
    logits = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    for row, p in enumerate(prompts):
        torch.testing.assert_close(logits[row, 6 - len(p):], model(torch.tensor([p]))[0], rtol=0, atol=1e-4)
    # without the mask, padding changes the short rows' logits: the test above can fail
    assert not torch.allclose(model(ids)[1, -1], model(torch.tensor([prompts[1]]))[0, -1], atol=1e-3)


def test_attention_mask_of_ones_is_bit_identical_to_none():
    torch.manual_seed(4)
    model = BitLM(small()).eval()
    ids = torch.randint(0, 256, (2, 7))
    ones = torch.ones(2, 7, dtype=torch.int64)
    assert torch.equal(model(ids, attention_mask=ones), model(ids))
    assert torch.equal(model(ids, attention_mask=ones.bool(), position_ids=torch.arange(7)[None]), model(ids))
    assert torch.equal(model.generate(ids, 8, attention_mask=ones), model.generate(ids, 8))


def test_bad_attention_mask_and_position_ids_are_refused_naming_them():
    model = BitLM(small()).eval()
    ids, mask = _left_padded([[1, 2, 3], [4]])
    with pytest.raises(ValueError, match="row 1 has padding after a token.*padding_side='left'"):
        model.generate(ids, 2, attention_mask=mask.flip(1))
    with pytest.raises(ValueError, match="row 0 has no token"):
        model.generate(ids, 2, attention_mask=torch.tensor([[0, 0, 0], [0, 0, 1]]))
    for bad, why in [(mask[:, 1:], r"attention_mask must be \[batch, past \+ tokens\] = \[2, 3\]"),
                     (mask.float() / 2, "only 0 \\(padding\\) and 1"), (mask.float() * float("nan"), "only 0"),
                     (mask * 2, "only 0 \\(padding\\) and 1"), ([[1, 1, 1]], "got list"),
                     (mask.to(torch.complex64), "2-D bool, integer or float tensor")]:
        with pytest.raises(ValueError, match=why):
            model(ids, attention_mask=bad)
    for bad, why in [(torch.tensor([[0, 1, 48]]), r"position_ids must lie in \[0, 48\), got \[0, 48\]"),
                     (torch.tensor([[-1, 0, 1]]), "must lie in"),
                     (torch.arange(3), r"position_ids must be an integer tensor \[batch, tokens\] = \[2, 3\]"),
                     (torch.zeros(2, 3), "integer tensor")]:
        with pytest.raises(ValueError, match=why):
            model(ids, position_ids=bad)


def test_attention_mask_may_be_float_as_transformers_takes_it():
    """attention_mask=torch.ones(B, T) (float32) is a common Hugging Face idiom: transformers reads
    any dtype's 0/1 values; BitLM used to refuse floats. Same tokens and logits as the int mask."""
    torch.manual_seed(5)
    model = BitLM(small(num_kv_heads=2)).eval()
    ids, mask = _left_padded([[5, 9, 200, 31], [42], [1, 2]])
    ref = model.generate(ids, 6, attention_mask=mask, eos_token_id=())
    for dtype in (torch.float32, torch.float16, torch.float64, torch.bfloat16):
        assert torch.equal(model.generate(ids, 6, attention_mask=mask.to(dtype), eos_token_id=()), ref)
        assert torch.equal(model(ids, attention_mask=mask.to(dtype)), model(ids, attention_mask=mask))
    assert torch.equal(model.generate(ids, 3, attention_mask=torch.ones(ids.shape)), model.generate(ids, 3))


def test_hugging_face_positional_attention_mask_gets_a_clear_error():
    """transformers' forward takes attention_mask second; BitLM's second argument is past_key_values,
    so model(ids, mask) must say so rather than only that the cache is not a list."""
    model = BitLM(small()).eval()
    ids, mask = _left_padded([[1, 2, 3], [4]])
    with pytest.raises(ValueError, match=r"past_key_values must be a list.*got Tensor \[2, 3\]: forward's second "
                                         r"positional argument is past_key_values.*attention_mask= "):
        model(ids, mask)


def test_byte_tokenizer_pads_batches_like_a_hugging_face_tokenizer():
    """tok(texts, padding=True, padding_side=..., return_tensors="pt") feeds generate(**...) and a
    Hugging Face style manual decoding loop (mask extended one column per step, past_key_values),
    and right padding with labels -100 gives the row-by-row loss, as transformers' loss does."""
    tok = ByteTokenizer()
    texts = ["the quick", "ab", "Über naïve"]
    left = tok(texts, padding=True, padding_side="left", return_tensors="pt")
    n = len(tok.encode(texts[2]))
    assert left["input_ids"].shape == (3, n) and left["attention_mask"].dtype == torch.int64
    assert left["attention_mask"][1].tolist() == [0] * (n - 2) + [1, 1]
    assert left["input_ids"][1].tolist() == [tok.pad_token_id] * (n - 2) + tok.encode("ab")
    assert tok("ab") == {"input_ids": tok.encode("ab"), "attention_mask": [1, 1]}
    right = tok(texts, padding=True, return_tensors="pt")  # transformers' default side: right
    assert right["attention_mask"][1].tolist() == [1, 1] + [0] * (n - 2)
    torch.manual_seed(6)
    model = BitLM(small(num_kv_heads=2)).eval()
    out = model.generate(**left, max_new_tokens=8, eos_token_id=())
    # the manual loop transformers users write (no position_ids: relative rotary keeps each row's tokens)
    ids, mask, cache, step, loop = left["input_ids"], left["attention_mask"], None, left["input_ids"], []
    for _ in range(8):
        logits, cache = model(step, attention_mask=mask, past_key_values=cache, use_cache=True)
        step = logits[:, -1].argmax(-1, keepdim=True)
        loop.append(step)
        mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
    assert torch.equal(torch.cat(loop, 1), out[:, n:])
    for row, text in enumerate(texts):
        alone = model.generate(torch.tensor([tok.encode(text)]), 8, eos_token_id=())[0, -8:]
        assert out[row, n:].tolist() == alone.tolist()
    assert tok.batch_decode(out[:, :n]) == texts  # padding (EOS) is a special token: skipped
    with pytest.raises(ValueError, match="padding_side='left'"):
        model.generate(**right, max_new_tokens=2)
    # training batch: right padding, labels -100 on padding
    model.train()
    labels = right["input_ids"].masked_fill(right["attention_mask"] == 0, -100)
    logits = model(right["input_ids"], attention_mask=right["attention_mask"])
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 258), labels[:, 1:].reshape(-1))
    total = sum(F.cross_entropy(model(torch.tensor([tok.encode(t)]))[0, :-1], torch.tensor(tok.encode(t)[1:]),
                                reduction="sum") for t in texts)
    torch.testing.assert_close(loss, total / sum(len(tok.encode(t)) - 1 for t in texts), rtol=1e-5, atol=1e-6)
    for bad, why in [(dict(text=5), "str or a list of str"), (dict(text=["a"], padding="max_length"), "padding"),
                     (dict(text=["a"], padding_side="middle"), "padding_side"),
                     (dict(text=["a"], return_tensors="np"), "return_tensors"),
                     (dict(text=["a", "bc"], return_tensors="pt"), "need padding=True")]:
        with pytest.raises(ValueError, match=why):
            tok(**bad)


def test_several_end_tokens_in_the_config_as_transformers_allows():
    """eos_token_id=[a, b] (a transformers config, Llama 3's): generate stops each row at either;
    export_gguf, whose file holds one EOS, refuses rather than dropping the others."""
    torch.manual_seed(7)
    model = BitLM(small()).eval()
    ids = torch.tensor([[5, 9, 200], [42, 1, 2]])
    free = model.generate(ids, 12, eos_token_id=())
    ends = [int(free[0, 5]), int(free[1, 6])]  # a token each row produces early
    model.config = BitLMConfig(**{**small().__dict__, "eos_token_id": ends})
    assert model.config.eos_token_id == tuple(ends)
    assert torch.equal(model.generate(ids, 12), model.generate(ids, 12, eos_token_id=ends))
    out = model.generate(ids, 12)
    for row in range(2):
        hit = next(i for i, t in enumerate(out[row, 3:].tolist()) if t in ends)
        assert out[row, 3:3 + hit + 1].tolist() == free[row, 3:3 + hit + 1].tolist()
    assert BitLMConfig(**{**small().__dict__, "eos_token_id": [9]}).eos_token_id == 9
    for bad in ([], [300], [True], "7"):
        with pytest.raises(ValueError, match="eos_token_id must be None, a token id below vocab_size or a non-empty list"):
            BitLMConfig(**{**small().__dict__, "eos_token_id": bad})

"""convert_to_bitlinear / llama_to_bitlm on Hugging Face transformers Llama models (issue 17, item 3).

transformers is a dev requirement (requirements-dev.txt pins a version that works with Debian's
torch 1.13 and with torch 2.x) and the fortunes text a Debian one (scripts/install-deps.sh): without
them these tests fail (they are not skipped; tests/python/deps_helpers.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from deps_helpers import need_module, need_path

transformers = need_module("transformers")
LlamaConfig, LlamaForCausalLM = transformers.LlamaConfig, transformers.LlamaForCausalLM

from bitcore.config import BitQuantConfig  # noqa: E402
from bitlayers.bitlinear import BitLinear  # noqa: E402
from bitmodels import (BitLM, BitLMConfig, BitMLP, BitMLPConfig, ByteTokenizer, convert_to_bitlinear,  # noqa: E402
                       deploy_model, export_gguf, llama_to_bitlm)
from bitmodels.lm import BITNET_QUANT  # noqa: E402

FORTUNES = Path("/usr/share/games/fortunes")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def llama(seed=0, **kw) -> LlamaForCausalLM:
    """A small random-weight Llama with a byte-level vocabulary (258 = ByteTokenizer)."""
    base = dict(vocab_size=258, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                rope_theta=5000.0, rms_norm_eps=1e-5, bos_token_id=256, eos_token_id=257)
    base.update(kw)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**base))


def fortune_batches(n_batches: int, batch: int = 8, seq_len: int = 64, seed: int = 0):
    """Real English text: byte windows from the fortunes package (a Debian dependency)."""
    need_path(FORTUNES, "fortunes")
    files = sorted(p for p in FORTUNES.iterdir() if p.suffix not in (".dat", ".u8") and p.is_file()
                   and not p.is_symlink() and p.name not in ("art", "ascii-art", "translate-me"))
    text = b"".join(p.read_bytes() for p in files[:6])
    data = torch.tensor(ByteTokenizer().encode(text.decode("utf-8", errors="replace")), dtype=torch.long)
    rng = random.Random(seed)
    for _ in range(n_batches):
        starts = [rng.randrange(0, data.numel() - seq_len - 1) for _ in range(batch)]
        yield torch.stack([data[s:s + seq_len + 1] for s in starts])


def lm_loss(model, xy: torch.Tensor) -> torch.Tensor:
    out = model(xy[:, :-1])
    logits = out.logits if hasattr(out, "logits") else out
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xy[:, 1:].reshape(-1))


def train_losses(model, steps: int = 12, lr: float = 3e-3):
    """Loss on one fixed held-out batch before and after ``steps`` AdamW steps on other batches."""
    batches = list(fortune_batches(steps + 1))
    held, train = batches[0], batches[1:]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    with torch.no_grad():
        before = float(lm_loss(model, held))
    for xy in train:
        loss = lm_loss(model, xy)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(lm_loss(model, held))
    return before, after


def test_inplace_conversion_swaps_projections_keeps_head_and_trains():
    model = llama()
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = convert_to_bitlinear(model)
    assert out is model
    for i, layer in enumerate(model.model.layers):
        for name in PROJECTIONS:
            module = getattr(layer.self_attn if name in PROJECTIONS[:4] else layer.mlp, name)
            assert isinstance(module, BitLinear), (i, name)
            assert module.quant_config == BITNET_QUANT  # the LM default: int8 activations per token
            section = "self_attn" if name in PROJECTIONS[:4] else "mlp"
            assert torch.equal(module.weight, reference[f"model.layers.{i}.{section}.{name}.weight"])
    # the skipped layers (output head) and the embeddings stay in higher precision
    assert type(model.lm_head) is nn.Linear and type(model.model.embed_tokens) is nn.Embedding
    assert torch.equal(model.lm_head.weight, reference["lm_head.weight"])
    assert sum(isinstance(m, BitLinear) for m in model.modules()) == 7 * 2

    ids = next(fortune_batches(1, batch=2, seq_len=16))
    out = model(input_ids=ids, labels=ids)  # Hugging Face's forward and loss still work
    assert out.logits.shape == (2, 17, 258) and torch.isfinite(out.loss)
    before, after = train_losses(model)
    assert after < before - 0.3, (before, after)
    model.eval()  # packed ternary kernels
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    deploy_model(model)  # drop the latent weights: 2-bit projections, same outputs
    assert all(m.deployed for m in model.modules() if isinstance(m, BitLinear))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, logits)


def test_inplace_conversion_explicit_skip_and_quant_config():
    model = llama()
    qc = BitQuantConfig("per_channel", "int8", "per_channel")
    convert_to_bitlinear(model, qc, skip=("model.layers.1.mlp.*", "lm_head"))  # an explicit skip is the whole list
    assert type(model.lm_head) is nn.Linear
    assert type(model.model.layers[1].mlp.down_proj) is nn.Linear
    assert isinstance(model.model.layers[0].mlp.down_proj, BitLinear)
    assert model.model.layers[0].self_attn.q_proj.quant_config == qc
    # skip=() converts the head too (only with an explicit request)
    every = convert_to_bitlinear(llama(), skip=())
    assert isinstance(every.lm_head, BitLinear)


def test_bitlm_conversion_matches_llama_logits_without_quantization():
    for kw in (dict(), dict(num_key_value_heads=4), dict(tie_word_embeddings=True), dict(hidden_act="relu2")):
        hf = llama(seed=1, **kw).eval()
        twin = llama_to_bitlm(hf, sub_norms=False, ternary=False).eval()
        assert isinstance(twin, BitLM) and not twin.config.ternary
        c = twin.config
        assert (c.num_kv_heads, c.rope_theta, c.rms_norm_eps) == (hf.config.num_key_value_heads, 5000.0, 1e-5)
        assert c.tie_word_embeddings == hf.config.tie_word_embeddings
        ids = torch.randint(0, 258, (2, 40), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            expected = hf(ids).logits
            got = twin(ids)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (kw, float((got - expected).abs().max()))
        # and greedy decoding agrees token for token (our KV-cache generate against the full HF pass)
        prompt = ids[:1, :8]
        out = twin.generate(prompt, max_new_tokens=12)
        seq = prompt
        with torch.no_grad():
            for _ in range(12):
                seq = torch.cat([seq, hf(seq).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(out, seq), kw


def test_left_padded_batch_mask_and_cache_agree_with_transformers():
    """The float twin of a Llama against transformers' own forward on a left-padded batch: with
    attention_mask alone (positions from the cache, Hugging Face's forward default), with
    position_ids = cumsum(mask) - 1, and one cached step; transformers' cache (to_legacy_cache())
    feeds BitLM directly, and passing the Cache object itself names that way out."""
    hf = llama(seed=3).eval()
    twin = llama_to_bitlm(hf, sub_norms=False, ternary=False).eval()
    ids = torch.randint(0, 258, (3, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(3, 9, dtype=torch.int64)
    mask[0, :5], mask[2, :8] = 0, 0  # a row of one token
    real = mask.bool()
    with torch.no_grad():
        for kw in (dict(), dict(position_ids=(mask.cumsum(-1) - 1).clamp(min=0))):
            expected = hf(ids, attention_mask=mask, **kw).logits
            torch.testing.assert_close(twin(ids, attention_mask=mask, **kw)[real], expected[real], rtol=1e-4, atol=1e-5)
        first = hf(ids[:, :6], attention_mask=mask[:, :6], use_cache=True)
        legacy = first.past_key_values
        legacy = legacy.to_legacy_cache() if hasattr(legacy, "to_legacy_cache") else legacy
        step = hf(ids[:, 6:], attention_mask=mask, past_key_values=first.past_key_values, use_cache=True).logits
        got = twin(ids[:, 6:], attention_mask=mask, past_key_values=[tuple(kv) for kv in legacy], use_cache=True)[0]
        torch.testing.assert_close(got[real[:, 6:]], step[real[:, 6:]], rtol=1e-4, atol=1e-5)  # padding: meaningless
        cache_cls = getattr(transformers, "DynamicCache", None)
        if cache_cls is not None:  # transformers >= 4.36 (requirements-dev pins >= 4.46)
            with pytest.raises(ValueError, match=r"got DynamicCache \(a transformers Cache: pass its to_legacy_cache"):
                twin(ids[:, 6:], attention_mask=mask, past_key_values=cache_cls.from_legacy_cache(legacy))


def test_llama_end_token_list_is_kept():
    """Llama 3 style configs list several EOS ids; transformers' generate stops at any of them, and
    so does the BitLM's: the list was dropped (None: decoding never stopped)."""
    hf = llama(seed=5, eos_token_id=[257, 10, 9999], bos_token_id=256)
    assert llama_to_bitlm(hf).config.eos_token_id == (257, 10)  # 9999: outside the vocabulary
    assert llama_to_bitlm(llama(seed=5, eos_token_id=[12])).config.eos_token_id == 12
    assert llama_to_bitlm(llama(seed=5, eos_token_id=12)).config.eos_token_id == 12


def test_bitlm_conversion_of_a_bfloat16_model():
    hf = llama(seed=6).to(torch.bfloat16)
    bitlm = llama_to_bitlm(hf)
    weight = bitlm.layers[0].mlp.up_proj.weight
    assert weight.dtype == torch.float32 and torch.equal(weight, hf.model.layers[0].mlp.up_proj.weight.float())
    assert bitlm.embed_tokens.weight.dtype == torch.float32
    ids = torch.randint(0, 258, (1, 12), generator=torch.Generator().manual_seed(7))
    assert bitlm.eval().generate(ids, max_new_tokens=4).shape == (1, 16)


def test_ternary_bitlm_matches_inplace_conversion():
    """Both conversion paths compute the same ternary model: the BitLM without sub-norms and the
    Llama with BitLinear projections swapped in agree (same quantizers, same block)."""
    hf = llama(seed=3)
    bitlm = llama_to_bitlm(hf, sub_norms=False)
    assert isinstance(bitlm.layers[0].self_attn.q_proj, BitLinear)
    assert torch.equal(bitlm.layers[1].mlp.down_proj.weight, hf.model.layers[1].mlp.down_proj.weight)
    ids = torch.randint(0, 258, (2, 24), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        float_logits = hf.eval()(ids).logits
    convert_to_bitlinear(hf)
    for mode in ("train", "eval"):
        hf.train(mode == "train"), bitlm.train(mode == "train")
        with torch.no_grad():
            a, b = hf(ids).logits, bitlm(ids)
        # float32 rounding differs slightly between the two graphs, so an int8 activation can round
        # to the neighbouring level: compare loosely, but far tighter than the logits' spread
        assert (a - b).abs().max() < 0.05 * a.std(), (mode, float((a - b).abs().max()), float(a.std()))
        # and both are really ternary: far from the float model's logits
        assert (a - float_logits).abs().max() > 0.2 * float_logits.std()


def test_bitlm_conversion_with_sub_norms_trains_and_exports(tmp_path):
    hf = llama(seed=5, hidden_size=256, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
               tie_word_embeddings=True, num_hidden_layers=1)
    bitlm = convert_to_bitlinear(hf, target="bitlm")
    assert isinstance(bitlm, BitLM) and bitlm.config.sub_norms and bitlm.config.ternary
    sub = bitlm.layers[0].self_attn.attn_sub_norm
    assert torch.equal(sub.weight, torch.ones(256))  # BitNet's sub-norms start at ones
    assert type(hf.model.layers[0].self_attn.q_proj) is nn.Linear  # the Hugging Face model is left as it was
    assert type(bitlm.lm_head) is nn.Linear and bitlm.lm_head.weight is bitlm.embed_tokens.weight
    before, after = train_losses(bitlm)
    assert after < before - 0.3, (before, after)
    path = export_gguf(bitlm, tmp_path / "converted.gguf")  # the BitNet layout exports
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="sub_norms"):
        export_gguf(llama_to_bitlm(hf, sub_norms=False), tmp_path / "plain.gguf")


def gpt2(seed=0, n_layer=2):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=258, n_embd=64, n_layer=n_layer, n_head=4, n_positions=64)
    return transformers.GPT2LMHeadModel(config)


def test_inplace_conversion_of_gpt2_conv1d_projections():
    """GPT-2's projections are transformers Conv1D (y = x @ W + b, W [in, out]): each becomes a
    BitLinear holding W.T, computing what a BitLinear made from the equivalent nn.Linear computes."""
    from bitmodels.convert import is_hf_conv1d

    model = gpt2()
    convs = {name: (m.weight.detach().clone(), m.bias.detach().clone())
             for name, m in model.named_modules() if is_hf_conv1d(m)}
    assert len(convs) == 8  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert convert_to_bitlinear(model) is model
    assert not any(is_hf_conv1d(m) for m in model.modules())
    assert type(model.lm_head) is nn.Linear  # the output head stays float by default
    for name, (w, b) in convs.items():
        layer = model.get_submodule(name)
        assert isinstance(layer, BitLinear) and layer.quant_config == BITNET_QUANT
        assert torch.equal(layer.weight, w.t()) and torch.equal(layer.bias, b)
        linear = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(w.t())
            linear.bias.copy_(b)
        twin = BitLinear.from_linear(linear, BITNET_QUANT)
        xi = torch.randn(3, 5, w.shape[0])
        for mode in (True, False):
            layer.train(mode), twin.train(mode)
            assert torch.equal(layer(xi), twin(xi)), (name, mode)
    # it trains through the model's own loss, and converting again changes nothing
    model.train()
    batches = list(fortune_batches(4, batch=4, seq_len=32, seed=3))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for xy in batches * 3:
        loss = model(xy, labels=xy).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.3, losses
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    convert_to_bitlinear(model)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_conversion_refuses_models_without_linear_layers():
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Conv1d(4, 4, 3))
    with pytest.raises(ValueError, match=r"Sequential has no layer to convert .*found .*Embedding x1.*Conv1d x1"):
        convert_to_bitlinear(model)
    with pytest.raises(ValueError, match=r"skip entries \['transformer\.h\.\*\.attn\.c_atn', 'lm_haed'\] match no"):
        convert_to_bitlinear(gpt2(n_layer=1), skip=["transformer.h.*.attn.c_atn", "lm_haed", "lm_head"])


@pytest.mark.parametrize("deployed", [False, True])
def test_llama_converted_in_place_becomes_a_bitlm(tmp_path, deployed):
    """llama_to_bitlm / target="bitlm" accept a Llama converted in place: its BitLinear projections
    (latent or deployed) are copied whole, with their quant config, so the BitLM without sub-norms
    computes the converted model's logits exactly; with sub-norms it exports to GGUF."""
    qc = BitQuantConfig("per_tensor", "int8", "per_tensor")
    hf = convert_to_bitlinear(llama(seed=8, hidden_size=256, intermediate_size=256, num_hidden_layers=1), qc)
    with torch.no_grad():  # move the latent weights away from the float model's
        hf.model.layers[0].self_attn.q_proj.weight.mul_(-1.5)
    if deployed:
        deploy_model(hf)
    ids = torch.randint(0, 258, (2, 20), generator=torch.Generator().manual_seed(9))
    hf.eval()
    with torch.no_grad():
        expected = hf(ids).logits
    bitlm = llama_to_bitlm(hf, sub_norms=False).eval()
    q = bitlm.layers[0].self_attn.q_proj
    assert bitlm.config.quant_config == qc and q.quant_config == qc and q.deployed == deployed
    source = hf.model.layers[0].self_attn.q_proj
    assert torch.equal(q.packed_weights()[0], source.packed_weights()[0])
    with torch.no_grad():
        assert torch.equal(bitlm(ids), expected)
    exported = convert_to_bitlinear(hf, BITNET_QUANT, target="bitlm")  # sub-norms added: exportable
    assert exported.config.quant_config == BITNET_QUANT and exported.config.sub_norms
    if not deployed:
        assert torch.equal(exported.layers[0].self_attn.q_proj.weight, source.weight)
    assert export_gguf(exported, tmp_path / "converted.gguf").stat().st_size > 0


def test_conversion_bad_input(tmp_path):
    with pytest.raises(ValueError, match="expected an nn.Module"):
        convert_to_bitlinear("not a model")
    with pytest.raises(ValueError, match="target"):
        convert_to_bitlinear(llama(), target="gguf")
    with pytest.raises(ValueError, match="not a transformers Llama-style"):
        convert_to_bitlinear(nn.Sequential(nn.Linear(4, 4)), target="bitlm")
    with pytest.raises(ValueError, match="not a transformers Llama-style"):
        llama_to_bitlm(BitMLP(BitMLPConfig()))
    with pytest.raises(ValueError, match="Llama-style model"):
        llama_to_bitlm(42)
    with pytest.raises(ValueError, match="skip"):
        convert_to_bitlinear(llama(), target="bitlm", skip=["lm_head"])
    with pytest.raises(ValueError, match="projection biases"):
        llama_to_bitlm(llama(attention_bias=True))
    with pytest.raises(ValueError, match="rope_scaling"):
        llama_to_bitlm(llama(rope_scaling={"rope_type": "linear", "factor": 2.0}))
    with pytest.raises(ValueError, match="hidden_act"):
        llama_to_bitlm(llama(hidden_act="gelu"))
    with pytest.raises(ValueError, match="lm_head .*BitLinear.*float head"):  # head converted too
        llama_to_bitlm(convert_to_bitlinear(llama(), skip=()))
    with pytest.raises(ValueError, match="not an nn.Linear or a BitLinear"):
        broken = llama()
        broken.model.layers[1].mlp.up_proj = nn.Identity()
        llama_to_bitlm(broken)
    mixed = convert_to_bitlinear(llama(), BitQuantConfig("per_channel"), skip=["model.layers.1.*", "lm_head"])
    convert_to_bitlinear(mixed, skip=["model.layers.0.*", "lm_head"])
    with pytest.raises(ValueError, match="different quantization configs"):
        llama_to_bitlm(mixed)
    with pytest.raises(ValueError, match="deployed .*ternary=False"):
        llama_to_bitlm(deploy_model(convert_to_bitlinear(llama())), ternary=False)
    with pytest.raises(ValueError, match="expected a BitLM, got LlamaForCausalLM; .*llama_to_bitlm"):
        export_gguf(convert_to_bitlinear(llama()), tmp_path / "never-written.gguf")
    with pytest.raises(ValueError, match="match no module"):
        convert_to_bitlinear(llama(), skip=["decoder.head"])
    with pytest.raises(ValueError, match="sub_norms must be a bool"):
        BitLMConfig(sub_norms="no")

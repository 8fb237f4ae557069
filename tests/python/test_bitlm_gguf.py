"""bitmodels.export_gguf / load_gguf: BitLM in llama.cpp's ``bitnet`` GGUF layout, round trips and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deps_helpers import need_module

gguf = need_module("gguf")

from bitcore.config import BitQuantConfig  # noqa: E402
from bitlayers.bitlinear import BitLinear  # noqa: E402
from bitmodels import BitLM, BitLMConfig, ByteTokenizer, export_gguf, load_gguf  # noqa: E402
from bitmodels.gguf_io import _bytes_to_unicode  # noqa: E402


def small(**kw):
    base = dict(vocab_size=258, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256,
                max_position_embeddings=64)
    base.update(kw)
    return BitLMConfig(**base)


def trained(config, seed=0, steps=3):
    """A model whose weights moved away from their initialisation (a few QAT steps)."""
    torch.manual_seed(seed)
    model = BitLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 256, (2, 17))
    for _ in range(steps):
        loss = F.cross_entropy(model(ids[:, :-1]).reshape(-1, config.vocab_size), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # norms away from 1 so a lost norm weight shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.mul_(1 + 0.1 * torch.rand_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = trained(small())
    path = tmp_path_factory.mktemp("gguf") / "bitlm.gguf"
    assert export_gguf(model, path) == path
    return model, path


def test_layout_is_llama_cpp_bitnet(exported):
    model, path = exported
    r = gguf.GGUFReader(str(path))
    f = lambda k: r.fields[k].contents()  # noqa: E731
    assert f("general.architecture") == "bitnet"
    assert (f("bitnet.embedding_length"), f("bitnet.block_count"), f("bitnet.feed_forward_length")) == (256, 2, 256)
    assert (f("bitnet.attention.head_count"), f("bitnet.attention.head_count_kv")) == (4, 2)
    assert f("bitnet.rope.dimension_count") == 64 and f("bitnet.context_length") == 64
    assert f("bitnet.hidden_activation") == "relu2"
    assert f("bitnet.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    tensors = {t.name: t for t in r.tensors}
    expected = {"token_embd.weight", "output_norm.weight"}
    for i in range(2):
        for n in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
            expected.add(f"blk.{i}.{n}.weight")
        for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            expected |= {f"blk.{i}.{n}.weight", f"blk.{i}.{n}.scale"}
    assert set(tensors) == expected  # tied head: no output.weight, as llama.cpp's bitnet loader wants
    # ggml dims (fastest first), as llama.cpp's create_tensor calls them
    assert list(tensors["token_embd.weight"].shape) == [256, 258]
    assert list(tensors["blk.0.attn_k.weight"].shape) == [256, 128]
    assert list(tensors["blk.0.ffn_sub_norm.weight"].shape) == [256]
    assert tensors["blk.1.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.TQ2_0
    assert list(tensors["blk.1.ffn_down.scale"].shape) == [1]
    # the stored trits and scale are the layer's
    layer = model.layers[1].mlp.down_proj
    packed, scales = layer.packed_weights()
    trits = layer.kernel.unpack(packed, layer.in_features).numpy()
    stored = gguf.quants.dequantize(tensors["blk.1.ffn_down.weight"].data, gguf.GGMLQuantizationType.TQ2_0)
    assert np.array_equal(stored.reshape(trits.shape), trits)
    assert np.float32(tensors["blk.1.ffn_down.scale"].data[0]) == np.float32(scales[0].item())


def test_byte_level_tokenizer_metadata(exported):
    _, path = exported
    r = gguf.GGUFReader(str(path))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    assert r.fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert len(tokens) == 258 and len(set(tokens)) == 258
    table = _bytes_to_unicode()
    tok = ByteTokenizer()
    text = "Hi, naïve world!\n"
    # GPT-2 byte-level detokenization of our ids gives the text back
    pieces = "".join(tokens[i] for i in tok.encode(text))
    inverse = {v: k for k, v in table.items()}
    assert bytes(inverse[ch] for ch in pieces).decode() == text
    assert r.fields["tokenizer.ggml.bos_token_id"].contents() == 256
    assert r.fields["tokenizer.ggml.eos_token_id"].contents() == 257
    assert len(r.fields["tokenizer.ggml.merges"].contents()) == 1


@pytest.mark.parametrize("trainable", [True, False])
def test_round_trip_same_logits(exported, trainable):
    model, path = exported
    loaded = load_gguf(path, trainable=trainable)
    assert not loaded.training and loaded.config.num_kv_heads == 2 and loaded.config.hidden_act == "relu2"
    ids = torch.randint(0, 258, (2, 12))
    assert torch.equal(loaded(ids), model(ids))
    assert torch.equal(loaded.generate(ids[:, :4], 8), model.generate(ids[:, :4], 8))
    layers = [m for m in loaded.modules() if isinstance(m, BitLinear)]
    assert all(m.deployed != trainable for m in layers)
    # deployed loads are built without float projection weights (a 'meta' skeleton) and keep none
    assert not any(t.is_meta for t in list(loaded.parameters()) + list(loaded.buffers()))
    if not trainable:
        assert all(m.weight is None and m.packed_2bit.device.type == "cpu" for m in layers)


@pytest.mark.parametrize("kw", [dict(hidden_act="silu", num_kv_heads=None, tie_word_embeddings=False),
                                dict(num_layers=1, intermediate_size=512)])
@pytest.mark.parametrize("qtype", ["TQ2_0", "TQ1_0"])
def test_round_trip_variants(tmp_path, kw, qtype):
    model = trained(small(**kw), seed=1, steps=1)
    if qtype == "TQ1_0":
        model.deploy()  # a deployed model (packed weights only) exports the same way
    path = export_gguf(model, tmp_path / "m.gguf", ternary_type=qtype)
    loaded = load_gguf(path)
    ids = torch.randint(0, 258, (1, 9))
    assert torch.equal(loaded(ids), model(ids))
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert ("output.weight" in names) == (not model.config.tie_word_embeddings)


def test_loaded_model_fine_tunes(exported):
    _, path = exported
    model = load_gguf(path).train()
    tok = ByteTokenizer()
    ids = torch.tensor([tok.encode("ternary weights, eight-bit activations. ")])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(ids[:, :-1]).reshape(-1, 258), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_llama_cpp_converter_style_weights_load(exported, tmp_path):
    """llama.cpp's converter stores trits * scale in the TQ2_0 block scale and no .scale tensor."""
    model, path = exported
    dst = tmp_path / "converted.gguf"

    def scaled(name, t):
        if name.endswith(".weight") and t.tensor_type == gguf.GGMLQuantizationType.TQ2_0:
            scale = [x for x in src_tensors if x.name == name.replace(".weight", ".scale")][0].data[0]
            values = gguf.quants.dequantize(t.data, t.tensor_type) * np.float32(scale)
            return gguf.quants.quantize(values.astype(np.float32), t.tensor_type), t.tensor_type
        return None

    src_tensors = gguf.GGUFReader(str(path)).tensors
    rewrite(path, dst, drop_tensors=lambda n: n.endswith(".scale"), tensor_fn=scaled)
    loaded = load_gguf(dst)
    ids = torch.randint(0, 258, (1, 8))
    # the block scale is float16 there: logits match to that precision
    torch.testing.assert_close(loaded(ids), model(ids), rtol=0, atol=5e-2)


# ------------------------------------------------------------------------------------ bad files
def rewrite(src, dst, arch=None, fields=None, drop_tensors=lambda n: False, tensor_fn=lambda n, t: None):
    """Copy GGUF ``src`` to ``dst`` with another architecture, overridden fields or tensors."""
    r = gguf.GGUFReader(str(src))
    old_arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch or old_arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = (fields or {}).get(name, field.contents())
        key = name.replace(old_arch + ".", (arch or old_arch) + ".", 1)
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        vtype = gguf.GGUFValueType.STRING if isinstance(value, str) else field.types[0]
        w.add_key_value(key, value, vtype, sub_type=sub)
    for t in r.tensors:
        if drop_tensors(t.name):
            continue
        replaced = tensor_fn(t.name, t)
        if replaced is not None:
            w.add_tensor(t.name, replaced[0], raw_dtype=replaced[1])
        elif t.tensor_type == gguf.GGMLQuantizationType.F32:
            w.add_tensor(t.name, np.asarray(t.data).reshape(tuple(reversed([int(d) for d in t.shape]))))
        else:
            w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_truncated_and_corrupt_files_name_the_file(exported, tmp_path):
    _, path = exported
    data = path.read_bytes()
    for name, payload in (("truncated.gguf", data[: len(data) // 2]), ("header.gguf", data[:40]),
                          ("garbage.gguf", b"not a gguf file at all" * 10), ("empty.gguf", b"")):
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(ValueError, match=name):
            load_gguf(bad)
    with pytest.raises(OSError):
        load_gguf(tmp_path / "missing.gguf")


def test_unknown_architecture(exported, tmp_path):
    _, path = exported
    dst = rewrite(path, tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(ValueError, match=r"llama\.gguf.*architecture 'llama'"):
        load_gguf(dst)


@pytest.fixture
def no_model_build(monkeypatch):
    """Fail the test if load_gguf builds the model (allocates) before it refuses the file."""

    def refuse(*args, **kwargs):
        raise AssertionError("load_gguf built the model before checking the file")

    monkeypatch.setattr("bitmodels.gguf_io.BitLM", refuse)


@pytest.mark.parametrize("fields, drop, match", [
    ({"bitnet.feed_forward_length": 512}, None, r"blk\.0\.ffn_.*' has shape \(256,\), expected \(512,\)"),
    # corrupted sizes that would ask for gigabytes: refused from the tensor table, nothing allocated
    ({"bitnet.feed_forward_length": 12_845_568}, None,
     r"'blk\.0\.ffn_sub_norm\.weight' has shape \(256,\), expected \(12845568,\)"),
    ({"bitnet.block_count": 2007}, None, "'blk.2.attn_norm.weight' is missing"),
    ({"bitnet.embedding_length": 2 ** 31}, None, r"dimension_count' is 64, but the head size is 536870912"),
    ({"bitnet.embedding_length": 2 ** 31, "bitnet.rope.dimension_count": 2 ** 29}, None,
     r"'token_embd\.weight' has shape \(258, 256\), expected \(258, 2147483648\)"),
    ({"bitnet.attention.head_count_kv": 4}, None, "attn_k.weight' has shape"),
    ({"bitnet.block_count": 3}, None, "blk.2.attn_norm.weight' is missing"),
    ({}, "blk.1.attn_sub_norm.weight", "blk.1.attn_sub_norm.weight' is missing"),
    ({}, "blk.1.ffn_up.weight", "blk.1.ffn_up.weight' is missing"),
    ({"bitlab.tie_word_embeddings": False}, None, "'output.weight' is missing"),
    ({"bitnet.attention.head_count": 3}, None, "num_heads"),
    ({"bitnet.block_count": "two"}, None, "'bitnet.block_count' must be an integer >= 1, got 'two'"),
    ({"bitnet.block_count": 0}, None, "'bitnet.block_count' must be an integer >= 1"),
    ({"bitnet.attention.layer_norm_rms_epsilon": float("nan")}, None, "layer_norm_rms_epsilon' must be a positive"),
    # partial rotary: bitlab-run refuses it, so does load_gguf (the model would apply full rotary)
    ({"bitnet.rope.dimension_count": 0}, None, r"'bitnet\.rope\.dimension_count' is 0, but the head size is 64"),
    ({"bitnet.rope.dimension_count": 64007}, None, "'bitnet.rope.dimension_count' is 64007"),
    ({"bitnet.rope.dimension_count": 32}, None, "partial rotary is not supported"),
])
def test_mismatched_shapes_and_metadata(exported, tmp_path, no_model_build, fields, drop, match):
    _, path = exported
    dst = rewrite(path, tmp_path / "bad.gguf", fields=fields, drop_tensors=lambda n: n == drop)
    with pytest.raises(ValueError, match=match) as err:
        load_gguf(dst)
    assert "bad.gguf" in str(err.value)


@pytest.mark.parametrize("name, qtype, match", [
    ("blk.0.attn_norm.weight", "Q8_0", r"'blk\.0\.attn_norm\.weight' has type Q8_0, expected one of"),
    ("blk.1.ffn_gate.weight", "Q8_0", r"'blk\.1\.ffn_gate\.weight' has type Q8_0"),
])
def test_unsupported_tensor_types_are_refused(exported, tmp_path, no_model_build, name, qtype, match):
    _, path = exported

    def requantized(tname, t):
        if tname != name:
            return None
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        kind = getattr(gguf.GGMLQuantizationType, qtype)
        return gguf.quants.quantize(values.reshape(tuple(reversed([int(d) for d in t.shape]))), kind), kind

    dst = rewrite(path, tmp_path / "typed.gguf", tensor_fn=requantized)
    with pytest.raises(ValueError, match=match) as err:
        load_gguf(dst)
    assert "typed.gguf" in str(err.value)


def test_tensors_sharing_bytes_are_refused(exported, tmp_path, no_model_build):
    """Tensor infos pointing at the same bytes would let a small file describe a big model."""
    _, path = exported
    dst = tmp_path / "aliased.gguf"
    dst.write_bytes(path.read_bytes())
    r = gguf.GGUFReader(str(dst), "r+")
    tensors = {t.name: t for t in r.tensors}
    for name, t in tensors.items():
        if name.startswith("blk.1."):
            t.field.parts[-1][0] = tensors[name.replace("blk.1.", "blk.0.", 1)].field.parts[-1][0]
    r.data.flush()
    del r, tensors
    aliased = {t.name: t.data_offset for t in gguf.GGUFReader(str(dst)).tensors}
    assert aliased["blk.1.attn_q.weight"] == aliased["blk.0.attn_q.weight"]
    with pytest.raises(ValueError, match="aliased.gguf.*'blk.0.attn_norm.weight' and 'blk.1.attn_norm.weight' "
                                         "share bytes"):
        load_gguf(dst)


def test_fuzzed_files_load_or_raise_value_error(tmp_path):
    """Seeded random corruptions of a small file (bytes and 4/8-byte integers in the header and
    tensor data, truncations): each one loads or raises ValueError naming the file, nothing else
    (no MemoryError, RuntimeError, struct.error, ...)."""
    import random
    import warnings

    torch.manual_seed(0)
    model = BitLM(small(num_layers=1, max_position_embeddings=32)).eval()
    data = export_gguf(model, tmp_path / "small.gguf").read_bytes()
    header = {t.name: t for t in gguf.GGUFReader(str(tmp_path / "small.gguf")).tensors}
    header_end = min(int(t.data_offset) for t in header.values())
    rng = random.Random(4)  # this sequence includes a flip that made the old loader ask for 1 TB
    bad = tmp_path / "fuzz.gguf"
    outcomes = {"ok": 0, "ValueError": 0}
    for i in range(300):
        b = bytearray(data)
        kind = rng.choice(("byte", "byte", "int", "truncate"))
        # most mutations hit the header (metadata, tensor table), where a flip changes sizes
        pos = rng.randrange(header_end if rng.random() < 0.8 else len(b))
        if kind == "byte":
            b[pos] = rng.randrange(256)
        elif kind == "int":
            width = rng.choice((4, 8))
            value = rng.choice((0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 63, 2 ** 64 - 1, rng.randrange(2 ** 20)))
            b[pos:pos + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        else:
            del b[pos:]
        bad.write_bytes(bytes(b[:len(data) + 8]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy overflow warnings on corrupt values are fine
                load_gguf(bad, trainable=bool(i % 2))
            outcomes["ok"] += 1
        except ValueError as e:
            assert "fuzz.gguf" in str(e), (i, kind, pos, str(e))
            outcomes["ValueError"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"mutation {i} ({kind} at {pos}) raised {type(e).__name__}: {e}")
    assert outcomes["ValueError"] > 100 and outcomes["ok"] > 10, outcomes


def test_non_ternary_weights_are_refused(exported, tmp_path):
    _, path = exported

    def noisy(name, t):
        if name == "blk.0.attn_q.weight":
            values = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
            return values.astype(np.float16), gguf.GGMLQuantizationType.F16
        return None

    dst = rewrite(path, tmp_path / "float.gguf", tensor_fn=noisy)
    with pytest.raises(ValueError, match="float.gguf.*not ternary"):
        load_gguf(dst)

    def with_nan(name, t):  # ternary values times 0.5, one of them NaN
        if name == "blk.0.attn_q.weight":
            values = np.random.default_rng(1).integers(-1, 2, size=(256, 256)).astype(np.float32) * 0.5
            values[3, 7] = np.nan
            return values.astype(np.float16), gguf.GGMLQuantizationType.F16
        return None

    for trainable in (True, False):
        dst = rewrite(path, tmp_path / "nan.gguf", tensor_fn=with_nan)
        with pytest.raises(ValueError, match="nan.gguf.*'blk.0.attn_q.weight' holds NaN or Inf"):
            load_gguf(dst, trainable=trainable)


@pytest.mark.parametrize("config, match", [
    (small(ternary=False), "float twin"),
    (small(hidden_size=128, num_heads=2, num_kv_heads=2), "multiple of 256"),
    (small(quant_config=BitQuantConfig("per_channel", "int8", "per_channel")), "per_channel"),
])
def test_export_refuses_what_llama_cpp_cannot_run(tmp_path, config, match):
    out = tmp_path / "x.gguf"
    with pytest.raises(ValueError, match=match):
        export_gguf(BitLM(config), out)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="ternary_type"):
        export_gguf(BitLM(small()), out, ternary_type="Q4_0")
    with pytest.raises(ValueError, match="BitLM"):
        export_gguf(torch.nn.Linear(2, 2), out)


def test_auto_bit_model_from_pretrained_reads_gguf(exported):
    from bitmodels import AutoBitModel

    model, path = exported
    loaded = AutoBitModel.from_pretrained(str(path))
    ids = torch.randint(0, 258, (1, 9))
    assert torch.equal(loaded(ids), model(ids))
    with pytest.raises(NotImplementedError, match="only .gguf files"):  # upstream has no checkpoint format
        AutoBitModel.from_pretrained("checkpoint.pt")


def test_vocabulary_special_ids_and_non_finite_tensors_are_checked_at_load(exported, tmp_path):
    _, path = exported
    # The tokenizer's token list and bitnet.vocab_size must agree with token_embd.weight's rows.
    dst = rewrite(path, tmp_path / "vocab.gguf", fields={"bitnet.vocab_size": 300})
    with pytest.raises(ValueError, match="vocab.gguf: metadata key 'bitnet.vocab_size' is 300, but 'token_embd.weight' has"):
        load_gguf(dst)
    tokens = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.tokens"].contents()
    dst = rewrite(path, tmp_path / "tokens.gguf", fields={"tokenizer.ggml.tokens": tokens[:200]})
    with pytest.raises(ValueError, match="tokens.gguf: metadata key 'tokenizer.ggml.tokens' lists 200 tokens"):
        load_gguf(dst)
    # An end-of-sequence id outside the vocabulary would never occur: generate() would not stop.
    dst = rewrite(path, tmp_path / "eos.gguf", fields={"tokenizer.ggml.eos_token_id": 100000})
    with pytest.raises(ValueError, match="eos.gguf: metadata key 'tokenizer.ggml.eos_token_id' is 100000, outside"):
        load_gguf(dst)

    def inf_norm(name, t):
        if name == "output_norm.weight":
            values = np.asarray(t.data).reshape(-1).astype(np.float32).copy()
            values[0] = np.inf
            return values, gguf.GGMLQuantizationType.F32
        return None

    dst = rewrite(path, tmp_path / "inf.gguf", tensor_fn=inf_norm)
    with pytest.raises(ValueError, match="inf.gguf: tensor 'output_norm.weight' holds NaN or Inf"):
        load_gguf(dst)


def test_export_refuses_several_end_tokens(tmp_path):
    """A config with several EOS ids (transformers' list, kept by llama_to_bitlm) cannot go into GGUF's
    one tokenizer.ggml.eos_token_id without bitlab-run and llama.cpp stopping elsewhere than
    BitLM.generate: refused, naming the ids, nothing written."""
    model = BitLM(BitLMConfig(hidden_size=256, num_layers=1, num_heads=4, intermediate_size=256,
                              max_position_embeddings=32, eos_token_id=[257, 10]))
    with pytest.raises(ValueError, match=r"several end tokens \(eos_token_id=\(257, 10\)\).*set "
                                         r"model.config.eos_token_id to one"):
        export_gguf(model, tmp_path / "two_eos.gguf")
    assert not list(tmp_path.iterdir())

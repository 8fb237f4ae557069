"""Deployed Coset layers: PackedLinear, its state dict, both backends, bad input, model API."""

from __future__ import annotations

import io
import struct

import pytest
import torch
import torch.nn as nn

import lowbit
from coset import QLinear, QuantizationConfig, deploy_model, quantize_model
from coset.deploy import (LAYOUT_VERSION, TORCH_PATH_RTOL, PackedLinear, SavedLayer, deployable_config, layer_record,
                          read_layer_record)

FORMATS = [
    QuantizationConfig(lattice_type="D4", q=4, M=2),                       # fast path (table decode)
    deployable_config("E8", 16, 1),                                        # the tuned 4.2-bit format
    QuantizationConfig(lattice_type="E8", q=4, M=2, max_scaling_iterations=15),
    QuantizationConfig(lattice_type="Z2", q=16, M=1),                      # scalar block sums
]


def _ids(c):
    return f"{c.lattice_type}-q{c.q}-M{c.M}"


def _layer(config, in_f=37, out_f=11, bias=True, row_scale="qlinear"):
    torch.manual_seed(1)
    lin = nn.Linear(in_f, out_f, bias=bias)
    return lin, PackedLinear.from_linear(lin, config, row_scale=row_scale, name="fc")


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_native_and_torch_paths_agree_and_follow_the_decoded_weight(config):
    lin, layer = _layer(config)
    x = torch.randn(5, 37)
    y_native = layer(x)
    with lowbit.backend("torch"):
        y_torch = layer(x)
        w_torch = layer.decoded_weight()
    w = layer.decoded_weight()
    torch.testing.assert_close(w_torch, w, rtol=1e-6, atol=0)
    # The kernels' integer block sums are exact; the torch path sums the same terms in BLAS order.
    amax = x.abs().amax(dim=1, keepdim=True)
    xq = torch.clamp(torch.round(x / (amax / 127)), -127, 127) * (amax / 127)
    mag = xq.abs() @ w.abs().t()
    assert float(((y_torch - y_native).abs() - TORCH_PATH_RTOL * mag).max()) <= 1e-6
    # And the layer is x W^ up to the int8 activations (step max|x| / 127).
    ref = torch.nn.functional.linear(xq, w, lin.bias)
    torch.testing.assert_close(y_native, ref, rtol=1e-4, atol=1e-5)


@pytest.fixture
def e8_layer_and_reference():
    torch.manual_seed(3)
    layer = PackedLinear.from_weight(torch.randn(12, 40), torch.randn(12), deployable_config("E8", 16, 1),
                                     row_scale="rms", name="e8")
    x = torch.randn(3, 40)
    return layer, x, layer(x)


def test_torch_path_touches_neither_the_native_module_nor_numpy(e8_layer_and_reference, no_native_no_numpy):
    layer, x, y_native = e8_layer_and_reference
    with lowbit.backend("torch"):
        y = layer(x)
    torch.testing.assert_close(y, y_native, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("config", FORMATS[:2], ids=_ids)
def test_many_rows_split_over_threads_agree_with_the_torch_path(config):
    # 300 rows x 512 columns: several parallel chunks of 16-row panels, 4-row input tiles + 1.
    torch.manual_seed(5)
    layer = PackedLinear.from_weight(torch.randn(300, 509), torch.randn(300), config, row_scale="rms")
    x = torch.randn(5, 509)
    with lowbit.backend("cpp"):  # the C++ kernels, also when the suite runs with LOWBIT_BACKEND=torch
        y = layer(x)
        assert torch.equal(layer(x[3:4]), y[3:4])  # a row's result does not depend on the batch
    with lowbit.backend("torch"):
        y_torch = layer(x)
    torch.testing.assert_close(y, y_torch, rtol=1e-4, atol=1e-4)


def test_deployed_qlinear_uses_the_weights_qlinear_trained_with():
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    q = QLinear(64, 16, config)
    layer = q.deploy(name="fc")
    assert isinstance(layer, PackedLinear) and layer.layer_name == "fc"
    torch.testing.assert_close(layer.decoded_weight(), q.quantized_weight(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(PackedLinear.from_qlinear(q).decoded_weight(), layer.decoded_weight(), rtol=0, atol=0)


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_state_dict_holds_only_the_packed_form_and_reloads_bit_identically(config):
    _, layer = _layer(config)
    state = layer.state_dict()
    assert set(state) == {"codes", "t_code", "t_lengths", "row_scale", "bias", "_extra_state"}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = PackedLinear(37, 11, config)  # the same shape and config, empty codes
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(9, 37)
    assert torch.equal(fresh(x), layer(x))
    assert fresh.config == layer.config


def test_dtype_casts_keep_the_packed_form_exact():
    _, layer = _layer(QuantizationConfig(lattice_type="D4", q=4, M=2))
    x = torch.randn(3, 37)
    y = layer(x)
    layer.half()
    assert layer.row_scale.dtype == torch.float32 and layer.bias.dtype == torch.float32
    assert torch.equal(layer(x), y)
    assert layer(x.half()).dtype == torch.float16


def test_bits_per_weight_counts_every_side_byte():
    torch.manual_seed(0)
    w = torch.randn(256, 4096)  # rows as long as a real layer's: the row scales cost 32 / 4096 bits
    layer = PackedLinear.from_weight(w, None, deployable_config("E8", 16, 1), row_scale="rms")
    codes_bits = 4.0
    side = 8.0 * layer.side_bytes() / w.numel()
    assert layer.bits_per_weight() == pytest.approx(codes_bits + side)
    assert 0.2 < side < 0.25  # T's Huffman code (about 0.21 bits per weight) + scales + config
    assert layer.memory_bytes() <= w.numel() * 4 / 7


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_every_in_memory_t_form_gives_the_same_outputs(config):
    import copy

    from coset._deploy_torch import unpack_t

    _, layer = _layer(config, in_f=300, out_f=9)
    t = unpack_t(layer.t_packed, layer.t_bits, layer.t_escapes, layer.blocks).to(torch.uint8).numpy()
    t[0, :5] = [0, 1, 2, 3, config.max_t()]  # literals and escapes at every width
    layer._set_t(t, layer.blocks, layer.codes.device, bits=4)
    x = torch.randn(3, 300)
    y, w = layer(x), layer.decoded_weight()
    with lowbit.backend("torch"):
        y_torch = layer(x)
    for bits in (1, 2):
        other = copy.deepcopy(layer)
        other._set_t(t, layer.blocks, layer.codes.device, bits=bits)
        assert other.t_bits == bits and other.t_escapes.numel() == int((t >= 2**bits - 1).sum())
        assert torch.equal(other(x), y) and torch.equal(other(x[:1]), layer(x[:1]))
        assert torch.equal(other.decoded_weight(), w)
        with lowbit.backend("torch"):
            assert torch.equal(other(x), y_torch)


def test_qlinear_scaled_d4_holds_t_in_one_bit_and_a_seventh_of_float32():
    # With QLinear's scale almost every D4 block keeps T = 0: T is held as 1 bit per block plus
    # the rare escapes, and the layer the kernels read is at most 1/7 of its float32 bytes.
    torch.manual_seed(0)
    w = torch.randn(64, 4096)
    layer = PackedLinear.from_weight(w, None, QuantizationConfig(lattice_type="D4", q=4, M=2))
    assert layer.t_bits == 1
    expect = (layer.codes.numel() + layer.t_packed.numel() + layer.t_escapes.numel()
              + 4 * layer.t_escape_start.numel() + 4 * layer.row_scale.numel())
    assert layer.memory_bytes() == expect
    assert layer.memory_bytes() <= w.numel() * 4 / 7
    assert layer.resident_bytes() == expect + layer.t_code.numel() + 16


def test_bad_weights_and_inputs_raise_value_errors_naming_the_layer():
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    w = torch.randn(4, 8)
    w[2, 3] = float("nan")
    with pytest.raises(ValueError, match="fc1: weight contains NaN or Inf"):
        PackedLinear.from_weight(w, None, config, name="fc1")
    with pytest.raises(ValueError, match="fc1: .*with_dither is not supported"):
        PackedLinear.from_weight(torch.randn(4, 8), None, config.replace(with_dither=True), name="fc1")
    with pytest.raises(ValueError, match="fc1: .*exceeds 15"):
        PackedLinear.from_weight(torch.randn(4, 8), None, config.replace(max_scaling_iterations=20), name="fc1")
    layer = PackedLinear.from_weight(torch.randn(4, 8), torch.zeros(4), config, name="fc1")
    with pytest.raises(ValueError, match="fc1: input has 7 features, expected 8"):
        layer(torch.randn(2, 7))
    with pytest.raises(ValueError, match="fc1: .*input contains NaN or Inf"):
        layer(torch.full((1, 8), float("inf")))
    with pytest.raises(ValueError, match="fc1"):
        layer(torch.randn(2, 8, device="meta"))


def test_corrupt_state_dicts_raise_value_errors():
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = PackedLinear.from_weight(torch.randn(6, 20), torch.zeros(6), config, name="fc2")
    good = layer.state_dict()

    def load(**changes):
        state = dict(good)
        state.update(changes)
        PackedLinear(20, 6, config, name="fc2").load_state_dict(state)

    with pytest.raises(ValueError, match="fc2: 'codes' has shape"):
        load(codes=good["codes"][:, :-1])
    with pytest.raises(ValueError, match="fc2: 't_code'.*truncated"):
        load(t_code=good["t_code"][: good["t_code"].numel() // 2])
    with pytest.raises(ValueError, match="fc2: 'row_scale' must be finite"):
        load(row_scale=torch.full((6,), float("nan")))
    with pytest.raises(ValueError, match="fc2: packed state dict is for a 20 -> 6 layer"):
        PackedLinear(24, 6, config, name="fc2").load_state_dict(good)
    with pytest.raises(ValueError, match="fc2: packed state dict lacks 'bias'"):
        state = dict(good)
        del state["bias"]
        PackedLinear(20, 6, config, name="fc2").load_state_dict(state)
    bad_t = torch.tensor([1] * 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="fc2: 't_code'.*prefix code"):
        load(t_lengths=bad_t)
    with pytest.raises(ValueError, match="fc2: packed state dict has an invalid config"):
        extra = good["_extra_state"].clone()
        extra[2] = 1  # q
        load(_extra_state=extra)


def _format1_extra_state(layer):
    """``_extra_state`` exactly as format 1 (the previous version's get_extra_state) saved it."""
    import dataclasses

    return {"version": 1, "config": dataclasses.asdict(layer.config), "in_features": layer.in_features,
            "out_features": layer.out_features, "bias": layer.bias is not None}


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_extra_state_is_a_30_byte_record_and_every_saved_byte_is_counted(config):
    _, layer = _layer(config, in_f=256, out_f=10)
    extra = layer.get_extra_state()
    assert extra.dtype == torch.uint8 and extra.shape == (30,) and int(extra[0]) == LAYOUT_VERSION == 2
    assert read_layer_record(extra) == SavedLayer(config, 256, 10, True)
    state = layer.state_dict()
    saved = sum(v.numel() * v.element_size() for k, v in state.items() if k != "bias")
    assert saved == layer.codes.numel() + layer.side_bytes()  # nothing saved goes uncounted
    assert layer.bits_per_weight() == 8.0 * saved / (256 * 10)


@pytest.mark.parametrize("fields", [dict(dither_seed=2**64 - 1), dict(disable_scaling=True, beta=1.0, dither_seed=7),
                                    dict(disable_overload_protection=True, beta=0.1 + 1e-17 * 3, alpha=1 / 3)])
def test_layer_record_keeps_every_config_field_exactly(fields):
    config = QuantizationConfig(lattice_type="E8", q=16, M=1, beta=0.0123456789012345, alpha=0.25,
                                max_scaling_iterations=15).replace(**fields)
    record = layer_record(config, 2**32 - 1, 1, False)
    assert record.numel() == (38 if config.dither_seed else 30)
    assert read_layer_record(record) == SavedLayer(config, 2**32 - 1, 1, False)
    with pytest.raises(ValueError, match="layer_record: in_features must be an integer in"):
        layer_record(config, 2**32, 1, False)


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_state_dicts_saved_with_the_format_1_dict_still_load_bit_identically(config):
    _, layer = _layer(config)
    old = dict(layer.state_dict(), _extra_state=_format1_extra_state(layer))
    buf = io.BytesIO()
    torch.save(old, buf)
    buf.seek(0)
    old = torch.load(buf)
    fresh = PackedLinear(37, 11, config, name="fc")
    fresh.load_state_dict(old)
    x = torch.randn(4, 37)
    assert torch.equal(fresh(x), layer(x))
    rebuilt = PackedLinear.from_state_dict(old, name="fc")
    assert rebuilt.config == config and torch.equal(rebuilt(x), layer(x))
    # Saved again, it holds the binary record and reloads the same.
    assert torch.equal(fresh.state_dict()["_extra_state"], layer.get_extra_state())
    assert torch.equal(PackedLinear.from_state_dict(fresh.state_dict())(x), layer(x))


def test_from_state_dict_rebuilds_the_recorded_layer():
    torch.manual_seed(2)
    layer = PackedLinear.from_weight(torch.randn(5, 19), None, deployable_config("D4", 4, 2), row_scale="rms")
    rebuilt = PackedLinear.from_state_dict(layer.state_dict(), name="proj")
    assert (rebuilt.in_features, rebuilt.out_features, rebuilt.bias) == (19, 5, None)
    assert rebuilt.layer_name == "proj" and rebuilt.config == layer.config
    x = torch.randn(2, 19)
    assert torch.equal(rebuilt(x), layer(x))
    with pytest.raises(ValueError, match="proj: packed state dict lacks '_extra_state'"):
        PackedLinear.from_state_dict({"codes": layer.codes}, name="proj")


def test_corrupt_or_unknown_config_records_raise_value_errors_naming_the_layer():
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = PackedLinear.from_weight(torch.randn(6, 20), torch.zeros(6), config, name="fc2")
    good = layer.state_dict()
    record = good["_extra_state"]

    def load(extra):
        PackedLinear(20, 6, config, name="fc2").load_state_dict(dict(good, _extra_state=extra))

    def changed(i, v):
        r = record.clone()
        r[i] = v
        return r

    cases = [
        (changed(0, 3), r"fc2: .*config record has format version 3; this version reads format 1 \(a dict\) and 2"),
        (changed(0, 0), "fc2: .*format version 0"),
        (record[:29], "fc2: .*config record has 29 bytes, format 2 needs 30 .truncated or corrupt"),
        (torch.cat([record, torch.zeros(1, dtype=torch.uint8)]), "fc2: .*has 31 bytes, format 2 needs 30"),
        (changed(5, int(record[5]) | 32), "fc2: .*has 30 bytes, format 2 needs 38"),
        (torch.cat([changed(5, int(record[5]) | 32), torch.zeros(8, dtype=torch.uint8)]),
         "fc2: .*flags a dither seed of 0"),
        (record[:0], "fc2: .*config record is empty"),
        (changed(1, 3), r"fc2: .*lattice id 3 \(0: Z2, 1: D4, 2: E8; corrupt\)"),
        (changed(5, int(record[5]) | 128), "fc2: .*unknown flag bits 0x80"),
        (changed(3, 9), "fc2: packed state dict has an invalid config: M"),
        (changed(5, int(record[5]) & ~1), "fc2: .*with_tie_dither=True"),  # a config the kernels refuse
        (record.to(torch.int32), "fc2: .*must be a 1-D uint8 tensor, got torch.int32"),
        (record.reshape(2, 15), r"fc2: .*must be a 1-D uint8 tensor, got torch.uint8 of shape \(2, 15\)"),
        ("D4 q=4 M=2", "fc2: .*'_extra_state' must be a uint8 tensor .format 2. or a dict .format 1., got str"),
        (dict(_format1_extra_state(layer), version=2), "fc2: packed state dict has layout version 2 in a dict"),
        (dict(_format1_extra_state(layer), in_features="20"), "fc2: .*'in_features' must be a positive integer"),
        (dict(_format1_extra_state(layer), config=dict(_format1_extra_state(layer)["config"], q=1)),
         "fc2: packed state dict has an invalid config"),
        (dict(_format1_extra_state(layer), config=dict(_format1_extra_state(layer)["config"], colour=1)),
         "fc2: packed state dict has an invalid config"),
    ]
    beta_nan = record.clone()
    beta_nan[14:22] = torch.frombuffer(bytearray(struct.pack("<d", float("nan"))), dtype=torch.uint8)
    cases.append((beta_nan, "fc2: packed state dict has an invalid config: beta"))
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            load(extra)
    fresh = PackedLinear(20, 6, config, name="fc2")
    fresh.load_state_dict(good)  # the untouched record still loads
    assert torch.equal(fresh.codes, layer.codes)


def test_from_state_dict_checks_the_recorded_shape_before_allocating_the_layer():
    # A corrupt record's feature counts (up to 2**32 - 1) must not size an allocation: the saved
    # codes' shape is checked first (else a record of 2**32 - 1 outputs allocates ~86 GB).
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    layer = PackedLinear.from_weight(torch.randn(6, 20), torch.zeros(6), config)
    good = layer.state_dict()
    for lo, hi, message in ((10, 14, r"fc2: 'codes' has shape \(6, 10\), the record's 20 -> 4294967295 layer needs "
                                     r"\(4294967295, 10\)"),
                            (6, 10, r"fc2: 'codes' has shape \(6, 10\), the record's 4294967295 -> 6 layer needs "
                                    r"\(6, 2147483648\)")):
        record = good["_extra_state"].clone()
        record[lo:hi] = 255
        with pytest.raises(ValueError, match=message):
            PackedLinear.from_state_dict(dict(good, _extra_state=record), name="fc2")
    with pytest.raises(ValueError, match="fc2: packed state dict lacks 'codes'"):
        PackedLinear.from_state_dict({k: v for k, v in good.items() if k != "codes"}, name="fc2")


def test_quantize_model_and_deploy_model_swap_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 3)))
    x = torch.randn(4, 30)
    config = QuantizationConfig(lattice_type="D4", q=4, M=2)
    out = quantize_model(model, config, skip=["2.1"])
    assert out is model
    assert isinstance(model[0], QLinear) and isinstance(model[2][0], QLinear)
    assert type(model[2][1]) is nn.Linear  # skipped by name; 30 is padded to 32 inside QLinear
    y_q = model(x)
    deploy_model(model)
    assert isinstance(model[0], PackedLinear) and model[0].layer_name == "0"
    assert isinstance(model[2][0], PackedLinear) and type(model[2][1]) is nn.Linear
    torch.testing.assert_close(model(x), y_q, rtol=0.05, atol=0.02)  # int8 activations only
    by_predicate = quantize_model(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), config,
                                  skip=lambda name, m: m.out_features == 2)
    assert isinstance(by_predicate[0], QLinear) and type(by_predicate[1]) is nn.Linear
    with pytest.raises(ValueError, match="skip"):
        quantize_model(nn.Sequential(nn.Linear(8, 8)), config, skip=[3])


def test_loading_a_state_dict_of_another_config_is_refused():
    _, e8 = _layer(deployable_config("E8", 16, 1))
    d4 = PackedLinear(37, 11, QuantizationConfig(lattice_type="D4", q=4, M=2), name="fc3")
    before = d4.state_dict()
    with pytest.raises(ValueError, match=r"fc3: packed state dict has config \(lattice_type='E8'.*this layer has "
                                         r"\(lattice_type='D4'"):
        d4.load_state_dict(e8.state_dict())
    assert d4.config.lattice_type == "D4" and torch.equal(d4.codes, before["codes"])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_packed_forward_passes_gradients_to_its_input(backend):
    torch.manual_seed(1)
    q = QLinear(37, 11, QuantizationConfig(lattice_type="D4", q=4, M=2))
    layer = q.deploy(name="fc").eval()
    x = torch.randn(5, 37)
    with lowbit.backend(backend):
        y_plain = layer(x)
        xg = x.clone().requires_grad_(True)
        y = layer(xg)
        assert torch.equal(y.detach(), y_plain)  # the output is the packed forward's, bit for bit
        g = torch.randn(5, 11)
        y.backward(g)
        torch.testing.assert_close(xg.grad, g @ layer.decoded_weight(), rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            assert not layer(xg).requires_grad
    # through a model: an earlier layer receives a gradient
    first = torch.nn.Linear(8, 37)
    model = torch.nn.Sequential(first, layer)
    model(torch.randn(3, 8)).sum().backward()
    assert first.weight.grad is not None and bool(first.weight.grad.abs().sum() > 0)


def test_qlinear_eval_passes_gradients_to_its_input():
    q = QLinear(16, 4, QuantizationConfig(lattice_type="D4", q=4, M=2)).eval()
    x = torch.randn(3, 16, requires_grad=True)
    g = torch.randn(3, 4)
    q(x).backward(g)
    torch.testing.assert_close(x.grad, g @ q.quantized_weight())


# Every valid config has a deployed form: q not a power of two (codes in ceil(log2 q) bits, 3-bit
# ones straddling bytes) and configs whose integer decode exceeds the int8 kernels' 63 (the wide
# int32 path). (lattice, q, M, the largest |w|)
OTHER_FORMATS = [("D4", 3, 2, 12), ("E8", 5, 1, 10), ("Z2", 6, 2, 21), ("D4", 6, 2, 42), ("Z2", 3, 4, 40),
                 ("E8", 12, 1, 24), ("E8", 7, 2, 112), ("D4", 5, 3, 155), ("D4", 4, 4, 340), ("E8", 16, 2, 544),
                 ("Z2", 16, 2, 136), ("Z2", 9, 3, 364)]


def _other(lattice, q, M):
    return QuantizationConfig(lattice_type=lattice, q=q, M=M, beta=3.3 / q ** M, alpha=0.25,
                              max_scaling_iterations=15)


@pytest.mark.parametrize("lattice,q,M,bound", OTHER_FORMATS, ids=lambda v: str(v))
def test_every_config_deploys_reloads_bit_identically_and_follows_the_decoded_weight(lattice, q, M, bound):
    from lowbit._native import coset_deploy

    config = _other(lattice, q, M)
    assert coset_deploy.weight_bound(config.native()) == bound
    torch.manual_seed(q * 10 + M)
    in_f, out_f = 203, 13
    layer = PackedLinear.from_weight(torch.randn(out_f, in_f), torch.randn(out_f), config, row_scale="rms",
                                     name="fc")
    # Stored bits: ceil(log2 q) per code, each row rounded up to a byte.
    bits = (q - 1).bit_length()
    assert layer.codes.shape == (out_f, -(-layer.blocks * M * config.d * bits // 8))
    assert layer.bits_per_weight() == pytest.approx(8.0 * (layer.codes.numel() + layer.side_bytes()) / (in_f * out_f))
    # Round trip: a fresh layer loaded from the saved state dict gives the same bits.
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = PackedLinear(in_f, out_f, config, name="fc")
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(6, in_f) * 3
    with lowbit.backend("cpp"):
        y = layer(x)
        assert torch.equal(fresh(x), y)
        assert torch.equal(fresh.codes, layer.codes)
        w = layer.decoded_weight().double()
    # Against the packed_decode reference: exact integer block sums, so only the float epilogue
    # rounds: (blocks / 16 + 12) * 2^-24 of the sum of magnitudes (docs/coset.md, Kernels).
    amax = x.abs().amax(dim=1, keepdim=True)
    xq = (torch.clamp(torch.round(x / (amax / 127)), -127, 127) * (amax / 127)).double()
    ref = xq @ w.t() + layer.bias.double()
    mag = xq.abs() @ w.abs().t() + layer.bias.double().abs()
    tol = (layer.blocks / 16 + 12) * 2.0 ** -24 * mag
    assert bool(((y.double() - ref).abs() <= tol).all())
    # The PyTorch twin decodes the same integers and agrees within TORCH_PATH_RTOL.
    with lowbit.backend("torch"):
        y_torch = layer(x)
        torch.testing.assert_close(layer.decoded_weight(), w.float(), rtol=1e-6, atol=0)
    assert bool(((y_torch.double() - y.double()).abs() <= TORCH_PATH_RTOL * mag + 1e-6).all())


def test_codes_out_of_range_in_a_state_dict_raise_value_errors():
    config = _other("D4", 3, 2)  # 2-bit codes: the value 3 is not a code
    layer = PackedLinear.from_weight(torch.randn(5, 16), None, config, row_scale="rms", name="fc4")
    state = dict(layer.state_dict())
    codes = state["codes"].clone()
    codes[3, 1] = 0xFF  # four 2-bit fields of value 3
    state["codes"] = codes
    with pytest.raises(ValueError, match=r"fc4: 'codes' holds a code >= q=3 \(row 3"):
        PackedLinear(16, 5, config, bias=False, name="fc4").load_state_dict(state)
    # 3-bit codes (q = 6): a value 7 straddling two bytes
    config6 = _other("E8", 6, 1)
    layer6 = PackedLinear.from_weight(torch.randn(2, 16), None, config6, row_scale="rms", name="fc5")
    state6 = dict(layer6.state_dict())
    codes6 = state6["codes"].clone()
    codes6[1, 0] |= 0xC0  # code 2 of row 1 occupies bits 6..8
    codes6[1, 1] |= 0x01
    state6["codes"] = codes6
    with pytest.raises(ValueError, match=r"fc5: 'codes' holds a code >= q=6 \(row 1"):
        PackedLinear(16, 2, config6, bias=False, name="fc5").load_state_dict(state6)


# ---- found by a fresh-eyes review ------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("config", FORMATS + [_other("D4", 4, 4), _other("D4", 3, 2)], ids=_ids)
def test_an_empty_batch_gives_an_empty_output(config, backend):
    # batch 0 took the fused small-batch GEMV and crashed (segfault) on AVX-512 VBMI CPUs
    _, layer = _layer(config, in_f=64, out_f=48)
    with lowbit.backend(backend):
        assert layer(torch.randn(0, 64)).shape == (0, 48)
        assert layer(torch.randn(2, 0, 64)).shape == (2, 0, 48)


def test_huge_finite_weights_deploy_with_their_scale():
    # The row rms is taken in float64: rows of 1e20 (whose float32 rms overflowed before) and up to
    # float32's largest values deploy like the same rows at unit scale, scaled.
    torch.manual_seed(4)
    base = torch.randn(4, 8)
    for magnitude in (1e20, 1e37):
        for row_scale in ("qlinear", "rms"):
            unit = PackedLinear.from_weight(base, None, FORMATS[0], row_scale=row_scale)
            big = PackedLinear.from_weight(base * magnitude, None, FORMATS[0], row_scale=row_scale, name="big")
            assert torch.equal(big.codes, unit.codes)
            torch.testing.assert_close(big.decoded_weight().double() / magnitude, unit.decoded_weight().double(),
                                       rtol=1e-5, atol=0)


def test_model_api_replaces_a_bare_layer_keeps_shared_layers_shared_and_refuses_unknown_skip_names():
    cfg = FORMATS[0]
    q = quantize_model(nn.Linear(8, 4), cfg)
    assert isinstance(q, QLinear)
    assert isinstance(deploy_model(q), PackedLinear)
    shared = nn.Linear(8, 8)
    model = quantize_model(nn.Sequential(shared, nn.ReLU(), shared), cfg)
    assert isinstance(model[0], QLinear) and model[0] is model[2]
    model = deploy_model(model)
    assert isinstance(model[0], PackedLinear) and model[0] is model[2]
    with pytest.raises(ValueError, match=r"skip: no layer named 'fc2'"):
        quantize_model(nn.Sequential(nn.Linear(8, 8)), cfg, skip=["fc2"])
    with pytest.raises(ValueError, match=r"skip: no layer named 'head'"):
        deploy_model(quantize_model(nn.Sequential(nn.Linear(8, 8)), cfg), skip="head")


def test_skip_names_a_subtree_and_a_shared_layer_stays_one_module_either_way():
    cfg = FORMATS[0]

    def model():
        shared = nn.Linear(8, 8)
        m = nn.Module()
        m.enc = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
        m.head, m.tied, m.out = shared, shared, nn.Linear(8, 4)
        return m

    m = quantize_model(model(), cfg, skip="enc")  # a container: every layer under it is kept
    assert type(m.enc[0]) is nn.Linear and type(m.enc[1]) is nn.Linear and isinstance(m.out, QLinear)
    for name in ("head", "tied"):  # either name of the shared layer keeps the one module
        m = quantize_model(model(), cfg, skip=name)
        assert type(m.head) is nn.Linear and m.head is m.tied, name
    m = quantize_model(model(), cfg, skip=lambda n, mod: n == "tied")
    assert type(m.head) is nn.Linear and m.head is m.tied
    m = quantize_model(model(), cfg)
    for name in ("head", "tied"):
        d = deploy_model(quantize_model(model(), cfg), skip=name)
        assert isinstance(d.head, QLinear) and d.head is d.tied and isinstance(d.out, PackedLinear), name


def test_model_swaps_keep_frozen_parameters_hooks_and_the_training_flag():
    cfg = FORMATS[0]
    frozen, live = nn.Linear(8, 8), nn.Linear(8, 4)
    frozen.requires_grad_(False)
    calls = []
    live.register_forward_hook(lambda mod, inp, out: calls.append("fwd"))
    live.register_forward_pre_hook(lambda mod, inp: calls.append("pre"))
    m = quantize_model(nn.Sequential(frozen, nn.ReLU(), live).eval(), cfg)
    assert not m[0].weight.requires_grad and not m[0].bias.requires_grad
    assert m[2].weight.requires_grad and not m[2].training
    m(torch.randn(2, 8))
    assert calls == ["pre", "fwd"]
    d = deploy_model(m)
    calls.clear()
    d(torch.randn(2, 8))
    assert calls == ["pre", "fwd"]


def test_eval_mode_qlinear_uses_its_cache_and_still_passes_the_gradient_to_the_weight():
    torch.manual_seed(0)
    q = QLinear(16, 4, FORMATS[0]).eval()
    x = torch.randn(3, 16)
    y = q(x)
    y.sum().backward()
    assert q.weight.grad is not None and q.weight.grad.abs().sum() > 0  # as nn.Linear in eval mode
    torch.testing.assert_close(q.weight.grad, torch.ones(3, 4).t() @ x, rtol=0, atol=0)  # straight through
    with torch.no_grad():
        assert torch.equal(y.detach(), q(x))  # the same bits as the cached forward


def test_partial_checkpoints_load_with_strict_false_and_report_the_deployed_keys_missing():
    cfg = FORMATS[0]
    model = deploy_model(quantize_model(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), cfg))
    before = model[2].state_dict()
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("2.")}
    result = model.load_state_dict(partial, strict=False)
    assert set(result.missing_keys) == {"2." + k for k in before} and not result.unexpected_keys
    assert all(torch.equal(v, model[2].state_dict()[k]) for k, v in before.items() if isinstance(v, torch.Tensor))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"2\.codes\""):
        model.load_state_dict(partial)  # strict: PyTorch's own error
    half = dict(partial, **{"2.codes": before["codes"]})  # a packed form only partly there
    with pytest.raises(ValueError, match=r"packed state dict lacks"):
        model.load_state_dict(half, strict=False)


def test_deploying_a_meta_weight_is_a_value_error_naming_the_layer():
    q = QLinear(8, 4, FORMATS[0], device="meta")
    with pytest.raises(ValueError, match=r"fc: the weight is on the meta device"):
        q.deploy(name="fc")
    with pytest.raises(ValueError, match=r"^0: the weight is on the meta device"):
        deploy_model(nn.Sequential(q))


def test_small_api_errors_and_discoverability():
    import coset

    with pytest.raises(ValueError, match="lattice_type must be 'Z2', 'D4' or 'E8', got 'A2'"):
        deployable_config("A2", 4, 1)
    with pytest.raises(ValueError, match=r"2-D tensor \(out_features, in_features\), got shape \(4, 8, 2\)"):
        PackedLinear.from_weight(torch.randn(4, 8, 2), None, FORMATS[0])
    assert {"PackedLinear", "QLinear", "quantize_model", "deploy_model", "deployable_config"} <= set(dir(coset))
    with pytest.warns(UserWarning, match="does not reproduce quantize_activations=True"):
        QLinear(8, 4, FORMATS[0], quantize_activations=True).deploy()


def _with_unused_bit_set(layer, sd):
    """sd's T stream with one of its unused last bits set (still a valid stream), or None."""
    fresh = PackedLinear(layer.in_features, layer.out_features, layer.config, name="fc")
    for bit in range(7, -1, -1):
        trial = sd["t_code"].clone()
        if trial[-1] & (1 << bit):
            continue
        trial[-1] |= 1 << bit
        try:
            fresh.load_state_dict(dict(sd, t_code=trial))
        except ValueError:
            continue  # a bit the stream uses
        return trial
    return None


@pytest.mark.parametrize("config", FORMATS[:2], ids=_ids)
def test_the_saved_t_stream_is_rebuilt_not_held_twice(config):
    for out_f in (64, 63, 61, 59, 57):
        _, layer = _layer(config, in_f=260, out_f=out_f, row_scale="rms")
        sd = layer.state_dict()
        odd = _with_unused_bit_set(layer, sd)
        if odd is not None:
            break
    assert odd is not None, "no shape left unused bits in the T stream"
    assert sd["t_code"].numel() > 0 and layer.t_code.numel() == 0
    assert layer.resident_bytes() == layer.memory_bytes() + 16
    fresh = PackedLinear(260, out_f, config, name="fc")
    fresh.load_state_dict(sd)
    assert fresh.t_code.numel() == 0 and torch.equal(fresh.state_dict()["t_code"], sd["t_code"])
    assert fresh.bits_per_weight() == layer.bits_per_weight()
    # a stream whose unused last bits are set cannot be rebuilt: it is kept and saved as loaded
    fresh.load_state_dict(dict(sd, t_code=odd))
    assert torch.equal(fresh.state_dict()["t_code"], odd)
    assert fresh.resident_bytes() == fresh.memory_bytes() + 16 + odd.numel()
    x = torch.randn(3, 260)
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("config", FORMATS, ids=_ids)
def test_rows_whose_activation_scale_rounds_to_zero_give_the_bias_on_both_paths(config):
    # max|x| / 127 rounds to 0 in float32 below about 1.8e-43 (subnormal inputs): such a row
    # quantizes to zeros (deploy.h), never x / 0 = inf or NaN cast to int8.
    lin, layer = _layer(config, bias=True)
    x = torch.zeros(3, 37)
    x[0, 3] = 1e-44
    x[0, 9] = -3e-45
    x[1, 0] = 1.0
    x[2, 5] = 1e-38  # small but representable: its scale is a normal number
    for backend in ("cpp", "torch"):
        with lowbit.backend(backend):
            y = layer(x)
        assert bool(torch.isfinite(y).all()), backend
        torch.testing.assert_close(y[0], lin.bias.detach(), rtol=0, atol=0)
        assert not torch.equal(y[1], lin.bias.detach())


# ---- a T per group of 4 D4 blocks (t_group=4) ----

def _q4_0_relative_mse(w: torch.Tensor) -> float:
    """llama.cpp's Q4_0 (ggml-quants.c quantize_row_q4_0_ref: per 32 weights d = max / -8 with max the
    signed value of largest magnitude, q = clamp(trunc(x / d + 8.5), 0, 15), 4.5 bits per weight; d
    stored as float16) on rows of w, as the relative MSE of its dequantized weights."""
    x = w.reshape(-1, 32).double()
    idx = x.abs().argmax(dim=1, keepdim=True)
    mx = x.gather(1, idx)
    d = (mx / -8).half().double()
    inv = torch.where(d != 0, 1 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc(x * inv + 8.5), 0, 15)
    deq = (q - 8) * d
    return float(((deq - x) ** 2).mean() / (x ** 2).mean())


def test_group_t_layer_reloads_bit_identically_and_both_paths_agree():
    config = deployable_config("D4", 4, 2, t_group=4)
    torch.manual_seed(5)
    lin = nn.Linear(72, 13)  # 72 inputs: padded to 80 (5 groups of 16)
    layer = PackedLinear.from_linear(lin, config, row_scale="rms", name="g", t_group=4)
    assert (layer.t_group, layer.blocks, layer.t_units) == (4, 20, 5)
    assert "t_group=4" in repr(layer)
    x = torch.randn(6, 72)
    y = layer(x)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    assert set(sd) == {"codes", "t_code", "t_lengths", "row_scale", "bias", "_extra_state"}
    assert read_layer_record(sd["_extra_state"]).t_group == 4
    back = PackedLinear.from_state_dict(sd, name="g")
    assert back.t_group == 4 and torch.equal(back(x), y)
    fresh = PackedLinear(72, 13, config, name="g", t_group=4)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh(x), y)
    # A layer with a T per block cannot take it (and says why).
    with pytest.raises(ValueError, match="t_group=4"):
        PackedLinear(72, 13, config, name="g").load_state_dict(sd)
    # The PyTorch path decodes the same weights (each group's T for its 4 blocks).
    w = layer.decoded_weight()
    with lowbit.backend("torch"):
        torch.testing.assert_close(layer.decoded_weight(), w, rtol=1e-6, atol=0)
        y_torch = layer(x)
    amax = x.abs().amax(dim=1, keepdim=True)
    xq = torch.clamp(torch.round(x / (amax / 127)), -127, 127) * (amax / 127)
    mag = xq.abs() @ w.abs().t()
    assert float(((y_torch - y).abs() - TORCH_PATH_RTOL * mag).max()) <= 1e-6
    torch.testing.assert_close(y, torch.nn.functional.linear(xq, w, lin.bias), rtol=1e-4, atol=1e-5)


def test_group_t_weights_share_one_scale_per_16_and_beat_q4_0_in_fewer_bits():
    config = deployable_config("D4", 4, 2, t_group=4)
    assert config.alpha == 1.0 / 6.0 and config.max_scaling_iterations == 15
    torch.manual_seed(0)
    w = torch.randn(256, 1024)
    layer = PackedLinear.from_weight(w, None, config, row_scale="rms", name="g", t_group=4)
    per_block = PackedLinear.from_weight(w, None, deployable_config("D4", 4, 2), row_scale="rms", t_group=1)
    dec = layer.decoded_weight()
    # Every group of 16 weights is row_scale * scale(T) times integers: one scale per group.
    ratio = (dec / layer.row_scale[:, None]).reshape(256, 64, 16)
    from coset._deploy_torch import scale_table

    scales = scale_table(config, torch.device("cpu"))
    ints = ratio[..., None] / scales  # (rows, groups, 16, T)
    whole = ((ints - ints.round()).abs() < 1e-4).all(dim=2)  # (rows, groups, T): the T that fits the group
    assert bool(whole.any(dim=2).all())
    rel = float(((dec - w) ** 2).mean() / (w ** 2).mean())
    q4_0 = _q4_0_relative_mse(w)
    assert rel < q4_0 and layer.bits_per_weight() < 4.5, (rel, q4_0, layer.bits_per_weight())
    # A quarter of the T values: fewer side bits than a T per block; memory below 1/7 of float32.
    assert layer.bits_per_weight() < per_block.bits_per_weight()
    assert layer.memory_bytes() * 7 < 4 * w.numel()


def test_group_t_is_refused_where_it_cannot_run():
    lin = nn.Linear(32, 4)
    with pytest.raises(ValueError, match="fc: t_group=4 .* is for D4"):
        PackedLinear.from_linear(lin, deployable_config("E8", 16, 1), row_scale="rms", name="fc", t_group=4)
    with pytest.raises(ValueError, match="fc: t_group must be 1 or 4"):
        PackedLinear.from_linear(lin, QuantizationConfig(lattice_type="D4", q=4, M=2), name="fc", t_group=2)
    with pytest.raises(ValueError, match="int8"):
        PackedLinear(32, 4, QuantizationConfig(lattice_type="D4", q=4, M=4, max_scaling_iterations=15), name="fc",
                     t_group=4)
    with pytest.raises(ValueError, match="is for D4"):
        deployable_config("E8", 16, 1, t_group=4)
    # A T stream with fewer symbols than the layer's groups is refused, naming the layer.
    layer = PackedLinear.from_linear(lin, deployable_config("D4", 4, 2, t_group=4), row_scale="rms", name="fc",
                                     t_group=4)
    sd = layer.state_dict()
    sd["t_code"] = sd["t_code"][:0]
    with pytest.raises(ValueError, match="fc: 't_code'"):
        PackedLinear(32, 4, layer.config, name="fc", t_group=4).load_state_dict(sd)


def test_deploy_model_with_a_t_per_group():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    originals = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in (model[0], model[2])]
    config = deployable_config("D4", 4, 2, t_group=4)
    quantize_model(model, config)
    deploy_model(model, row_scale="rms", t_group=4)
    # Each deployed layer is the t_group=4 packing of the original weights.
    for m, (w, b) in zip((model[0], model[2]), originals):
        assert isinstance(m, PackedLinear) and m.t_group == 4
        want = PackedLinear.from_weight(w, b, config, row_scale="rms", t_group=4)
        x = torch.randn(3, w.shape[1])
        assert torch.equal(m(x), want(x))


def test_auto_row_scales_cover_heavy_tails_and_a_warning_names_what_cannot_be_represented():
    import warnings

    import numpy as np

    config = deployable_config("D4", 4, 2, t_group=4)
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.standard_t(2, (128, 512)), dtype=torch.float32)  # heavy tails
    with pytest.warns(RuntimeWarning, match="h: .* row.s. keep a relative squared error above 0.05"):
        plain = PackedLinear.from_weight(w, None, config, row_scale="rms", name="h", t_group=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a row with one huge Student-t value may still be warned about
        auto = PackedLinear.from_weight(w, None, config, row_scale="auto", name="h", t_group=4)

    def rel(layer):
        return float(((layer.decoded_weight() - w) ** 2).sum() / (w ** 2).sum())

    assert rel(auto) < 0.5 * rel(plain) and rel(auto) < _q4_0_relative_mse(w) * 1.2, (rel(auto), rel(plain))
    # Gaussian rows are left at their rms (nothing to search), bit for bit the "rms" layer.
    g = torch.randn(64, 256)
    a = PackedLinear.from_weight(g, None, config, row_scale="auto", t_group=4)
    b = PackedLinear.from_weight(g, None, config, row_scale="rms", t_group=4)
    assert torch.equal(a.row_scale, b.row_scale) and torch.equal(a.codes, b.codes)
    # A weight 1000 times its row's rms cannot share the row's scale with the rest: warned.
    spike = 0.02 * torch.randn(8, 256)
    spike[:, 100] = 20.0
    with pytest.warns(RuntimeWarning, match="spike: .* clipped"):
        PackedLinear.from_weight(spike, None, config, row_scale="auto", name="spike", t_group=4)


def test_tiny_weights_keep_their_scale():
    w = torch.randn(4, 64) * 1e-25  # w**2 underflows float32: the rms is taken in float64
    layer = PackedLinear.from_weight(w, None, deployable_config("D4", 4, 2, t_group=4), row_scale="auto", t_group=4)
    dec, ref = layer.decoded_weight().double(), w.double()
    assert float(((dec - ref) ** 2).sum() / (ref ** 2).sum()) < 0.05


def test_t_group_must_be_the_int_1_or_4_everywhere():
    for bad in (True, 4.0, "4", 2):
        with pytest.raises(ValueError, match="t_group must be 1 or 4"):
            deployable_config("D4", 4, 2, t_group=bad)
        with pytest.raises(ValueError, match="t_group must be 1 or 4"):
            layer_record(QuantizationConfig(lattice_type="D4", q=4, M=2), 16, 2, False, t_group=bad)
        with pytest.raises(ValueError, match="fc: t_group must be 1 or 4"):
            PackedLinear(16, 2, QuantizationConfig(lattice_type="D4", q=4, M=2), name="fc", t_group=bad)
    with pytest.raises(ValueError, match="deployable_config: t_group=4 needs a D4 config whose decoded integers"):
        deployable_config("D4", 4, 4, t_group=4)


def test_a_refused_layer_leaves_the_whole_model_as_it_was():
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
    quantize_model(model, deployable_config("D4", 4, 2, t_group=4))
    model[2].config = deployable_config("E8", 16, 1)  # a layer t_group=4 cannot take
    with pytest.raises(ValueError, match="2: t_group=4"):
        deploy_model(model, row_scale="auto", t_group=4)
    assert isinstance(model[0], QLinear) and isinstance(model[2], QLinear)


def test_group_records_and_inputs_that_cannot_be_right_are_value_errors():
    layer = PackedLinear.from_linear(nn.Linear(32, 4), deployable_config("D4", 4, 2, t_group=4), row_scale="auto",
                                     name="fc", t_group=4)
    sd = layer.state_dict()
    no_bias = dict(sd)
    del no_bias["bias"]
    with pytest.raises(ValueError, match="fc: packed state dict lacks a 'bias'"):
        PackedLinear.from_state_dict(no_bias, name="fc")
    e8 = PackedLinear.from_linear(nn.Linear(32, 4), deployable_config("E8", 16, 1), row_scale="rms", name="fc")
    record = e8.get_extra_state().clone()
    record[5] |= 1 << 6  # the T-per-group flag on an E8 record
    with pytest.raises(ValueError, match="fc: .* flags a T per group for a E8 config"):
        read_layer_record(record, "fc")
    with pytest.raises(ValueError, match="fc: input has finite float64 values beyond float32's range"):
        layer(torch.full((1, 32), 1e300, dtype=torch.float64))
    with pytest.raises(ValueError, match="fc: input must have at least one dimension"):
        layer(torch.tensor(1.0))


def test_meta_device_propagates_shapes_and_to_empty_then_load_restores_the_layer():
    config = deployable_config("D4", 4, 2, t_group=4)
    real = PackedLinear.from_linear(nn.Linear(40, 8), config, row_scale="auto", name="fc", t_group=4)
    sd = real.state_dict()
    meta = PackedLinear(40, 8, config, name="fc", device="meta", t_group=4)
    assert meta(torch.empty(3, 5, 40, device="meta")).shape == (3, 5, 8)
    assert meta.decoded_weight().shape == (8, 40) and meta.decoded_weight().is_meta
    assert set(meta.state_dict()) == set(sd)
    layer = meta.to_empty(device="cpu")  # as after init_empty_weights: then the checkpoint
    layer.load_state_dict(sd)
    x = torch.randn(2, 40)
    assert torch.equal(layer(x), real(x))


def test_one_super_weight_in_a_large_layer_is_warned_about_and_records_stay_consistent():
    config = deployable_config("D4", 4, 2, t_group=4)
    w = 0.02 * torch.randn(512, 1024)
    w[7, 100] = 20.0  # one weight 1000 times its row's others: the whole layer's error stays small
    with pytest.warns(RuntimeWarning, match="big: 1 row.s. keep a relative squared error above 0.05"):
        PackedLinear.from_weight(w, None, config, row_scale="auto", name="big", t_group=4)
    with pytest.raises(ValueError, match="layer_record: t_group=4 is for D4 configs, not E8"):
        layer_record(deployable_config("E8", 16, 1), 32, 4, True, t_group=4)
    layer = PackedLinear.from_linear(nn.Linear(32, 4), config, row_scale="auto", name="fc", t_group=4)
    sd = layer.state_dict()
    record = sd["_extra_state"].clone()
    record[5] &= ~(1 << 4)  # the record says: no bias; the state dict has one
    with pytest.raises(ValueError, match="fc: packed state dict has a 'bias', its config record says the layer has none"):
        layer.load_state_dict(dict(sd, _extra_state=record))
    with pytest.raises(ValueError, match="fc: .*input contains NaN or Inf"):
        layer(torch.full((1, 32), float("inf"), dtype=torch.float64))
    with pytest.raises(ValueError, match="fc: weight has finite float64 values beyond float32's range"):
        PackedLinear.from_weight(torch.full((4, 32), 1e39, dtype=torch.float64), None, config, name="fc", t_group=4)
    empty = PackedLinear(32, 4, config, name="fc", device="meta", t_group=4).to_empty(device="cpu")
    empty.t_lengths.fill_(64)  # what uninitialized memory may hold
    with pytest.raises(ValueError, match="fc: the layer holds no valid T"):
        empty.state_dict()


def test_no_leak_report_at_exit_with_a_grad_output_alive():
    import subprocess
    import sys

    script = ("import torch, torch.nn as nn, coset\n"
              "from coset.deploy import PackedLinear\n"
              "L = PackedLinear.from_linear(nn.Linear(32, 8), coset.deployable_config('E8', 16, 1), row_scale='rms')\n"
              "out = L(torch.randn(2, 32, requires_grad=True))\n")
    import os

    env = dict(os.environ, LOWBIT_LEAK_WARNINGS="1")  # nanobind's report is off by default
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "leaked" not in proc.stderr, proc.stderr

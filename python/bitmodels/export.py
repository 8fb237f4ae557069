"""Export a deployed BitMLP to the LBBITMLP file that C++ (``bitlab-run``) runs without Python.

Format (little-endian; spec in docs/bitlab.md and include/lowbit/bitlab/model.h)::

    header   b"LBBITMLP", u32 version=1, u32 num_layers, u32 in_features, u32 out_features,
             u64 payload_bytes
    layer    u32 in, u32 out, u8 act_dtype (0 int8, 1 float32), u8 act_granularity
             (0 per_tensor, 1 per_channel), u8 has_bias, u8 relu_after, u32 reserved=0,
             f32 weight_scale[out], f32 bias[out] (if has_bias), TQ1_B3 trits[ceil(in*out/5)]
    trailer  u32 zlib.crc32 of every byte before it
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import List, Union

import torch
import torch.nn as nn

from bitlayers.bitlinear import BitLinear

MAGIC = b"LBBITMLP"
VERSION = 1
_PASS_THROUGH = (nn.Dropout, nn.Identity)


def _layer_sequence(model: nn.Module) -> List[nn.Module]:
    body = getattr(model, "layers", model)
    if isinstance(body, BitLinear):
        return [body]
    if not isinstance(body, nn.Sequential):
        raise ValueError(
            f"export_bitmlp: expected a BitMLP or an nn.Sequential of BitLinear/ReLU/Dropout, got {type(model).__name__}"
        )
    return list(body)


def _layer_record(layer: BitLinear, relu_after: bool) -> bytes:
    packed, scales = layer.packed_weights()
    trits = layer.kernel.to_storage(packed, layer.in_features)
    config = layer.quant_config
    header = struct.pack(
        "<IIBBBBI",
        layer.in_features,
        layer.out_features,
        0 if config.activation_dtype == "int8" else 1,
        0 if config.activation_granularity == "per_tensor" else 1,
        1 if layer.bias is not None else 0,
        1 if relu_after else 0,
        0,
    )
    # A file is host data: tensors of a layer on another device are copied to the CPU here.
    parts = [header, scales.detach().float().cpu().contiguous().numpy().astype("<f4").tobytes()]
    if layer.bias is not None:
        parts.append(layer.bias.detach().float().cpu().contiguous().numpy().astype("<f4").tobytes())
    parts.append(trits.cpu().numpy().tobytes())
    return b"".join(parts)


def export_bitmlp(model: nn.Module, path: Union[str, os.PathLike]) -> Path:
    """Write ``model`` (BitLinear layers, optionally followed by ReLU; Dropout and Identity are
    skipped) to ``path`` atomically (temp file + rename). Returns the path.

    The model may live on any device and have been cast to any dtype: scales are float32 already,
    a bias is written as float32 (a bias cast to bfloat16 / float16 is written as those values).

    Raises:
        ValueError: a module that cannot be exported, widths that do not chain, no BitLinear.
    """
    modules = _layer_sequence(model)
    layers, relu = [], []
    for module in modules:
        if isinstance(module, BitLinear):
            layers.append(module)
            relu.append(False)
        elif isinstance(module, nn.ReLU):
            if not layers or relu[-1]:
                raise ValueError("export_bitmlp: a ReLU must follow a BitLinear layer")
            relu[-1] = True
        elif not isinstance(module, _PASS_THROUGH):
            raise ValueError(f"export_bitmlp: cannot export a {type(module).__name__} layer")
    if not layers:
        raise ValueError("export_bitmlp: the model has no BitLinear layer")
    for prev, nxt in zip(layers, layers[1:]):
        if prev.out_features != nxt.in_features:
            raise ValueError(f"export_bitmlp: layer widths do not chain ({prev.out_features} -> {nxt.in_features})")
    with torch.no_grad():
        payload = b"".join(_layer_record(layer, r) for layer, r in zip(layers, relu))
    data = MAGIC + struct.pack("<IIIIQ", VERSION, len(layers), layers[0].in_features, layers[-1].out_features,
                               len(payload)) + payload
    data += struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class NativeBitMLP:
    """A BitMLP file run by the C++ runtime (``lowbit._native.bitlab.BitMLPModel``, as ``bitlab-run``).

    ``forward(x)``: ``x`` any real array-like (numpy of any float dtype, a torch CPU tensor, nested
    lists) of shape ``(in_features,)`` or ``(batch, in_features)``, converted to contiguous float32
    (the runtime's type; what ``BitMLP`` computes in too); returns float32 numpy of shape
    ``(out_features,)`` or ``(batch, out_features)``. ValueError for another width, TypeError
    for non-real input. ``in_features``, ``out_features``, ``num_layers`` as the file says.

    Pickling (``copy.deepcopy``, DataLoader or multiprocessing workers under ``"spawn"``) stores
    the file's absolute path and loads it again on arrival (OSError if it is gone)."""

    def __init__(self, native, path: Union[str, os.PathLike, None] = None):
        self._native = native
        self._path = None if path is None else os.path.abspath(os.fspath(path))

    def __getstate__(self) -> dict:
        if self._path is None:
            raise TypeError("NativeBitMLP: a model not loaded from a file (load_bitmlp) cannot be pickled")
        return {"path": self._path}

    def __setstate__(self, state: dict) -> None:
        from lowbit._native import bitlab

        self.__init__(bitlab.BitMLPModel.load(state["path"]), state["path"])

    @property
    def in_features(self) -> int:
        return self._native.in_features

    @property
    def out_features(self) -> int:
        return self._native.out_features

    @property
    def num_layers(self) -> int:
        return self._native.num_layers

    def forward(self, x):
        import numpy as np

        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
            x = x.detach().cpu().numpy()
        a = np.asarray(x)
        if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
            raise TypeError(f"BitMLP forward: x must be real numbers, got dtype {a.dtype}")
        if a.ndim not in (1, 2):
            raise ValueError(f"BitMLP forward: x must be (in_features,) or (batch, in_features), got shape {a.shape}")
        y = self._native.forward(np.ascontiguousarray(a.reshape(-1, a.shape[-1]), dtype=np.float32))
        return y.reshape(-1) if a.ndim == 1 else y

    __call__ = forward

    def __repr__(self) -> str:
        return f"NativeBitMLP({self.in_features} -> {self.out_features}, {self.num_layers} layers)"


def load_bitmlp(path: Union[str, os.PathLike]) -> NativeBitMLP:
    """The C++ runtime's model for the BitMLP file at ``path`` (:class:`NativeBitMLP`:
    ``.forward(x)``); OSError naming the file if it is missing or corrupt."""
    from lowbit._native import bitlab

    return NativeBitMLP(bitlab.BitMLPModel.load(str(path)), path)

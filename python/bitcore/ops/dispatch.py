"""Run a BitLab op on the implementation that fits the data: C++, CUDA or pure PyTorch.

``impl`` comes from :func:`lowbit._backend.select` for the device of the op's first tensor:

* ``"cpp"``: the C++ core through :mod:`bitcore.kernels.bindings.bitlinear_cpp` (CPU tensors);
* ``"cuda"``: the kernel registered in :mod:`lowbit._cuda_ops` under ``"bitlab.<op>"``, else PyTorch;
* ``"torch"``: :mod:`bitcore.ops.torch_ops`, on any device.

Results are on the device of the inputs (no host round trip for non-CPU tensors). Op names and
signatures: :mod:`bitcore.ops.torch_ops`.
"""

from __future__ import annotations

from typing import Any, Optional

from lowbit import _backend, _cuda_ops

from . import torch_ops

_UNSET = object()
_cpp_module: Any = _UNSET


def _cpp() -> Any:
    """The C++ wrappers (imported on first use: bitcore.kernels imports this package), or None."""
    global _cpp_module
    if _cpp_module is _UNSET:
        try:
            from bitcore.kernels.bindings import bitlinear_cpp
        except ImportError:  # the extension is not built: every op runs in PyTorch
            bitlinear_cpp = None
        _cpp_module = bitlinear_cpp
    return _cpp_module

# op -> name of the C++ wrapper in bitcore.kernels.bindings.bitlinear_cpp
_CPP_NAMES = {
    "quantize_weights": "quantize_weights",
    "quantize_activations": "quantize_activations",
    "pack_2bit": "pack_2bit",
    "unpack_2bit": "unpack_2bit",
    "pack_base3": "pack_base3",
    "unpack_base3": "unpack_base3",
    "gemm_int8": "gemm_int8",
    "linear_int8": "bitlinear_int8",
    "linear_f32": "bitlinear_f32",
}


def cpp_available() -> bool:
    """True when the native extension (``lowbit._native.bitlab``) is importable."""
    return _cpp() is not None


def resolve(device: Any, what: str = "input") -> str:
    """The implementation for data on ``device``: ``"cpp"``, ``"cuda"`` or ``"torch"``.

    ``"cpp"`` falls back to ``"torch"`` when the extension is missing (under the ``auto`` backend).
    Raises ValueError (from :func:`lowbit._backend.select`) when the ``cpp`` backend is forced on
    a non-CPU tensor.
    """
    impl = _backend.select(device, what)
    if impl == "cpp" and _cpp() is None:
        if _backend.get_backend() == "cpp":
            raise ValueError("the 'cpp' backend was requested but the native extension is not built")
        return "torch"
    return impl


def call(op: str, *args, impl: Optional[str] = None) -> Any:
    """Run op ``op`` (a key of ``_CPP_NAMES``) on ``args``; ``impl`` None = chosen from ``args[0]``'s device."""
    if op not in _CPP_NAMES:
        raise ValueError(f"bitlab dispatch: unknown op {op!r}")
    if impl is None:
        impl = resolve(_backend.device_of(args[0]), op)
    if impl == "cpp":
        return getattr(_cpp(), _CPP_NAMES[op])(*args)
    if impl == "cuda":
        fn = _cuda_ops.get("bitlab." + op)
        if fn is not None:
            return fn(*args)
    return getattr(torch_ops, op)(*args)


def quantize_weights(weight, granularity):
    return call("quantize_weights", weight, granularity)


def quantize_activations(x2d, granularity):
    return call("quantize_activations", x2d, granularity)


def pack_2bit(trits):
    return call("pack_2bit", trits)


def unpack_2bit(packed, cols):
    return call("unpack_2bit", packed, cols)


def pack_base3(trits):
    return call("pack_base3", trits)


def unpack_base3(data, rows, cols):
    return call("unpack_base3", data, rows, cols)


def gemm_int8(xq, packed):
    return call("gemm_int8", xq, packed)


def linear_int8(x2d, packed, in_features, weight_scale, bias, activation_granularity):
    return call("linear_int8", x2d, packed, in_features, weight_scale, bias, activation_granularity)


def linear_f32(x2d, packed, in_features, weight_scale, bias):
    return call("linear_f32", x2d, packed, in_features, weight_scale, bias)

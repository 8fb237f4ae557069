"""Thin torch-facing wrappers over the native BitLab extension (``lowbit._native.bitlab``).

* :mod:`.bitlinear_cpp` - every native function, tensors in and out
* :mod:`.bitlinear_int8_pt_pt_cpp` - the int8 / per-tensor / per-tensor layer, as the seed names it

Importing either raises ImportError when the extension is missing.
"""

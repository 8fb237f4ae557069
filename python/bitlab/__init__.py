"""``bitlab``: the package layout of the namesake's newer releases (OliverGrainge/BitLab), on lowbit.

The namesake's later releases ship one package ``bitlab`` (``bitlab.bnn``, ``bitlab.bitquantizer``,
``bitlab.bitmodels``, ``bitlab.bittrainer``) in place of its earlier ``bitcore`` / ``bitlayers`` /
``bitmodels``. This package gives code written for that layout lowbit's layers and kernels:

* :mod:`bitlab.bnn` - ``BitLinear`` (a :class:`bitlayers.BitLinear` taking the namesake's
  ``eps`` / ``quant_type`` arguments) and ``Module`` (``deploy()`` packs every BitLab layer);
* :mod:`bitlab.bitquantizer` - ``BitQuantizer`` and the ``ACT_QUANT_REGISTRY`` /
  ``WEIGHT_QUANT_REGISTRY`` / ``QUANTIZER_REGISTRY`` fake-quantization functions (plain PyTorch);
* :mod:`bitlab.bitmodels` - ``BitAutoModel`` (and its per-task variants), ``BitMLPModel`` and
  ``BitNetForCausalLM`` (on :class:`bitmodels.BitLM`); ResNet and UNet models are refused;
* :mod:`bitlab.bittrainer` - not provided (importing it raises ``ImportError`` saying what to use).

Differences from the namesake are listed in docs/migrating.md ("From BitLab (the bitlab package)").
"""

from lowbit._deps import require_torch

require_torch("bitlab")  # a clear ImportError, naming the fix, when PyTorch is missing

from lowbit import __version__  # noqa: E402  (lowbit's version)

from . import bitquantizer, bnn  # noqa: E402  (bitlab.bitmodels is imported on first use)

__all__ = ["bnn", "bitquantizer"]


def __getattr__(name: str):
    # ``import bitlab; bitlab.bitmodels.BitAutoModel`` (and ``bitlab.bittrainer``, which raises ImportError)
    if name in ("bitmodels", "bittrainer"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

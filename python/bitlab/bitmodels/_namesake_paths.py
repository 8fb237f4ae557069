"""The namesake's model-folder import paths (``bitlab.bitmodels.classification``, ``...causallm.bitnet.model``...).

Its releases moved the model classes between folders; code written for any of them imports from
those paths (its own MNIST example: ``from bitlab.bitmodels.classification import BitMLPConfig,
BitMLPModel``). Each path listed here is served as a module holding the same classes as
:mod:`bitlab.bitmodels` (no copies: ``bitlab.bitmodels.causallm.BitNetForCausalLM is
bitlab.bitmodels.BitNetForCausalLM``), ResNet / UNet ones being the refusing placeholders.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_MLP = ("BitMLPConfig", "BitMLPModel", "BitMLP")
_RESNET = ("BitResNetConfig", "BitResNetModel")
_BITNET = ("BitNetConfig", "BitNetForCausalLM")
_UNET = ("BitUNetConfig", "BitUNetModel")


def _family(names, *paths):
    return {p: names for p in paths}


# path below bitlab.bitmodels -> the names it exports
PATHS = {
    **_family(_MLP + _RESNET, "classification", "classification.image", "imageclassification",
              "imageclassification.image"),
    **_family(_MLP, "classification.image.mlp", "classification.image.mlp.config", "classification.image.mlp.model",
              "imageclassification.image.mlp", "imageclassification.image.mlp.config",
              "imageclassification.image.mlp.model", "imageclassification.mlp", "imageclassification.mlp.model",
              "mlp.config", "mlp.model"),
    **_family(_RESNET, "classification.image.resnet", "classification.image.resnet.config",
              "classification.image.resnet.model", "imageclassification.image.resnet",
              "imageclassification.image.resnet.model", "imageclassification.resnet",
              "imageclassification.resnet.config", "imageclassification.resnet.model", "resnet", "resnet.config",
              "resnet.model"),
    **_family(_BITNET, "causallm", "causallm.bitnet", "causallm.bitnet.config", "causallm.bitnet.model",
              "autoregressive", "autoregressive.bitnet", "autoregressive.bitnet.config", "autoregressive.bitnet.model"),
    **_family(_UNET, "diffusion", "diffusion.image", "diffusion.image.unet", "diffusion.image.unet.config",
              "diffusion.image.unet.model", "imagegeneration", "imagegeneration.image", "imagegeneration.image.unet",
              "imagegeneration.image.unet.config", "imagegeneration.image.unet.model", "imagegeneration.unet",
              "imagegeneration.unet.model", "unet", "unet.model", "bitunet", "bitunet.config"),
}

_PREFIX = __name__.rpartition(".")[0] + "."  # "bitlab.bitmodels."


class _NamesakePathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves :data:`PATHS` as (package) modules re-exporting :mod:`bitlab.bitmodels`' classes."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(_PREFIX) and fullname[len(_PREFIX):] in PATHS:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return None  # the default module

    def exec_module(self, module) -> None:
        package = sys.modules[_PREFIX[:-1]]
        names = PATHS[module.__name__[len(_PREFIX):]]
        for name in names:
            setattr(module, name, getattr(package, name))
        module.__all__ = list(names)
        module.__doc__ = (f"The namesake's import path {module.__name__}: the classes of bitlab.bitmodels "
                          f"({', '.join(names)}).")


def install() -> None:
    if not any(isinstance(f, _NamesakePathFinder) for f in sys.meta_path):
        sys.meta_path.append(_NamesakePathFinder())

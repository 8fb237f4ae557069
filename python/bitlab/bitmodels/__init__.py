"""``bitlab.bitmodels``: the namesake's model registry and auto classes, on lowbit's layers.

Provided: ``BitAutoModel`` (+ ``BitAutoModelForCausalLM`` / ``...ForImageClassification`` /
``...ForImageGeneration``), ``BitMLPModel`` / ``BitMLPConfig`` (``"bitmlp"``),
``BitNetForCausalLM`` / ``BitNetConfig`` (``"bitnet"``, on :class:`bitmodels.BitLM`),
``MODEL_REGISTRY`` / ``TASK_REGISTRY`` / ``register_bitmodel`` (:mod:`.auto`),
``CONFIG_REGISTRY`` / ``register_bitconfig`` / ``BaseBitModelConfig`` (:mod:`.config`),
``BaseBitModel`` (:mod:`.base`), ``ModelTask`` (:mod:`.tasks`), the mixins (:mod:`.mixins`).
Not provided: ``BitResNetModel`` / ``BitResNetConfig`` / ``BitUNetModel`` / ``BitUNetConfig``
(constructing them raises ``NotImplementedError`` naming what is available).
The namesake's model-folder import paths (``bitlab.bitmodels.classification``,
``...classification.image.mlp.model``, ``...causallm.bitnet``, ``...autoregressive.bitnet.config``,
``...diffusion``...) give the same classes (see :mod:`._namesake_paths`).
"""

from .auto import (MODEL_REGISTRY, TASK_REGISTRY, BitAutoModel, BitAutoModelForCausalLM,
                   BitAutoModelForImageClassification, BitAutoModelForImageGeneration, register_bitmodel)
from .base import BaseBitModel
from .bitnet import BitNetConfig, BitNetForCausalLM
from .config import CONFIG_REGISTRY, BaseBitModelConfig, register_bitconfig
from .mlp import BitMLPConfig, BitMLPModel
from .tasks import ModelTask
from .unavailable import BitResNetConfig, BitResNetModel, BitUNetConfig, BitUNetModel
from .mlp import BitMLP
from . import _namesake_paths

_namesake_paths.install()  # the namesake's folder paths: bitlab.bitmodels.classification, .causallm.bitnet.model...

__all__ = [
    "BitAutoModel", "BitAutoModelForCausalLM", "BitAutoModelForImageClassification",
    "BitAutoModelForImageGeneration", "MODEL_REGISTRY", "TASK_REGISTRY", "register_bitmodel",
    "CONFIG_REGISTRY", "register_bitconfig", "BaseBitModelConfig", "BaseBitModel", "ModelTask",
    "BitMLPConfig", "BitMLPModel", "BitNetConfig", "BitNetForCausalLM",
    "BitResNetConfig", "BitResNetModel", "BitUNetConfig", "BitUNetModel",
]

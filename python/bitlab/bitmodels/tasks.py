"""Model tasks (the namesake's ``ModelTask``)."""

from __future__ import annotations

from enum import Enum


class ModelTask(str, Enum):
    """What a model does; ``ModelTask.CAUSAL_LM.value == "causal-lm"``."""

    CAUSAL_LM = "causal-lm"
    IMAGE_CLASSIFICATION = "image-classification"
    IMAGE_GENERATION = "image-generation"

"""``BitAutoModel`` and its per-task variants; ``MODEL_REGISTRY`` / ``TASK_REGISTRY`` (the namesake's API)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import ClassVar, Dict, Optional, Type, Union

from .base import BaseBitModel
from .config import BaseBitModelConfig
from .tasks import ModelTask

MODEL_REGISTRY: Dict[str, Type[BaseBitModel]] = {}
TASK_REGISTRY: Dict[str, Dict[str, Type[BaseBitModel]]] = defaultdict(dict)

# model types of the namesake that lowbit does not build (see bitlab.bitmodels.unavailable)
NOT_PROVIDED = {"bitresnet": "BitResNetModel (ternary ResNet)", "bitunet": "BitUNetModel (ternary diffusion UNet)"}


def _task_key(task) -> str:
    return task.value if isinstance(task, ModelTask) else str(task)


def register_bitmodel(model_type: str, *, task: Union[ModelTask, str, None] = None):
    """Class decorator: register a model under ``model_type`` (and its lower-case form) in
    ``MODEL_REGISTRY`` and, with ``task`` (or the class's ``task`` attribute), in ``TASK_REGISTRY``."""

    def deco(cls):
        resolved = task if task is not None else getattr(cls, "task", None)
        for key in {model_type, model_type.lower()}:
            MODEL_REGISTRY[key] = cls
            if resolved is not None:
                TASK_REGISTRY[_task_key(resolved)][key] = cls
        return cls

    return deco


def _unknown(model_type) -> ValueError:
    available = sorted(set(MODEL_REGISTRY))
    if isinstance(model_type, str) and model_type.lower() in NOT_PROVIDED:
        return ValueError(f"model_type {model_type!r} ({NOT_PROVIDED[model_type.lower()]}) is not provided by "
                          f"lowbit's bitlab; available: {available}")
    return ValueError(f"No model registered for type {model_type!r}. Registered: {available}")


class BitAutoModel:
    """Build registered models from configs: ``BitAutoModel.from_config(config, *, eval_mode=True, **overrides)``.

    The per-task classes (``BitAutoModelForCausalLM``, ``...ForImageClassification``,
    ``...ForImageGeneration``) also check that the model is registered for their task.
    """

    task: ClassVar[Optional[ModelTask]] = None

    @classmethod
    def from_config(cls, config: Union[BaseBitModelConfig, str, Path], *, eval_mode: bool = True, **config_overrides):
        """The model registered for ``config.model_type``, built from ``config`` (or the config
        file / directory ``config`` names: :meth:`BaseBitModelConfig.load`), in eval mode unless
        ``eval_mode=False``.

        Raises:
            ValueError: unknown or not provided ``model_type`` (the message lists the registered
            ones); a model of another task than this class's.
        """
        cfg = BaseBitModelConfig.load(config) if isinstance(config, (str, Path)) else config
        if not isinstance(cfg, BaseBitModelConfig):
            raise ValueError(f"{cls.__name__}.from_config: expected a bitlab config (BaseBitModelConfig) or a "
                             f"path, got {type(cfg).__name__}")
        if config_overrides:
            cfg = cfg.with_overrides(**config_overrides)
        model = cls._resolve_model_cls(getattr(cfg, "model_type", None))(cfg)
        if eval_mode:
            model.eval()
        return model

    @classmethod
    def _resolve_model_cls(cls, model_type) -> Type[BaseBitModel]:
        want = None if cls.task is None else _task_key(cls.task)
        if model_type:
            found = MODEL_REGISTRY.get(model_type)
            if found is None and isinstance(model_type, str):
                found = MODEL_REGISTRY.get(model_type.lower())
            if found is None:
                raise _unknown(model_type)
            if want is not None:
                have = getattr(found, "task", None)
                if have is None:
                    have = next((k for k, reg in TASK_REGISTRY.items() if found in reg.values()), None)
                if have is not None and _task_key(have) != want:
                    raise ValueError(f"Model {model_type!r} is registered for task {_task_key(have)!r}, "
                                     f"but {want!r} was requested")
            return found
        if want is None:
            raise ValueError("model_type must be given to BitAutoModel (no task to choose a model by)")
        candidates = set(TASK_REGISTRY.get(want, {}).values())
        if len(candidates) == 1:
            return candidates.pop()
        if not candidates:
            raise ValueError(f"No models registered for task {want!r}")
        raise ValueError(f"Several models are registered for task {want!r}: give model_type explicitly")

    @classmethod
    def from_pretrained(cls, name: str, *, eval_mode: bool = True) -> BaseBitModel:
        """``name`` = ``"model_type"`` or ``"model_type:alias"``: the model class's ``_load_weights(alias)``.

        lowbit's own models have no download loader: for BitNet weights use
        ``bitmodels.load_gguf(path)`` (a BitNet GGUF) or ``bitmodels.llama_to_bitlm(hf_model)``.

        Raises:
            ValueError: unknown ``model_type``. NotImplementedError: the model has no ``_load_weights``.
        """
        model_type, _, alias = str(name).partition(":")
        model_cls = cls._resolve_model_cls(model_type)
        loader = getattr(model_cls, "_load_weights", None)
        if not callable(loader):
            raise NotImplementedError(
                f"{model_cls.__name__} has no pretrained-weight loader in lowbit (lowbit downloads nothing): "
                f"load a BitNet GGUF with bitmodels.load_gguf(path), or convert a transformers model with "
                f"bitmodels.llama_to_bitlm(model)")
        model = loader(alias) if alias else loader()
        if not isinstance(model, BaseBitModel):
            raise TypeError(f"{model_cls.__name__}._load_weights returned {type(model).__name__}, not a BaseBitModel")
        if eval_mode:
            model.eval()
        return model


class BitAutoModelForCausalLM(BitAutoModel):
    task: ClassVar[ModelTask] = ModelTask.CAUSAL_LM


class BitAutoModelForImageClassification(BitAutoModel):
    task: ClassVar[ModelTask] = ModelTask.IMAGE_CLASSIFICATION


class BitAutoModelForImageGeneration(BitAutoModel):
    task: ClassVar[ModelTask] = ModelTask.IMAGE_GENERATION

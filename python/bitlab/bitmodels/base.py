"""``BaseBitModel``: the namesake's model base class (config handling, ``deploy``, backbone)."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Type

import torch.nn as nn

from ..bnn.module import deploy_modules
from .config import BaseBitModelConfig


class BaseBitModel(nn.Module):
    """Base of ``bitlab.bitmodels`` models.

    ``Model(config=None, **overrides)``: ``config`` must be an instance of the class's
    ``config_cls`` (None builds ``config_cls(**overrides)``; overrides on a given config go through
    ``config.with_overrides``). The resolved config is ``self.config``, its ``quant_type`` (if
    any) ``self.quant_type``. A subclass that overrides :meth:`build_model` gets
    ``self.model = self.build_model(config)``, and the default :meth:`forward` calls it.

    Raises:
        TypeError: ``config`` not an instance of ``config_cls``; overrides for a class without ``config_cls``.
    """

    config_cls: ClassVar[Optional[Type[BaseBitModelConfig]]] = None
    auto_build: ClassVar[bool] = True

    def __init__(self, config: Optional[BaseBitModelConfig] = None, **overrides: Any) -> None:
        super().__init__()
        self.config = self._resolve_config(config, overrides)
        self.quant_type = getattr(self.config, "quant_type", None) if self.config is not None else None
        if self.auto_build and self.config is not None and type(self).build_model is not BaseBitModel.build_model:
            self.model = self.build_model(self.config)

    def build_model(self, config: BaseBitModelConfig) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must override build_model() or forward()")

    def forward(self, *args: Any, **kwargs: Any):
        if "model" in self._modules:
            return self.model(*args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} defines no forward() and has no self.model backbone")

    def deploy(self) -> "BaseBitModel":
        """Deploy every BitLab layer in the model (packed 2-bit weights; see :meth:`bitlab.bnn.Module.deploy`); returns self."""
        deploy_modules(self, include_root=False)
        return self

    def uses_quantization(self) -> bool:
        """Whether the config asks for quantization (``quant_type`` neither None nor ``"none"``)."""
        return self.quant_type is not None and str(self.quant_type).lower() != "none"

    def get_quant_type(self, default: Optional[str] = None) -> Optional[str]:
        return self.quant_type if self.quant_type is not None else default

    def _resolve_config(self, config, overrides: Dict[str, Any]):
        cls = self.config_cls
        if cls is None:
            if overrides and config is None:
                raise TypeError(f"{type(self).__name__} declares no config_cls but received config overrides")
            return config.with_overrides(**overrides) if overrides else config
        if config is None:
            return cls(**overrides)
        if not isinstance(config, cls):
            raise TypeError(f"{type(self).__name__}: config must be an instance of {cls.__name__}, "
                            f"got {type(config).__name__}")
        return config.with_overrides(**overrides) if overrides else config

"""BitMLP: a stack of BitLinear layers with ReLU (and dropout) between them."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

import torch
import torch.nn as nn

from bitcore.config import BitQuantConfig
from bitlayers.base import resolve_config
from bitlayers.bitlinear import BitLinear

from .base import BitModelBase
from .registry import register_config, register_model


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"BitMLPConfig: {name} must be a positive int, got {value!r}")
    return value


@register_config("BitMLPConfig")
@dataclasses.dataclass
class BitMLPConfig:
    """Shape of a :class:`BitMLP` (a dataclass with the namesake's fields and defaults).

    Args:
        n_layers: number of BitLinear layers (1 = a single in_channels -> out_channels layer). Default 3.
        in_channels, hidden_dim, out_channels: layer widths. Defaults 256, 128, 10.
        dropout: dropout probability after each hidden activation, in [0, 1). Default 0.0.
        quant_config: the BitQuantConfig of every layer (default ``BitQuantConfig()``).
        bias: whether the layers have biases. Default True.

    Raises:
        ValueError: non-positive or non-int widths, dropout outside [0, 1), a quant_config that is
        not a BitQuantConfig, a non-bool bias.
    """

    n_layers: int = 3
    in_channels: int = 256
    hidden_dim: int = 128
    out_channels: int = 10
    dropout: float = 0.0
    quant_config: Optional[BitQuantConfig] = None
    bias: bool = True

    model_type = "bit_mlp"

    def __post_init__(self) -> None:
        for name in ("n_layers", "in_channels", "hidden_dim", "out_channels"):
            _positive_int(name, getattr(self, name))
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= float(d) < 1.0:
            raise ValueError(f"BitMLPConfig: dropout must be a number in [0, 1), got {d!r}")
        self.dropout = float(d)
        self.quant_config = resolve_config(self.quant_config)
        if not isinstance(self.bias, bool):
            raise ValueError(f"BitMLPConfig: bias must be a bool, got {self.bias!r}")

    def layer_sizes(self):
        """[(in, out)] of each BitLinear layer."""
        widths = [self.in_channels] + [self.hidden_dim] * (self.n_layers - 1) + [self.out_channels]
        return list(zip(widths[:-1], widths[1:]))


_LEGACY_KEY = re.compile(r"^layers\.(\d+)\.(.*)$")


@register_model("BitMLPModel")
class BitMLP(BitModelBase):
    """``BitLinear -> ReLU [-> Dropout] -> ... -> BitLinear`` over inputs ``(..., in_channels)``.

    The namesake's ``BitMLPModel`` (same class): built as ``BitMLP(config, quant_config=None)``,
    modules in ``self.network`` (an ``nn.Sequential``; ``Dropout`` only when ``dropout > 0``), so
    state dicts use the namesake's keys (``network.0.weight``, ...). Every layer gets the quant
    config: ``quant_config`` if given, else ``config.quant_config`` (the namesake's MLP ignored it).
    :meth:`get_config` returns a config whose ``quant_config`` is the one in force (a copy of
    ``config`` when ``quant_config`` overrode it), so ``from_config(m.get_config())`` rebuilds the
    same model.
    State dicts of earlier lowbit releases (``layers.<i>.*``) still load.

    Raises:
        ValueError: ``config`` is not a BitMLPConfig, or ``quant_config`` not a BitQuantConfig.
    """

    config_cls = BitMLPConfig

    def __init__(self, config: BitMLPConfig, quant_config: Optional[BitQuantConfig] = None) -> None:
        if not isinstance(config, BitMLPConfig):
            raise ValueError(f"BitMLP: expected a BitMLPConfig, got {type(config).__name__}")
        quant_config = config.quant_config if quant_config is None else resolve_config(quant_config)
        if quant_config != config.quant_config:
            # get_config() must describe the model built: a copy carrying the override (the
            # caller's config is left alone), so from_config(m.get_config()) rebuilds the same model.
            config = dataclasses.replace(config, quant_config=quant_config)
        super().__init__(config, quant_config)
        modules = []
        sizes = config.layer_sizes()
        for i, (fan_in, fan_out) in enumerate(sizes):
            modules.append(BitLinear(fan_in, fan_out, bias=config.bias, quant_config=quant_config))
            if i + 1 < len(sizes):
                modules.append(nn.ReLU())
                if config.dropout > 0:
                    modules.append(nn.Dropout(config.dropout))
        self.network = nn.Sequential(*modules)
        self._register_load_state_dict_pre_hook(self._upgrade_legacy_keys, with_module=True)

    @property
    def layers(self) -> nn.Sequential:
        """The module sequence (lowbit's earlier name for :attr:`network`)."""
        return self.network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def bit_layers(self):
        return [m for m in self.network if isinstance(m, BitLinear)]

    @staticmethod
    def _upgrade_legacy_keys(module, state_dict, prefix, *args) -> None:
        """``layers.<i>.<rest>`` (Dropout always present, 3 modules per hidden layer) -> ``network.<j>.<rest>``."""
        positions = [i for i, m in enumerate(module.network) if isinstance(m, BitLinear)]
        for key in [k for k in state_dict if k.startswith(prefix + "layers.")]:
            match = _LEGACY_KEY.match(key[len(prefix):])
            if match is None:
                continue
            index = int(match.group(1))
            if index % 3 == 0 and index // 3 < len(positions):
                state_dict[f"{prefix}network.{positions[index // 3]}.{match.group(2)}"] = state_dict.pop(key)


#: The namesake's name.
BitMLPModel = BitMLP

"""Model configs of ``bitlab.bitmodels``: frozen dataclasses with the namesake's methods.

The namesake builds its configs with pydantic; here they are frozen dataclasses with the same
field names, defaults and methods (``to_dict``, ``to_json``, ``save``, ``with_overrides``,
``from_dict``, ``load``), so lowbit does not depend on pydantic. Unknown fields raise, as
pydantic's ``extra="forbid"`` does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Tuple

CONFIG_REGISTRY: Dict[str, type] = {}


def register_bitconfig(model_type: str):
    """Class decorator: ``CONFIG_REGISTRY[model_type] = cls`` (what :meth:`BaseBitModelConfig.load` reads)."""

    def deco(cls):
        CONFIG_REGISTRY[model_type] = cls
        return cls

    return deco


def _config_path(path) -> Path:
    p = Path(path)
    return p if p.suffix.lower() == ".json" else p / "config.json"


@dataclasses.dataclass(frozen=True)
class BaseBitModelConfig:
    """Base of the model configs. Subclasses are frozen dataclasses with a fixed ``model_type``
    (and ``task``) field whose value cannot be changed.

    Raises:
        ValueError: a fixed field (``model_type``, ``task``) given another value, or a field value a
            subclass rejects; :meth:`from_dict` / :meth:`with_overrides` with unknown field names.
    """

    name_or_path: Optional[str] = None

    _FIXED: ClassVar[Tuple[str, ...]] = ("model_type", "task")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name in self._FIXED and getattr(self, f.name) != f.default:
                raise ValueError(f"{type(self).__name__}: {f.name} is fixed to {f.default!r}, got {getattr(self, f.name)!r}")
        if self.name_or_path is not None and not isinstance(self.name_or_path, str):
            raise ValueError(f"{type(self).__name__}: name_or_path must be a str or None, got {self.name_or_path!r}")
        self._validate()

    def _validate(self) -> None:
        """Subclass hook: check (and normalise with ``object.__setattr__``) field values."""

    # ----------------------------------------------------------------- the namesake's methods
    def to_dict(self) -> Dict[str, Any]:
        """Field name -> value (tuples stay tuples)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` (a ``.json`` file) or ``path/config.json`` (directories are created)."""
        p = _config_path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json())

    @classmethod
    def _check_names(cls, names, what: str) -> None:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}.{what}: unknown fields {unknown} (fields: {sorted(known)})")

    def with_overrides(self, **updates: Any) -> "BaseBitModelConfig":
        """A copy with ``updates`` applied (validated like a new config)."""
        self._check_names(updates, "with_overrides")
        return dataclasses.replace(self, **updates)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "BaseBitModelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}.from_dict: expected a dict, got {type(data).__name__}")
        cls._check_names(data, "from_dict")
        return cls(**data)

    @classmethod
    def load(cls, path) -> "BaseBitModelConfig":
        """Read ``path`` (a ``.json`` file, or a directory holding ``config.json``); the class is
        ``CONFIG_REGISTRY[data["model_type"]]`` when registered, else ``cls``.

        Raises:
            OSError: the file cannot be read. ValueError: not JSON, or no ``model_type``, or a
            ``model_type`` lowbit does not provide (the message lists the available ones).
        """
        p = _config_path(path)
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not a JSON config ({e})") from None
        if not isinstance(data, dict) or "model_type" not in data:
            raise ValueError(f"{p}: config is missing the required field 'model_type'")
        config_cls = CONFIG_REGISTRY.get(data["model_type"])
        if config_cls is None:
            if cls is BaseBitModelConfig or not any(f.name == "model_type" for f in dataclasses.fields(cls)):
                raise ValueError(f"{p}: model_type {data['model_type']!r} is not provided by lowbit's bitlab "
                                 f"(available: {sorted(CONFIG_REGISTRY)})")
            config_cls = cls
        return config_cls.from_dict(data)


def positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value

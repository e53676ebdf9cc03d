"""What every network's config shares: a frozen dataclass with named presets, written to and read from the plain
dicts that checkpoints and the weights manifest store.

    @dataclass(frozen=True)
    class Config(PresetConfig):
        KIND = "SDA"                      # names the model in error messages
        height: int = 128
        ...

    PRESETS = {"tiny": Config(...), "synth128": Config()}
    Config.PRESETS = PRESETS              # after the presets, which are instances of the class

    cfg = Config.preset("synth128", height=96)   # a preset with fields replaced
    Config.from_dict(cfg.to_dict()) == cfg       # JSON lists come back as tuples; unknown fields are an error
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, fields, replace
from typing import Any, ClassVar, TypeVar

__all__ = ["PresetConfig"]

C = TypeVar("C", bound="PresetConfig")


class PresetConfig:
    """Mixin for frozen dataclass configs: ``preset``, ``name`` (the preset a config equals), ``to_dict`` /
    ``from_dict`` and ``to_json`` / ``from_json``."""

    KIND: ClassVar[str] = "model"
    PRESETS: ClassVar[dict[str, Any]] = {}

    @classmethod
    def preset(cls: type[C], name: str, /, **overrides) -> C:
        """The named preset, optionally with fields replaced."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown {cls.KIND} preset {name!r}: use one of {', '.join(cls.PRESETS)}")
        return replace(cls.PRESETS[name], **overrides)

    @property
    def name(self) -> str:
        """The name of the preset this config equals, or ``"custom"`` (a preset with fields replaced)."""
        return next((name for name, cfg in self.PRESETS.items() if cfg == self), "custom")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict) -> C:
        """The config ``to_dict`` gave (JSON lists become tuples); unknown fields are an error, not silently dropped."""
        from talkinghead.io import InputError

        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown {cls.KIND} config fields {sorted(unknown)}: the file was written by another "
                             "version of talkinghead; use that version or upgrade")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def changes_from(self, saved: dict) -> dict[str, tuple[Any, Any]]:
        """The fields in which this config differs from ``saved`` (a checkpoint's ``to_dict``), as {field: (saved
        value, this value)}. A field ``saved`` lacks was added after it was written and counts as its default, so
        a checkpoint stays resumable when a field is added whose default keeps the old behaviour."""
        now = json.loads(json.dumps(self.to_dict()))
        missing = object()
        changes = {}
        for f in fields(self):
            default = f.default if f.default is not MISSING else missing
            old = saved.get(f.name, json.loads(json.dumps(default)) if default is not missing else missing)
            if old != now[f.name]:
                changes[f.name] = ("(absent)" if old is missing else old, now[f.name])
        for name in sorted(set(saved) - set(now)):
            changes[name] = (saved[name], "(absent)")
        return changes

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

"""The window's settings, typed and kept in one place (napari's habit): where the window was,
how passes were set up (loss, optimizer, learning rate, per-use recording), and how it looks
(text scale, presentation scale, theme, colour map).

`Settings.load()` reads them (defaults for anything missing or unreadable: a settings file
from another version never stops the app); `save()` writes them. Qt's settings store is the
platform's (an ini file under ~/.config on Linux); `QSettings` writes it to a temporary file
and renames it into place, so an interrupted write never leaves half a file. Tests point
`XDG_CONFIG_HOME` at a temporary folder (tests/conftest.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

SCOPE = ("netexplorer", "netexplorer")  # organization, application


def app_settings() -> QSettings:
    """The app's settings store."""
    return QSettings(*SCOPE)


@dataclass
class Settings:
    geometry: bytes = b""  # QMainWindow.saveGeometry()
    window_state: bytes = b""  # QMainWindow.saveState()
    loss_name: str = "mse"  # the sum of the output has no minimum: training on it diverges
    optimizer_name: str = "sgd"
    lr: float = 0.0  # 0: the optimizer's own default here
    record: bool = True  # per-use gradients
    scale: float = 1.0  # of all text and drawing (Ctrl++ / Ctrl+-)
    presentation_scale: float = 1.8  # the scale of presentation mode
    theme: str = "light"
    colormap: str = "CET-D1"

    @classmethod
    def load(cls) -> Settings:
        store = app_settings()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = store.value(f"window/{f.name}")
            if raw is None:
                continue
            value = _coerce(raw, type(getattr(cls, f.name)))
            if value is not None:
                values[f.name] = value
        settings = cls(**values)
        if not (math.isfinite(settings.lr) and settings.lr >= 0):
            settings.lr = 0.0
        for name in ("scale", "presentation_scale"):  # out of range: the default
            if not (math.isfinite(getattr(settings, name)) and 0.5 <= getattr(settings, name) <= 4):
                setattr(settings, name, getattr(cls, name))
        return settings

    def save(self) -> None:
        store = app_settings()
        for f in fields(self):
            value = getattr(self, f.name)
            store.setValue(
                f"window/{f.name}", QByteArray(value) if isinstance(value, bytes) else value
            )
        store.sync()


def _coerce(raw: Any, kind: type) -> Any:
    """A stored value as `kind`, or None when it cannot be one."""
    try:
        if kind is bytes:
            return bytes(raw.data()) if isinstance(raw, QByteArray) else None
        if kind is bool:
            if isinstance(raw, str):
                return {"true": True, "false": False}.get(raw.lower())
            return bool(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return str(raw)
    except (TypeError, ValueError):
        return None
    return None


def pass_defaults(settings: Settings) -> dict[str, Any]:
    """What a newly opened live model's passes start with."""
    return {
        "loss_name": settings.loss_name,
        "optimizer_name": settings.optimizer_name,
        "lr": settings.lr or None,
        "record": settings.record,
    }

"""How the window looks: one text scale for everything, a light or dark theme, the colour map
of the heatmaps, and presentation mode (for a projector: larger, thicker highlights).

`Look` is a frozen value; `Appearance` holds the current one for the application and says
when it changes. Qt widgets follow the application font and palette; what Qt's font does not
reach (pyqtgraph's axes, ticks and colour bars, the graph's zoom, rich text with sizes of its
own) subscribes to `changed` and applies the look itself (`apply_look` methods). Sizes are
written as points at scale 1 and multiplied by `Look.scale`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

MIN_SCALE, MAX_SCALE = 0.6, 4.0
MUTED = "#7b8288"  # secondary text in rich text: readable on the light and the dark theme
PRESENTATION_SCALE = 1.8  # the default of presentation mode, projector-readable at 1080p
THEMES = ("light", "dark")
# Diverging maps centred at zero (CET perceptually uniform maps, as pyqtgraph names them)
COLORMAPS = {
    "CET-D1": "blue – white – red",
    "CET-D1A": "blue – white – red, brighter",
    "CET-D4": "blue – black – red (for the dark theme)",
    "CET-D7": "blue – grey – yellow (colour-blind safe)",
    "CET-D13": "blue – white – green",
}


@dataclass(frozen=True)
class Theme:
    background: str  # of plots and panels
    text: str
    muted: str  # secondary text (captions, keys of facts)
    panel: str  # behind messages in place of a heatmap
    window: str
    base: str  # of lists, tree and text fields
    highlight: str
    grid_alpha: float


LIGHT = Theme("#ffffff", "#1a1a1a", "#6b6b6b", "#f4f4f4", "#efefef", "#ffffff", "#2e86c1", 0.3)
DARK = Theme("#1f2326", "#e8e8e8", "#a0a6ab", "#2a2f33", "#2b2f33", "#1f2326", "#3d8fd6", 0.25)


@dataclass(frozen=True)
class Look:
    scale: float = 1.0
    theme: str = "light"
    colormap: str = "CET-D1"
    presenting: bool = False  # presentation mode: thicker highlights (scale set apart)

    @property
    def colors(self) -> Theme:
        return DARK if self.theme == "dark" else LIGHT

    def pt(self, points: float) -> float:
        """A size given in points at scale 1, at this scale."""
        return points * self.scale

    def px(self, pixels: float) -> int:
        return max(1, round(pixels * self.scale))

    @property
    def line_width(self) -> float:
        """Pen width of highlights (selection, tie partners): thicker when presenting."""
        return (3.0 if self.presenting else 2.0) * max(1.0, self.scale * 0.75)


class Appearance(QObject):
    """The application's current look (one per application: `appearance()`)."""

    changed = Signal(object)  # Look

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self._base_font = QFont(app.font())
        self._base_palette = QPalette(app.palette())
        self.look = Look()

    def set_look(self, look: Look) -> None:
        look = replace(look, scale=min(MAX_SCALE, max(MIN_SCALE, look.scale)))
        if look.theme not in THEMES:
            look = replace(look, theme="light")
        if look.colormap not in COLORMAPS:
            look = replace(look, colormap="CET-D1")
        if look == self.look:
            return
        self.look = look
        font = QFont(self._base_font)
        size = self._base_font.pointSizeF()
        if size > 0:
            font.setPointSizeF(size * look.scale)
        else:  # a pixel-sized base font
            font.setPixelSize(look.px(self._base_font.pixelSize()))
        self.app.setFont(font)
        self.app.setPalette(self._palette(look))
        self.changed.emit(look)

    def update(self, **changes: object) -> None:
        self.set_look(replace(self.look, **changes))

    def _palette(self, look: Look) -> QPalette:
        if look.theme == "light":
            return QPalette(self._base_palette)
        c = look.colors
        palette = QPalette()
        role = QPalette.ColorRole
        for r, color in (
            (role.Window, c.window),
            (role.WindowText, c.text),
            (role.Base, c.base),
            (role.AlternateBase, c.panel),
            (role.ToolTipBase, c.panel),
            (role.ToolTipText, c.text),
            (role.Text, c.text),
            (role.Button, c.window),
            (role.ButtonText, c.text),
            (role.BrightText, "#ff6b6b"),
            (role.Highlight, c.highlight),
            (role.HighlightedText, "#ffffff"),
            (role.Link, "#6cb4ee"),
            (role.PlaceholderText, c.muted),
            (role.Mid, "#4a5056"),
            (role.Dark, "#15181a"),
            (role.Light, "#3a3f44"),
        ):
            palette.setColor(r, QColor(color))
        disabled = QPalette.ColorGroup.Disabled
        for r in (role.WindowText, role.Text, role.ButtonText):
            palette.setColor(disabled, r, QColor("#6f767c"))
        return palette


_appearance: Appearance | None = None


def appearance() -> Appearance:
    """The running application's appearance (made on first use)."""
    global _appearance
    app = QApplication.instance()
    if _appearance is None or _appearance.app is not app:
        if app is None:
            raise RuntimeError("no QApplication: make one first (ui.app.make_app)")
        _appearance = Appearance(app)  # type: ignore[arg-type]
    return _appearance


def follow(apply) -> None:
    """Call `apply(look)` now and whenever the look changes. `apply` must be a method of a
    QObject (a widget), so that the connection ends with it."""
    current = appearance()
    apply(current.look)
    current.changed.connect(apply)


def muted(text: str) -> str:
    """`text` (HTML) in the theme's secondary colour."""
    return f"<span style='color:{appearance().look.colors.muted}'>{text}</span>"

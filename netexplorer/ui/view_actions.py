"""The View menu's look: text size (Ctrl++ / Ctrl+- / Ctrl+0), presentation mode for a
projector, full screen (F11), the light or dark theme and the heatmaps' colour map. The
choices persist in the window's settings.

Presentation mode enlarges everything by one factor (the presentation scale, 1.8 unless
changed with Ctrl++ / Ctrl+- while presenting), thickens highlights and goes full screen;
leaving it restores the scale and the window as they were."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from .appearance import COLORMAPS, Look, appearance

if TYPE_CHECKING:
    from .main_window import MainWindow

STEP = 1.15
PRESENTATION_COLUMNS = (0.18, 0.56, 0.26)  # tree, heatmaps and controls, details
PRESENTATION_ROWS = (0.72, 0.28)  # heatmaps, pass controls


class ViewActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        settings = window.settings
        look = appearance()
        look.set_look(Look(scale=settings.scale, theme=settings.theme, colormap=settings.colormap))
        self._was_full_screen = False
        self._sizes: tuple[list[int], list[int]] | None = None  # the layout to come back to
        make = window.make_action
        self.larger = make(
            "Larger text",
            QKeySequence.StandardKey.ZoomIn,
            lambda: self.zoom(STEP),
            "Everything larger: text, heatmap axes, graph, plots (Ctrl++)",
        )
        self.smaller = make(
            "Smaller text",
            QKeySequence.StandardKey.ZoomOut,
            lambda: self.zoom(1 / STEP),
            "Everything smaller (Ctrl+-)",
        )
        self.reset = make("Normal size", "Ctrl+0", self.reset_zoom, "Text at its normal size")
        self.present = make(
            "Presentation mode",
            "Ctrl+Shift+P",
            self.toggle_presentation,
            "Large text, thick highlights, full screen: for a projector",
        )
        self.present.setCheckable(True)
        self.full_screen = make(
            "Full screen", "F11", self.toggle_full_screen, "Fill the screen (F11 again to leave)"
        )
        self.full_screen.setCheckable(True)
        themes = QActionGroup(self)
        self.themes: dict[str, QAction] = {}
        for name, label in (("light", "Light theme"), ("dark", "Dark theme")):
            action = make(
                label,
                "",
                lambda _c=False, n=name: self.set_theme(n),
                f"{label}: readable on a projector",
            )
            action.setCheckable(True)
            action.setChecked(look.look.theme == name)
            themes.addAction(action)
            self.themes[name] = action
        maps = QActionGroup(self)
        self.colormaps: dict[str, QAction] = {}
        for name, label in COLORMAPS.items():
            action = make(
                f"{name}: {label}",
                "",
                lambda _c=False, n=name: self.set_colormap(n),
                "The heatmaps' colour map (diverging, centred at zero)",
            )
            action.setCheckable(True)
            action.setChecked(look.look.colormap == name)
            maps.addAction(action)
            self.colormaps[name] = action

    def fill(self, menu) -> None:
        for action in (self.larger, self.smaller, self.reset):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.present)
        menu.addAction(self.full_screen)
        menu.addSeparator()
        for action in self.themes.values():
            menu.addAction(action)
        colour = menu.addMenu("Colour map")
        for action in self.colormaps.values():
            colour.addAction(action)

    # -- changes ----------------------------------------------------------------------------

    @property
    def presenting(self) -> bool:
        return appearance().look.presenting

    def zoom(self, factor: float) -> None:
        look = appearance()
        look.update(scale=look.look.scale * factor)
        self._remember()

    def reset_zoom(self) -> None:
        appearance().update(
            scale=self.window.settings.presentation_scale if self.presenting else 1.0
        )
        self._remember()

    def toggle_presentation(self) -> None:
        self.set_presenting(not self.presenting)

    def set_presenting(self, on: bool) -> None:
        settings = self.window.settings
        look = appearance()
        if on == look.look.presenting:
            return
        window = self.window
        if on:
            self._sizes = (window.splitter.sizes(), window.centre_split.sizes())
            look.update(presenting=True, scale=settings.presentation_scale)
            self._was_full_screen = window.isFullScreen()
            window.showFullScreen()
            # the heatmaps and their controls in the middle get most of the screen
            total = sum(window.splitter.sizes()) or window.width()
            window.splitter.setSizes([round(total * f) for f in PRESENTATION_COLUMNS])
            height = sum(window.centre_split.sizes()) or window.height()
            window.centre_split.setSizes([round(height * f) for f in PRESENTATION_ROWS])
        else:
            look.update(presenting=False, scale=settings.scale)
            if not self._was_full_screen:
                window.showNormal()
            if self._sizes is not None:
                window.splitter.setSizes(self._sizes[0])
                window.centre_split.setSizes(self._sizes[1])
        self.present.setChecked(on)
        self.full_screen.setChecked(self.window.isFullScreen())

    def toggle_full_screen(self) -> None:
        if self.window.isFullScreen():
            self.window.showNormal()
        else:
            self.window.showFullScreen()
        self.full_screen.setChecked(self.window.isFullScreen())

    def set_theme(self, theme: str) -> None:
        appearance().update(theme=theme)
        self.themes[theme].setChecked(True)
        self._remember()

    def set_colormap(self, name: str) -> None:
        appearance().update(colormap=name)
        self.colormaps[name].setChecked(True)
        self._remember()

    def _remember(self) -> None:
        look = appearance().look
        settings = self.window.settings
        if look.presenting:
            settings.presentation_scale = look.scale
        else:
            settings.scale = look.scale
        settings.theme = look.theme
        settings.colormap = look.colormap
        settings.save()

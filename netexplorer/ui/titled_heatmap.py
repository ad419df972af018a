"""A heatmap with a caption above it, or a message in its place ("No gradient yet")."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from .appearance import Look, follow
from .heatmap import HeatmapView


class TitledHeatmap(QWidget):
    """A heatmap with a caption, or a message in its place."""

    def __init__(self, parent: QWidget | None = None, compact: bool = False) -> None:
        super().__init__(parent)
        self.caption = QLabel(self)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view = HeatmapView(self, compact=compact)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.message)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.caption)
        layout.addWidget(self.stack, 1)
        follow(self.apply_look)

    def apply_look(self, look: Look) -> None:
        c = look.colors
        self.message.setStyleSheet(
            f"color: {c.muted}; font-size: {look.pt(14):.1f}pt; background: {c.panel};"
        )

    def show_values(
        self,
        caption: str,
        values: np.ndarray,
        display,
        levels=None,
    ) -> None:
        self.caption.setText(caption)
        self.view.set_tensor(values, display, levels)
        self.stack.setCurrentWidget(self.view)

    def show_message(self, caption: str, text: str) -> None:
        self.caption.setText(caption)
        self.view.clear_tensor()
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    @property
    def showing_values(self) -> bool:
        return self.stack.currentWidget() is self.view

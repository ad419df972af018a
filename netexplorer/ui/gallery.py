"""The examples gallery: what the app opens on with no SOURCE. A list of the built-in
networks, the selected one's explanation and input, and a button to open it."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..examples import EXAMPLES, Example


class GalleryPage(QWidget):
    open_requested = Signal(str)  # a source spec: example:NAME, or a file path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        heading = QLabel(
            "<h1>netexplorer</h1><p>Look inside a PyTorch network: its modules as a tree, "
            "every parameter as a heatmap, tied parameters linked, gradients live. "
            "Pick an example, or open a checkpoint (File ▸ Open, Ctrl+O).</p>",
            self,
        )
        heading.setWordWrap(True)

        self.list = QListWidget(self)
        self.list.setMinimumWidth(320)
        for example in EXAMPLES.values():
            item = QListWidgetItem(f"{example.title}\nexample:{example.name}")
            item.setData(Qt.ItemDataRole.UserRole, example.name)
            item.setToolTip(f"Open with: netexplorer example:{example.name}")
            self.list.addItem(item)
        self.list.setSpacing(3)
        self.list.currentRowChanged.connect(self._on_current_changed)
        self.list.itemActivated.connect(lambda _item: self._open_current())

        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.explanation = QLabel(self)
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.RichText)
        self.explanation.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.open_button = QPushButton("Open example", self)
        self.open_button.setDefault(True)
        self.open_button.setToolTip("Open the selected example (Enter)")
        self.open_button.clicked.connect(self._open_current)

        right = QVBoxLayout()
        right.addWidget(self.title)
        right.addWidget(self.explanation, 1)
        right.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        body = QHBoxLayout()
        body.addWidget(self.list, 2)
        body.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(body, 1)
        self.list.setCurrentRow(0)

    def current_example(self) -> Example | None:
        item = self.list.currentItem()
        return None if item is None else EXAMPLES[item.data(Qt.ItemDataRole.UserRole)]

    def _on_current_changed(self, _row: int) -> None:
        example = self.current_example()
        if example is None:
            return
        self.title.setText(f"<h2>{html.escape(example.title)}</h2>")
        self.explanation.setText(
            f"<p style='font-size:large'>{html.escape(example.explanation)}</p>"
            f"<p>Input: <code>{html.escape(example.default_input.describe())}</code></p>"
            f"<p style='color:#555'>Command line: <code>netexplorer example:{example.name}"
            "</code></p>"
        )

    def _open_current(self) -> None:
        example = self.current_example()
        if example is not None:
            self.open_requested.emit(f"example:{example.name}")

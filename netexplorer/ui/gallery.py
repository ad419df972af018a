"""The examples gallery: what the app opens on with no SOURCE. A list of the built-in
networks; for the selected one its explanation, its input, and a preview of its structure as
`print(net)` writes it (with shapes, parameter counts and tie marks); a button opens it.

The list needs no torch; the preview is built in a worker (the first one imports torch), so
the window appears at once."""

from __future__ import annotations

import html

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..examples import EXAMPLES, Example
from .appearance import MUTED, Look, follow
from .icons import app_icon
from .workers import TaskRunner

PREVIEW_DELAY_MS = 400


def example_summary(name: str) -> tuple[str, str]:
    """Worker task: (name, the example's --summary text)."""
    from ..core.describe import summary_text
    from ..core.sources import open_source

    return name, summary_text(open_source(f"example:{name}"))


class GalleryPage(QWidget):
    open_requested = Signal(str)  # a source spec: example:NAME, or a file path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        logo = QLabel(self)
        logo.setPixmap(app_icon().pixmap(56, 56))
        self.logo = logo
        self.heading = QLabel(self)
        self.heading.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(logo)
        top.addWidget(self.heading, 1)

        self._look = Look()
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(0, 0))
        for example in EXAMPLES.values():
            item = QListWidgetItem(f"{example.title}\n   example:{example.name}")
            item.setData(Qt.ItemDataRole.UserRole, example.name)
            item.setToolTip(f"Open with: netexplorer example:{example.name}")
            self.list.addItem(item)
        self.list.setSpacing(4)
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
        self.open_button.setMinimumHeight(36)
        self.open_button.setToolTip("Open the selected example (Enter)")
        self.open_button.clicked.connect(self._open_current)
        self.preview = QPlainTextEdit(self)
        self.preview.setReadOnly(True)
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.preview.setToolTip("The network as print(net) shows it, with shapes and ties")

        right = QVBoxLayout()
        right.addWidget(self.title)
        right.addWidget(self.explanation)
        right.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        right.addWidget(self.preview, 1)
        body = QHBoxLayout()
        body.addWidget(self.list, 2)
        body.addLayout(right, 5)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)

        self._summaries: dict[str, str] = {}
        self._previewer = TaskRunner(self)
        self._preview_timer = QTimer(self, singleShot=True, interval=PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._show_preview)
        follow(self.apply_look)
        self.list.setCurrentRow(0)

    def apply_look(self, look: Look) -> None:
        """Every size of the gallery follows the text scale (a lecture starts here)."""
        self.logo.setPixmap(app_icon().pixmap(look.px(56), look.px(56)))
        self.heading.setText(
            f"<span style='font-size:{look.pt(22):.1f}pt; font-weight:600'>netexplorer</span>"
            "<br>Look inside a PyTorch network: its modules as a tree, every parameter as a "
            "heatmap, tied parameters linked, gradients live. Pick an example, or open a "
            "checkpoint (File ▸ Open, Ctrl+O)."
        )
        base = QApplication.font().pointSizeF()
        font = QFont(QApplication.font())
        font.setPointSizeF(base * 1.2)
        self.list.setFont(font)
        self.list.setMinimumWidth(look.px(300))
        self.list.setMaximumWidth(look.px(420))
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(base * 1.15)
        self.preview.setFont(mono)
        self.open_button.setMinimumHeight(look.px(36))
        self._look = look
        self._on_current_changed(self.list.currentRow())

    def current_example(self) -> Example | None:
        item = self.list.currentItem()
        return None if item is None else EXAMPLES[item.data(Qt.ItemDataRole.UserRole)]

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # built once the gallery has been on screen a moment: its first build imports torch,
        # which should not compete with a file opened right away (File > Open, a drop)
        self._preview_timer.start()

    def _on_current_changed(self, _row: int) -> None:
        example = self.current_example()
        if example is None:
            return
        look = self._look
        self.title.setText(
            f"<span style='font-size:{look.pt(18):.1f}pt; font-weight:600'>"
            f"{html.escape(example.title)}</span>"
        )
        self.explanation.setText(
            f"<p style='font-size:{look.pt(13):.1f}pt'>{html.escape(example.explanation)}</p>"
            f"<p>Input: <code>{html.escape(example.default_input.describe())}</code> &nbsp; "
            f"<span style='color:{MUTED}'>Command line: <code>netexplorer example:{example.name}"
            "</code></span></p>"
        )
        self._show_preview()

    def _show_preview(self) -> None:
        example = self.current_example()
        if example is None or not self.isVisible():
            return
        summary = self._summaries.get(example.name)
        if summary is not None:
            self.preview.setPlainText(summary)
            return
        self.preview.setPlainText("building the preview…")
        self._previewer.run(
            example_summary,
            example.name,
            on_result=self._on_summary,
            on_error=lambda e: self.preview.setPlainText(f"no preview: {e}"),
        )

    def _on_summary(self, result: tuple[str, str]) -> None:
        name, summary = result
        self._summaries[name] = summary
        example = self.current_example()
        if example is not None and example.name == name:
            self.preview.setPlainText(summary)

    def _open_current(self) -> None:
        example = self.current_example()
        if example is not None:
            self.open_requested.emit(f"example:{example.name}")

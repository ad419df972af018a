"""Typing a new value into one heatmap cell: a small field over the cell. Enter sets it (a
number: `100`, `-0.5`, `1e-3`, `nan`, `inf`); anything else is refused in place (the field
turns red and says why, and stays open); Escape or clicking elsewhere leaves it."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget

REFUSED_STYLE = "background: #fde2e1; border: 2px solid #c0392b;"


def parse_number(text: str) -> float | None:
    """The number typed, or None when it is not one."""
    try:
        return float(text.strip())
    except ValueError:
        return None


class CellEditor(QLineEdit):
    """A one-line field over a cell; `accepted(index, value)` when a number is entered."""

    accepted = Signal(object, float)

    def __init__(
        self, parent: QWidget, index: tuple[int, ...], current: float, cell: QRectF
    ) -> None:
        super().__init__(parent)
        self.index = index
        self.setText(f"{current:.6g}")
        self.selectAll()
        self.setToolTip("Type a number, Enter to set it, Escape to leave")
        width = max(int(cell.width()), self.fontMetrics().horizontalAdvance("-0.000000") + 16)
        height = max(int(cell.height()), self.sizeHint().height())
        centre = cell.center()
        self.setGeometry(int(centre.x() - width / 2), int(centre.y() - height / 2), width, height)
        self.returnPressed.connect(self._submit)
        self.textEdited.connect(lambda _text: self._mark(""))
        self.show()
        self.setFocus()

    @property
    def refused(self) -> bool:
        return bool(self.styleSheet())

    def _submit(self) -> None:
        value = parse_number(self.text())
        if value is None:
            self._mark(f"{self.text()!r} is not a number: type one like 100, -0.5 or 1e-3")
            return
        self.accepted.emit(self.index, value)
        self._leave()

    def _leave(self) -> None:
        """Close, and give the keyboard back to the heatmap (Ctrl+Z undoes the edit)."""
        parent = self.parentWidget()
        self.close()
        self.deleteLater()
        if parent is not None:
            parent.setFocus()

    def _mark(self, why: str) -> None:
        self.setStyleSheet(REFUSED_STYLE if why else "")
        self.setToolTip(why or "Type a number, Enter to set it, Escape to leave")

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self._leave()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        if not self.refused:  # a refused value stays, with its reason, until fixed or left
            self.close()
            self.deleteLater()


class ElementSetter(QWidget):
    """The details panel's way to set one element: its index (`0, 0`) and a value; Enter
    or Set applies; a bad index or value is refused in place, with the reason."""

    requested = Signal(object, float)  # index, value

    def __init__(self, shape: tuple[int, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.shape = shape
        self.index = QLineEdit(self)
        self.value = QLineEdit(self)
        self.value.setPlaceholderText("value")
        self.button = QPushButton("Set", self)
        self.button.setToolTip("Set the element (every path of a tied tensor changes)")
        for field in (self.index, self.value):
            field.returnPressed.connect(self._submit)
            field.textEdited.connect(lambda _t, f=field: self._mark(f, ""))
        self.button.clicked.connect(self._submit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.index, 2)
        layout.addWidget(self.value, 2)
        layout.addWidget(self.button)
        self.set_shape(shape)

    def set_shape(self, shape: tuple[int, ...]) -> None:
        """Set elements of a tensor of this shape (another selection): fields emptied."""
        self.shape = shape
        self.index.clear()
        self.value.clear()
        self._mark(self.index, "")
        self._mark(self.value, "")
        self.index.setPlaceholderText(", ".join("0" for _ in shape) or "()")
        self.index.setToolTip(f"The element's index, e.g. {self.index.placeholderText()}")
        self.value.setToolTip("The new value: a number like 100, -0.5 or 1e-3")

    def _submit(self) -> None:
        parts = [
            p for p in self.index.text().replace("[", "").replace("]", "").split(",") if p.strip()
        ]
        try:
            index = tuple(int(p) for p in parts)
        except ValueError:
            index = None
        if (
            index is None
            or len(index) != len(self.shape)
            or any(not 0 <= i < n for i, n in zip(index, self.shape, strict=True))
        ):
            self._mark(
                self.index, f"an index of {len(self.shape)} numbers within {list(self.shape)}"
            )
            return
        value = parse_number(self.value.text())
        if value is None:
            self._mark(self.value, f"{self.value.text()!r} is not a number")
            return
        self.requested.emit(index, value)

    def _mark(self, field: QLineEdit, why: str) -> None:
        sheet = REFUSED_STYLE if why else ""
        if field.styleSheet() != sheet:  # setting a style sheet re-polishes, even the same
            field.setStyleSheet(sheet)
        if why:
            field.setToolTip(why)

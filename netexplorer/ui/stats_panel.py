"""The details panel: what the selected module or tensor is, its statistics and histogram,
and where it came from (source, metadata, an example's explanation)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import QElapsedTimer, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core.describe import format_count, module_label
from ..core.display import TensorStats, iter_tensor_stats
from ..core.tasks import run_to_end
from ..core.text import shape_text
from ..core.tree import ModuleNode, ModuleTree, TensorNode
from .appearance import MUTED, Look, follow
from .cell_editor import ElementSetter
from .document import Document, TensorData
from .heatmap import format_value
from .metadata_view import metadata_rows
from .plotting import apply_plot_look, pg
from .shard_picture import ShardPicture
from .workers import GUI_THREAD_ELEMENTS, TaskRunner

LIVE_STATS_MS = 250
STATS_AFTER_PAINT_MS = 60  # statistics refresh at most 4 times a second while training
STAT_ROWS = [
    ("min", "min"),
    ("max", "max"),
    ("mean", "mean"),
    ("std", "std"),
    ("norm", "norm (L2)"),
    ("sum", "sum"),
    ("zero_fraction", "zeros"),
    ("nan_count", "NaN"),
    ("inf_count", "Inf"),
]


def compute_stats(key: tuple[str, int], values: np.ndarray):
    """Worker task: progress fractions, then (key, TensorStats)."""
    stats = yield from iter_tensor_stats(values)
    return key, stats


def _link(path: str) -> str:
    return f"<a href='{html.escape(path)}'>{html.escape(path)}</a>"


class DetailsPanel(QScrollArea):
    stats_progress = Signal(float)  # fraction done of statistics computed in a worker

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget(self)
        self.setWidget(body)
        layout = QVBoxLayout(body)

        self.heading = QLabel(body)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)

        access_row = QHBoxLayout()
        self.access = QLabel(body)
        self.access.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.access.setToolTip("How Python reaches it")
        mono = self.access.font()
        mono.setFamily("monospace")
        self.access.setFont(mono)
        self.copy_button = QPushButton("Copy", body)
        self.copy_button.setToolTip("Copy the Python access expression")
        self.copy_button.clicked.connect(self._copy_access)
        access_row.addWidget(self.access, 1)
        access_row.addWidget(self.copy_button)
        layout.addLayout(access_row)

        self.facts_box = QGroupBox("About", body)
        self.facts = QFormLayout(self.facts_box)
        layout.addWidget(self.facts_box)

        self.stats_box = QGroupBox("Statistics", body)
        self.stats_grid = QGridLayout(self.stats_box)
        self.stat_labels: dict[str, QLabel] = {}
        self._stat_names: list[QLabel] = []
        for key, name in STAT_ROWS:
            self._stat_names.append(QLabel(name, self.stats_box))
            value = QLabel("—", self.stats_box)
            value.setFont(mono)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.stat_labels[key] = value
        self.stats_note = QLabel("", self.stats_box)
        self.stats_note.setWordWrap(True)
        self._stat_pairs = 0  # (name, value) pairs per row: 2, or 1 where that is too wide
        self._arrange_stats(2)
        layout.addWidget(self.stats_box)

        self.histogram = pg.PlotWidget(body)
        self.histogram.setMinimumHeight(150)
        self.histogram.setMenuEnabled(False)
        self.histogram.setMouseEnabled(x=False, y=False)
        self.histogram.hideButtons()
        self.histogram.setToolTip("Histogram of the finite values")
        for name in ("left", "bottom"):
            self.histogram.getAxis(name).enableAutoSIPrefix(False)
        self._bars = self.histogram.plot(
            [0.0, 1.0], [0.0], stepMode="center", fillLevel=0, brush=(46, 134, 193, 160), pen="k"
        )
        self._bars.setVisible(False)
        layout.addWidget(self.histogram)

        self.shards_box = QGroupBox("Shards", body)  # a distributed checkpoint's chunks
        self.shards = ShardPicture(self.shards_box)
        self.shards.setToolTip("How this tensor is split across the ranks' shard files")
        QVBoxLayout(self.shards_box).addWidget(self.shards)
        self.shards_box.setVisible(False)
        layout.addWidget(self.shards_box)

        self.source_box = QGroupBox("Source", body)
        self.source = QLabel(self.source_box)
        self.source.setWordWrap(True)
        self.source.setTextFormat(Qt.TextFormat.RichText)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        QVBoxLayout(self.source_box).addWidget(self.source)
        layout.addWidget(self.source_box)
        layout.addStretch(1)

        self._stats_runner = TaskRunner(self)
        self._grad_label: QLabel | None = None
        self._facts_used = 0  # rows of the facts form the selection shows (the rest hidden)
        self._stats_clock = QElapsedTimer()
        self._pending: TensorData | None = None  # live data that came too soon after the last
        self._pending_timer = QTimer(self, singleShot=True)
        self._pending_timer.timeout.connect(self._show_pending)
        self.stats: TensorStats | None = None
        self._stats_key: tuple[str, int] | None = None  # (path, data version) shown
        follow(self.apply_look)
        document.tree_changed.connect(self._on_tree_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.tensor_data_changed.connect(self._on_tensor_data_changed)
        # a training run's slider: the same selection at another checkpoint
        document.timeline.step_changed.connect(
            lambda _s: self._on_selection_changed(document.selected)
        )
        # the window makes its panels after the tree may be open and a tensor selected
        self._on_tree_changed(document.tree)
        self._on_selection_changed(document.selected)
        self._on_tensor_data_changed(document.tensor_data)

    def _arrange_stats(self, pairs: int) -> None:
        """Statistics in `pairs` (name, value) pairs per row."""
        if pairs == self._stat_pairs:
            return
        self._stat_pairs = pairs
        grid = self.stats_grid
        for name, value in zip(self._stat_names, self.stat_labels.values(), strict=True):
            grid.removeWidget(name)
            grid.removeWidget(value)
        grid.removeWidget(self.stats_note)
        for i, (name, value) in enumerate(
            zip(self._stat_names, self.stat_labels.values(), strict=True)
        ):
            grid.addWidget(name, i // pairs, (i % pairs) * 2)
            grid.addWidget(value, i // pairs, (i % pairs) * 2 + 1)
        rows = (len(STAT_ROWS) + pairs - 1) // pairs
        grid.addWidget(self.stats_note, rows, 0, 1, 2 * pairs)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_stats()

    def _fit_stats(self) -> None:
        """Two pairs of statistics per row where they fit, else one (large text, a narrow
        column): the panel never needs more width than it has."""
        names = max(label.sizeHint().width() for label in self._stat_names)
        values = max(
            label.fontMetrics().horizontalAdvance("-0.0000000e+00")
            for label in self.stat_labels.values()
        )
        needed = 2 * (names + values) + 5 * self.stats_grid.horizontalSpacing() + 40
        self._arrange_stats(2 if self.viewport().width() >= needed else 1)

    def apply_look(self, look: Look) -> None:
        apply_plot_look(self.histogram, look, {"bottom": "value", "left": "count"})
        self.histogram.setMinimumHeight(look.px(150))
        font = QFont(QApplication.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.heading.setFont(font)
        QTimer.singleShot(0, self, self._fit_stats)  # once the labels have the new font

    # -- document -> panel ------------------------------------------------------------------

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self.source_box.setVisible(tree is not None)
        if tree is not None:
            self.source.setText(self._source_html(tree))
        self._on_selection_changed(None)

    def _on_selection_changed(self, path: str | None) -> None:
        tree = self.document.tree
        self._clear_facts()
        self._stats_runner.cancel()
        self.stats = None
        self._stats_key = None
        self.shards_box.setVisible(False)
        if tree is None or path is None:
            self.heading.setText("Nothing selected")
            self.access.setText("")
            self.copy_button.setEnabled(False)
            self.stats_box.setVisible(False)
            self.histogram.setVisible(False)
            self._end_facts()
            return
        node = tree.node(path)
        self.copy_button.setEnabled(True)
        self.access.setText(node.access)
        if isinstance(node, TensorNode):
            self._show_tensor(tree, node)
        else:
            self._show_module(tree, node)
        self._end_facts()

    def _show_tensor(self, tree: ModuleTree, t: TensorNode) -> None:
        self.heading.setText(f"<b>{html.escape(t.path)}</b>")
        self._fact("Kind", t.kind + ("" if t.requires_grad else " (requires_grad=False)"))
        self._fact("Shape", shape_text(t.shape, "pretty"))
        self._fact("Dtype", t.dtype)
        self._fact("Elements", f"{t.numel:,}")
        partners = tree.tie_partners(t.path)
        if partners:
            links = ", ".join(_link(p) for p in partners)
            group = tree.tie_group(t.path)
            origin = ""
            if group is not None and group.tie_from == "config":
                origin = (
                    "tied in the model that config.json names (the file stores it once, as "
                    "safetensors must); "
                )
            self._fact(
                "Tied with",
                f"{links}<br><span style='color:{MUTED}'>{origin}one tensor: its gradient is "
                "the sum over every use</span>",
                rich=True,
            )
        if tree.is_live and t.dtype.startswith(("float", "bfloat")) and t.numel:
            setter = self._reuse_row("Set element", ElementSetter)
            if setter is None:
                setter = ElementSetter(t.shape, self.facts_box)
                setter.requested.connect(self._set_element)
                self.facts.addRow("Set element", setter)
            else:
                setter.set_shape(t.shape)
            self._facts_used += 1
        self.stats_box.setVisible(True)
        self.histogram.setVisible(True)
        chunks = getattr(t.handle, "chunks", None)
        self.shards_box.setVisible(chunks is not None)
        if chunks is not None:
            self.shards.set_layout(t.shape, chunks)
            ranks = len({c.rank for c in chunks})
            n = len(chunks)
            held = (
                f"{n} chunk{'s' if n != 1 else ''} held by {ranks} rank{'s' if ranks != 1 else ''}"
            )
            self._fact("Shards", held)
        if not t.handle.has_values:  # a meta tensor, or a run's checkpoint without it
            self._set_stats(None, f"no values: {t.handle.no_values_reason}")
        data = self.document.tensor_data
        if data is not None and data.path == t.path:
            self._on_tensor_data_changed(data)

    def _show_module(self, tree: ModuleTree, m: ModuleNode) -> None:
        self.heading.setText(f"<b>{html.escape(m.path or 'net')}</b> {html.escape(m.type_name)}")
        label = module_label(m)
        if label:
            self._fact("Module", label)
        tied = any(t.tie is not None for t in m.walk_tensors())
        note = " (a tied tensor counted once)" if tied else ""
        self._fact("Parameters", f"{m.parameter_count:,}{note}")
        if m.tensor_elements:
            self._fact(
                "Unknown kind",
                f"{m.tensor_elements:,} elements the file does not call parameters or buffers",
            )
        self._fact("Tensors here", str(len(m.tensors)))
        self._fact("Child modules", str(len(m.children)))
        if m.shared_with:
            kind = "" if m.has_parameters else " (no parameters: nothing to tie)"
            links = ", ".join(_link(p) for p in m.shared_with)
            self._fact("Same object as", links + kind, rich=True)
        self.stats_box.setVisible(False)
        self.histogram.setVisible(False)

    def _on_tensor_data_changed(self, data: TensorData | None) -> None:
        """Statistics of the values the heatmap shows (computed in a worker when large).
        While training streams data, at most a few times a second: numbers that change
        faster cannot be read, and the histogram is costly to redraw."""
        too_soon = (
            data is not None
            and data.live
            and self._stats_key is not None
            and data.path == self._stats_key[0]
            and self._stats_clock.isValid()
            and self._stats_clock.elapsed() < LIVE_STATS_MS
        )
        if too_soon:
            self._pending = data
            if not self._pending_timer.isActive():
                self._pending_timer.start(LIVE_STATS_MS - self._stats_clock.elapsed())
            return
        self._pending = None
        self._stats_clock.start()
        node = self.document.selected_node()
        if data is None or not isinstance(node, TensorNode) or data.path != node.path:
            return
        key = (data.path, data.version)
        if key == self._stats_key:
            return
        self._stats_key = key
        grad_norm = None
        if data.grad is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN grads: norm says so
                grad_norm = float(np.linalg.norm(data.grad.astype(np.float64)))
        self._set_grad_fact(data, grad_norm)
        if data.stats is not None:  # computed when it was shown before (the document's cache)
            self._stats_runner.cancel()
            self._on_stats((key, data.stats))
        elif data.values.size <= GUI_THREAD_ELEMENTS:
            self._on_stats(run_to_end(compute_stats(key, data.values)))
        else:
            self.stats_note.setText("computing…")
            # after the heatmap of these values has been drawn: the worker's chunks would
            # hold the GIL while the GUI thread paints it
            QTimer.singleShot(STATS_AFTER_PAINT_MS, self, lambda: self._start_stats(key, data))

    def _start_stats(self, key: tuple[str, int], data: TensorData) -> None:
        if key != self._stats_key:  # another tensor was selected meanwhile
            return
        self._stats_runner.run(
            compute_stats,
            key,
            data.values,
            on_result=self._on_stats,
            on_progress=self._on_stats_progress,
            on_error=lambda e: self._set_stats(None, f"cannot compute: {e}"),
        )

    @property
    def stats_runner(self) -> TaskRunner:
        """The worker computing statistics of big tensors (for the status bar's progress)."""
        return self._stats_runner

    def _on_stats_progress(self, fraction: float) -> None:
        self.stats_note.setText(f"computing… {fraction:.0%}")
        self.stats_progress.emit(fraction)

    def cancel_stats(self) -> None:
        """Stop computing statistics (Cancel in the status bar)."""
        self._stats_runner.cancel()
        self._set_stats(None, "not computed (cancelled): select the tensor again")

    def _show_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending is self.document.tensor_data:
            self._stats_clock.invalidate()
            self._on_tensor_data_changed(pending)

    def _set_grad_fact(self, data: TensorData, grad_norm: float | None) -> None:
        if not data.live:
            return
        if grad_norm is not None:
            text = f"norm {grad_norm:.6g}"
        elif data.kind == "buffer":
            text = "None (a buffer has no gradient)"
        elif not self._requires_grad(data.path):
            text = "None (requires_grad is False: frozen, backward passes it by)"
        elif self.document.session.state.holdings.zeroed:
            text = "None (set so by Zero grad)"
        elif self.document.session.state.holdings.backward_passes:
            text = "None (the last backward passes did not reach it: unused by the forward)"
        else:
            text = "None (no backward pass yet)"
        if self._grad_label is None:
            self._grad_label = self._fact("Gradient", text)
        elif self._grad_label.text() != text:
            self._grad_label.setText(text)

    def _requires_grad(self, path: str) -> bool:
        tree = self.document.tree
        node = tree.tensors.get(path) if tree is not None else None
        if node is None:
            return True
        live = getattr(node.handle, "tensor", None)  # a live model: as it is now
        return bool(live.requires_grad) if live is not None else node.requires_grad

    def _on_stats(self, result: tuple[tuple[str, int], TensorStats]) -> None:
        key, stats = result
        if key == self._stats_key:
            data = self.document.tensor_data
            if data is not None and (data.path, data.version) == key:
                data.stats = stats  # kept with the data: shown at once next time
            self._set_stats(stats, f"statistics of the {stats.note}" if stats.note else "")

    def _set_stats(self, stats: TensorStats | None, note: str) -> None:
        self.stats = stats
        for key, label in self.stat_labels.items():
            value = None if stats is None else getattr(stats, key)
            if value is None:
                label.setText("—")
            elif key == "zero_fraction":
                label.setText(f"{value:.1%}")
            elif isinstance(value, int):
                label.setText(f"{value:,}")
            else:
                label.setText(format_value(value))
        for key in ("nan_count", "inf_count"):
            bad = stats is not None and getattr(stats, key) > 0
            sheet = "color: #c0c; font-weight: bold" if bad else ""
            if self.stat_labels[key].styleSheet() != sheet:  # a style sheet set re-polishes
                self.stat_labels[key].setStyleSheet(sheet)  # (10-20 ms each, even the same)
        self.stats_note.setText(note)
        # one bars item, its data replaced: a new item per selection re-laid the plot out
        label = "value"
        if stats is not None and stats.histogram is not None:
            counts, edges = stats.histogram
            edges, power = histogram_scale(edges)
            if power:  # values near float64's limit: the plot's own range arithmetic overflows
                label = f"value (×1e{power})"
            self._bars.setData(edges, counts)
            self._bars.setVisible(True)
        else:
            self._bars.setVisible(False)
        bottom = self.histogram.getAxis("bottom")
        if bottom.labelText != label:
            self.histogram.setLabel("bottom", label)

    # -- facts ------------------------------------------------------------------------------

    def _fact(self, name: str, value: str, rich: bool = False) -> QLabel:
        """The next fact row, `name` and its value (HTML when `rich`)."""
        text = value if rich else html.escape(value)
        label = self._reuse_row(name, QLabel)
        if label is None:
            label = QLabel(text, self.facts_box)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
            label.linkActivated.connect(self._on_link)
            self.facts.addRow(name, label)
        elif label.text() != text:
            label.setText(text)
        self._facts_used += 1
        return label

    def _reuse_row(self, name: str, kind: type[QWidget]) -> QWidget | None:
        """The field of the next fact row, shown and named `name`, where that row holds a
        `kind`; else None, that row and those below it removed. Going from tensor to tensor
        the rows stay: removing and making a dozen widgets relaid and repainted the panel
        several times per selection."""
        row = self._facts_used
        if row >= self.facts.rowCount():
            return None
        field = self.facts.itemAt(row, QFormLayout.ItemRole.FieldRole).widget()
        if type(field) is not kind:
            while self.facts.rowCount() > row:
                self.facts.removeRow(row)
            return None
        title = self.facts.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
        if title.text() != name:
            title.setText(name)
        self.facts.setRowVisible(row, True)
        return field

    def _end_facts(self) -> None:
        """Hide the rows the selection did not use (kept for the next)."""
        for row in range(self._facts_used, self.facts.rowCount()):
            self.facts.setRowVisible(row, False)

    def _set_element(self, index: tuple[int, ...], value: float) -> None:
        path = self.document.selected
        if path is not None:
            self.document.session.edit_value(path, index, value)

    def fact_texts(self) -> dict[str, str]:
        """Each shown fact row's name and the plain text of its value (rows that hold a
        text)."""
        out = {}
        for row in range(self.facts.rowCount()):
            if not self.facts.isRowVisible(row):
                continue
            name = self.facts.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
            value = self.facts.itemAt(row, QFormLayout.ItemRole.FieldRole).widget()
            if isinstance(name, QLabel) and isinstance(value, QLabel):
                document = QTextDocument()
                document.setHtml(value.text())
                out[name.text()] = document.toPlainText()
        return out

    def _clear_facts(self) -> None:
        """Start another selection's facts (rows reused from the top, see _reuse_row)."""
        self._grad_label = None
        self._facts_used = 0

    def _on_link(self, path: str) -> None:
        self.document.select(path)

    def _copy_access(self) -> None:
        QGuiApplication.clipboard().setText(self.access.text())

    def _source_html(self, tree: ModuleTree) -> str:
        rows = [f"<b>{html.escape(tree.source or '(live module)')}</b>"]
        if tree.explanation:
            rows.append(html.escape(tree.explanation))
        meta: dict[str, Any] = {"reader": tree.reader, **tree.metadata}
        meta.pop("title", None)
        rows += metadata_rows(meta)  # nested dicts (hyper_parameters, config) indented
        if tree.default_input is not None:
            rows.append(
                f"<span style='color:{MUTED}'>input:</span> "
                f"<code>{html.escape(tree.default_input.describe())}</code>"
            )
        total = format_count(tree.total_parameters)
        tied = " (ties counted once)" if tree.tie_groups else ""
        rows.append(f"<span style='color:{MUTED}'>parameters:</span> {total}{tied}")
        if tree.has_unknown_kind:
            rows.append(
                f"<span style='color:{MUTED}'>tensors of unknown kind:</span> "
                f"{format_count(tree.total_tensor_elements)} elements (the file does not say "
                "parameter or buffer)"
            )
        return "<br>".join(rows)


def histogram_scale(edges):
    """Histogram edges the plot can draw, and the power of ten they were divided by (0: as
    they are). Edges beyond 1e200 (values near float64's limit, 1.7e308) overflow the plot's
    range arithmetic into inf and draw nothing, so they are shown divided by a power of ten."""
    import numpy as np

    edges = np.asarray(edges, dtype=np.float64)
    biggest = float(np.max(np.abs(edges))) if edges.size else 0.0
    if not np.isfinite(biggest) or biggest <= 1e200:
        return edges, 0
    power = int(np.floor(np.log10(biggest)))
    return edges / 10.0**power, power

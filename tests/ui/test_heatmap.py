"""The heatmap: orientation, symmetric diverging levels, hover readout from the full tensor,
NaN drawn distinctly, and big tensors loaded off the GUI thread."""

import itertools
import threading

import numpy as np
import torch
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from torch import nn

from netexplorer.core.display import display_array
from netexplorer.core.handles import ArrayHandle
from netexplorer.core.tree import tree_from_entries, tree_from_module
from netexplorer.ui.document import Document
from netexplorer.ui.heatmap import NAN_RGBA, VIEW_BACKGROUND, HeatmapView
from netexplorer.ui.heatmap_panel import HeatmapPanel


def make_panel(qtbot, net, select):
    document = Document()
    panel = HeatmapPanel(document)
    qtbot.addWidget(panel)
    panel.resize(700, 600)
    panel.show()
    qtbot.waitExposed(panel)
    document.set_tree(tree_from_module(net))
    document.select(select)
    # the view fits the image to its final size once the layout settles
    qtbot.waitUntil(lambda: panel.view.viewport().rect().contains(widget_pos(panel.view, 0, 0)))
    return document, panel


def widget_pos(view: HeatmapView, row: float, col: float):
    scene = view.plot.getViewBox().mapViewToScene(QPointF(col, row))
    return view.mapFromScene(scene)


def move_mouse(view: HeatmapView, pos: QPointF) -> None:
    viewport = view.viewport()
    event = QMouseEvent(
        QEvent.Type.MouseMove,
        pos,
        QPointF(viewport.mapToGlobal(pos.toPoint())),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(viewport, event)


def hover(qtbot, panel, row: int, col: int) -> str:
    """Move the mouse onto cell (row, col) of the value heatmap as a user would, and return
    the readout. Mouse-move events go to the view directly (QTest.mouseMove drops moves to
    where it thinks the cursor already is); pyqtgraph drops moves faster than 100 a second,
    and the axes may still settle their width, so the move is repeated until it lands."""
    view = panel.view

    def landed() -> bool:
        move_mouse(view, QPointF(1, 1))
        qtbot.wait(15)
        move_mouse(view, QPointF(widget_pos(view, row + 0.5, col + 0.5)))
        return panel.readout.text().startswith(f"[{row}, {col}] = ")

    qtbot.waitUntil(landed, timeout=3000)
    return panel.readout.text()


def test_an_8x4_weight_is_8_rows_tall_with_row_0_on_top(qtbot):
    net = nn.Linear(4, 8)
    _doc, panel = make_panel(qtbot, net, "weight")
    view = panel.view
    image = view.image.image
    assert image.shape == (8, 4)
    np.testing.assert_array_equal(image, net.weight.detach().numpy())
    rect = view.image.boundingRect()
    assert (rect.width(), rect.height()) == (4, 8)
    top, bottom = widget_pos(view, 0.5, 0.5), widget_pos(view, 7.5, 0.5)
    left, right = widget_pos(view, 0.5, 0.5), widget_pos(view, 0.5, 3.5)
    assert top.y() < bottom.y()  # row 0 above row 7
    assert left.x() < right.x()
    # square cells: 8 rows take twice the height that 4 columns take in width
    height, width = bottom.y() - top.y(), right.x() - left.x()
    assert abs(height / width - 7 / 3) < 0.05


def test_levels_are_symmetric_around_zero_with_a_diverging_map(qtbot):
    net = nn.Linear(4, 8)
    with torch.no_grad():
        net.weight.fill_(0.1)
        net.weight[2, 3] = -0.5
    _doc, panel = make_panel(qtbot, net, "weight")
    assert panel.view.levels == (-0.5, 0.5)
    assert tuple(panel.view.colorbar.levels()) == (-0.5, 0.5)
    lut = panel.view.colorbar.colorMap().getLookupTable(nPts=3, alpha=False)
    low, mid, high = (tuple(int(v) for v in c) for c in lut)
    assert low[2] > low[0] and high[0] > high[2]  # blue below zero, red above
    assert min(mid) > 180  # a light centre at zero


def test_hover_reads_the_element_under_the_mouse(qtbot):
    net = nn.Linear(4, 8)
    _doc, panel = make_panel(qtbot, net, "weight")
    value = net.weight[5, 2].item()
    assert hover(qtbot, panel, 5, 2) == f"[5, 2] = {value:.6g}"


def test_hover_on_a_reduced_display_reports_the_full_tensor_element(qtbot):
    values = np.zeros((5000, 3), dtype=np.float32)
    values[4321, 1] = 2.5
    display = display_array(values, max_rows=100)
    view = HeatmapView()
    qtbot.addWidget(view)
    view.set_tensor(values, display)
    row = 4321 // display.row_step
    assert view.readout(row, 1) == "[4321, 1] = 2.5  (largest |value| of its block)"


def test_nan_is_magenta_not_zero_and_levels_ignore_it(qtbot):
    net = nn.Linear(4, 8)
    with torch.no_grad():
        net.weight[1, 1] = float("nan")
    _doc, panel = make_panel(qtbot, net, "weight")
    view = panel.view
    assert view.nan_overlay.isVisible()
    overlay = view.nan_overlay.image
    assert tuple(overlay[1, 1]) == NAN_RGBA and overlay[0, 0, 3] == 0
    assert np.isfinite(view.levels).all()
    assert "NaN shown magenta" in panel.title.text()
    # the colour the user sees at the NaN cell is magenta, not the map's centre
    qtbot.wait(50)
    picture = view.grab().toImage()
    color = picture.pixelColor(widget_pos(view, 1.5, 1.5))
    assert (color.red(), color.green(), color.blue()) == NAN_RGBA[:3]
    assert VIEW_BACKGROUND.lower() != "#ffffff"
    assert hover(qtbot, panel, 1, 1) == "[1, 1] = nan"


def test_a_big_checkpoint_tensor_loads_in_a_worker(qtbot):
    values = np.random.default_rng(0).normal(size=(1000, 600)).astype(np.float32)
    reads = []

    def read():
        reads.append(threading.current_thread())
        return values

    tree = tree_from_entries([("embed.weight", ArrayHandle(values.shape, "float32", read))])
    document = Document()
    panel = HeatmapPanel(document)
    qtbot.addWidget(panel)
    document.set_tree(tree)
    document.select("embed.weight")
    assert "reading 600,000 values" in panel.title.text()
    qtbot.waitUntil(lambda: panel.loaded is not None, timeout=5000)
    assert panel.view.image.image.shape == (1000, 600)
    assert reads and reads[0] is not threading.main_thread()  # read off the GUI thread
    assert not panel.grad.isVisibleTo(panel)  # a checkpoint has no gradient view


def test_a_module_shows_its_first_parameter_and_conv_a_mosaic(qtbot):
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    _doc, panel = make_panel(qtbot, net, "0")
    assert panel.tensor.path == "0.weight"
    assert panel.loaded.display.layout == "mosaic"
    assert "first parameter of 0" in panel.title.text()
    assert not panel.slices.mosaic.isHidden()
    panel.slices.mosaic.setChecked(False)  # switch to one kernel slice
    assert panel.loaded.display.layout == "slice"
    panel.slices._spins[0].setValue(2)
    panel.slices._spins[1].setValue(1)
    np.testing.assert_array_equal(panel.view.image.image, net[0].weight[2, 1].detach().numpy())


def tick_labels_and_room(view: HeatmapView) -> tuple[list[str], list[float], float]:
    """The bottom axis's labels, their centres in pixels, and the widest label's width."""
    from PySide6.QtGui import QFontMetricsF

    axis = view.plot.getAxis("bottom")
    ticks = axis._tickLevels[0] if axis._tickLevels else []
    metrics = QFontMetricsF(view.tick_font)
    box = view.plot.getViewBox()
    centres = [view.mapFromScene(box.mapViewToScene(QPointF(x, 0))).x() for x, _ in ticks]
    widest = max((metrics.horizontalAdvance(label) for _, label in ticks), default=0.0)
    return [label for _, label in ticks], centres, widest


def shown_view(qtbot, values: np.ndarray, size=(520, 420)) -> HeatmapView:
    view = HeatmapView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    view.set_tensor(values, display_array(values))
    qtbot.wait(50)
    return view


def test_column_ticks_of_a_32_wide_tensor_never_touch(qtbot):
    view = shown_view(qtbot, np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32))
    labels, centres, widest = tick_labels_and_room(view)
    assert len(labels) >= 3
    gaps = [b - a for a, b in itertools.pairwise(centres)]
    assert min(gaps) >= widest + 4  # "101214" before: every index on a narrow axis


def test_a_wider_view_gets_more_ticks_and_a_larger_scale_fewer(qtbot):
    from netexplorer.ui.appearance import appearance

    values = np.random.default_rng(1).normal(size=(8, 64)).astype(np.float32)
    view = shown_view(qtbot, values, size=(500, 300))
    narrow = len(tick_labels_and_room(view)[0])
    view.resize(1400, 300)
    qtbot.waitUntil(lambda: len(tick_labels_and_room(view)[0]) > narrow)
    wide = len(tick_labels_and_room(view)[0])
    look = appearance().look
    try:
        appearance().update(scale=2.0)
        qtbot.waitUntil(lambda: len(tick_labels_and_room(view)[0]) < wide)
        _labels, centres, widest = tick_labels_and_room(view)
        assert view.tick_font.pointSizeF() >= 17  # the ticks grew with the text
        assert min(b - a for a, b in itertools.pairwise(centres)) >= widest + 4
    finally:
        appearance().set_look(look)


def test_large_cells_show_their_numbers_and_small_ones_do_not(qtbot):
    values = np.array([[0.2216, -0.3525], [1.5, 0.0]], dtype=np.float32)
    view = shown_view(qtbot, values)
    numbers = view.numbers
    assert numbers._texts == [["0.2216", "-0.3525"], ["1.5000", "0.0000"]]
    transform = view.plot.getViewBox().childTransform()
    cell_px = abs(
        view.mapFromScene(view.plot.getViewBox().mapViewToScene(QPointF(1, 0))).x()
        - view.mapFromScene(view.plot.getViewBox().mapViewToScene(QPointF(0, 0))).x()
    )
    assert transform is not None and numbers.fits(cell_px, cell_px)
    many = np.random.default_rng(2).normal(size=(30, 30)).astype(np.float32)
    view.set_tensor(many, display_array(many))
    assert numbers.data is not None  # 900 cells: numbers only where they fit...
    small_px = cell_px * 2 / 30
    assert not numbers.fits(small_px, small_px)  # ...which 30 columns in this view are not
    image = view.grab().toImage()
    assert not image.isNull()


def test_going_to_a_smaller_tensor_keeps_the_axis_room_and_the_plot_still(qtbot):
    """The left axis keeps the room its widest tick labels needed: going from a tall
    tensor (labels up to 1,000s) to a small one does not move the plot's left edge (it
    jumped, and each jump laid the plot out and painted it again per selection)."""
    net = nn.Sequential(nn.Linear(8, 1500), nn.Linear(1500, 8))
    document, panel = make_panel(qtbot, net, "0.weight")  # 1500 rows: four-digit labels
    axis = panel.view.plot.getAxis("left")
    view_box = panel.view.plot.getViewBox()

    def drawn() -> None:  # painted (tick labels are measured then), and laid out after
        panel.view.viewport().repaint()
        for _ in range(3):
            QApplication.processEvents()

    drawn()
    assert axis.textWidth > 0
    wide, left = axis.width(), view_box.sceneBoundingRect().left()
    document.select("1.bias")  # 8 elements: one-digit labels, and no row label
    qtbot.waitUntil(lambda: panel.view.display is not None and panel.view.display.layout == "strip")
    drawn()
    assert axis.width() == wide and view_box.sceneBoundingRect().left() == left

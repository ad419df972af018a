"""One text scale for everything, presentation mode, the light and dark themes, the colour
map: applied to every part of a window already on screen, and remembered."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from netexplorer.ui.appearance import PRESENTATION_SCALE, appearance
from netexplorer.ui.main_window import MainWindow


@pytest.fixture(autouse=True)
def restore_look():
    look = appearance().look
    yield
    appearance().set_look(look)


def up(qtbot, window, spec="example:tied", select="2.weight"):
    w = window(spec, select=select)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    w.wait_idle()
    return w


def sizes(w) -> dict[str, float]:
    """Point sizes of what a person reads in each part of the window."""
    heatmap = w.heatmap_panel.view
    return {
        "application": QApplication.font().pointSizeF(),
        "heatmap ticks": heatmap.tick_font.pointSizeF(),
        "loss plot ticks": w.controls.curve_plot.getAxis("bottom").style["tickFont"].pointSizeF(),
        "histogram ticks": w.details.histogram.getAxis("bottom").style["tickFont"].pointSizeF(),
        "details heading": w.details.heading.font().pointSizeF(),
        "tree": w.tree_panel.view.font().pointSizeF(),
        "cell numbers": heatmap.numbers.font.pointSizeF(),
    }


def test_larger_text_enlarges_every_part_of_the_window(qtbot, window):
    w = up(qtbot, window)
    before = sizes(w)
    graph_zoom = w.graph_panel.canvas.look_scale
    for _ in range(5):  # Ctrl++ five times: 1.15^5 = 2.01
        w.view_actions.larger.trigger()
    qtbot.waitUntil(lambda: sizes(w)["tree"] > before["tree"] * 1.9)
    after = sizes(w)
    for part, size in before.items():
        assert after[part] == pytest.approx(size * 1.15**5, rel=0.05), part
    assert w.graph_panel.canvas.look_scale == pytest.approx(graph_zoom * 1.15**5, rel=0.01)
    # the tree's columns grow with the text: names never elide ("wei…")
    metrics = w.tree_panel.view.fontMetrics()
    index = w.tree_panel.model.index_for_path("2.weight")
    rect = w.tree_panel.view.visualRect(w.tree_panel.proxy.mapFromSource(index))
    assert rect.width() >= metrics.horizontalAdvance("weight")
    w.view_actions.reset.trigger()
    qtbot.waitUntil(lambda: sizes(w)["tree"] == pytest.approx(before["tree"]))


def test_the_gallery_scales_too(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    heading = w.gallery.heading.text()
    appearance().update(scale=2.0)
    assert "font-size:44.0pt" in w.gallery.heading.text() and "font-size:22.0pt" in heading
    assert "font-size:36.0pt" in w.gallery.title.text()


def test_presentation_mode_and_back(qtbot, window):
    w = up(qtbot, window)
    sizes_before = w.splitter.sizes()
    w.view_actions.present.trigger()
    look = appearance().look
    assert look.presenting and look.scale == PRESENTATION_SCALE
    assert w.isFullScreen() and w.view_actions.present.isChecked()
    assert not w.controls.settings_box.isVisible()  # folded away: room for the heatmaps
    assert w.heatmap_panel.view.tick_font.pointSizeF() == pytest.approx(9 * PRESENTATION_SCALE)
    assert w.tree_panel.model.highlight_alpha > 90  # the tie group's rows stronger
    w.view_actions.present.trigger()
    assert not appearance().look.presenting and appearance().look.scale == 1.0
    assert not w.isFullScreen() and w.controls.settings_box.isVisible()
    assert w.splitter.sizes() == sizes_before


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_both_themes_color_plots_and_widgets(qtbot, window, theme):
    w = up(qtbot, window)
    w.view_actions.themes[theme].trigger()
    colors = appearance().look.colors
    background = w.heatmap_panel.view.backgroundBrush().color().name()
    assert background == colors.background
    assert w.controls.curve_plot.backgroundBrush().color().name() == colors.background
    text = QApplication.palette().color(QPalette.ColorRole.WindowText)
    window_color = QApplication.palette().color(QPalette.ColorRole.Window)
    assert abs(text.lightness() - window_color.lightness()) > 120  # readable
    if theme == "dark":
        assert window_color.lightness() < 80


def test_the_colour_map_is_chosen_for_every_heatmap(qtbot, window):
    w = up(qtbot, window)
    w.document.session.run("backward")
    qtbot.waitUntil(lambda: bool(w.heatmap_panel.uses_box.shown), timeout=10_000)
    w.view_actions.colormaps["CET-D7"].trigger()
    import pyqtgraph as pg

    expected = pg.colormap.get("CET-D7").getLookupTable(nPts=5).tolist()
    views = [w.heatmap_panel.view, *(p.view for p in w.heatmap_panel.uses_box.shown)]
    for view in views:
        assert view.colorbar.colorMap().getLookupTable(nPts=5).tolist() == expected


def test_look_settings_survive_a_restart(qtbot, window):
    w = up(qtbot, window)
    w.view_actions.themes["dark"].trigger()
    w.view_actions.colormaps["CET-D4"].trigger()
    w.view_actions.larger.trigger()
    w.view_actions.present.trigger()
    w.view_actions.larger.trigger()  # the presentation scale is remembered apart
    w.close()
    appearance().update(theme="light", colormap="CET-D1", scale=1.0, presenting=False)
    again = MainWindow()
    qtbot.addWidget(again)
    look = appearance().look
    assert (look.theme, look.colormap) == ("dark", "CET-D4")
    assert look.scale == pytest.approx(1.15)
    assert again.settings.presentation_scale == pytest.approx(PRESENTATION_SCALE * 1.15)
    assert again.view_actions.themes["dark"].isChecked()


def test_present_on_the_command_line(qtbot):
    from netexplorer.core.launch import LaunchRequest
    from netexplorer.ui.app import window_for

    w = window_for(LaunchRequest(source="example:tied", present=True))
    qtbot.addWidget(w)
    assert appearance().look.presenting and w.view_actions.present.isChecked()


def test_presenting_sizes_the_heatmap_axis_to_its_labels_after_a_vector(qtbot, window):
    """A vector keeps the left axis room a matrix took (fixed), but presenting (bigger text,
    no axis titles) sizes the axis to its labels again: a matrix shown then has its row
    numbers in full, never clipped to the room an earlier vector kept."""
    from dataclasses import replace

    w = up(qtbot, window, "example:mlp", "0.weight")
    axis = w.heatmap_panel.view.plot.getAxis("left")
    w.document.select("2.bias")  # a strip: the room kept
    qtbot.waitUntil(lambda: w.heatmap_panel.view.display.layout == "strip")
    assert axis.fixedWidth is not None
    appearance().set_look(replace(appearance().look, presenting=True))
    assert axis.fixedWidth is None  # presenting: as wide as its labels
    w.document.select("0.weight")
    qtbot.waitUntil(lambda: w.heatmap_panel.view.display.layout != "strip")
    assert axis.fixedWidth is None

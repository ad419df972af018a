"""Pictures for slides: each thing the window exports is a valid PNG of the asked size (or a
valid SVG), written whole or not at all."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer

from netexplorer.core.errors import NetExplorerError
from netexplorer.ui.slides_export import export_for_slides


@pytest.fixture
def trained(qtbot, window):
    w = window("example:tied", select="2.weight")
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    w.set_view("graph")
    qtbot.waitUntil(lambda: w.graph_panel.graph_scene is not None, timeout=10_000)
    session = w.document.session
    for action in ("backward", "step", "backward"):
        session.run(action)
        qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)
    return w


@pytest.mark.parametrize("what", ["heatmap", "loss"])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_sized_pictures_have_the_asked_size(trained, tmp_path, what, scale):
    path = tmp_path / f"{what}.png"
    export_for_slides(trained, what, str(path), (1200, 900), scale)
    image = QImage(str(path))
    assert (image.width(), image.height()) == (1200, 900)
    assert image.pixelColor(600, 450).isValid()
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("what", ["heatmap", "graph", "loss", "window"])
def test_every_export_is_a_valid_svg(trained, tmp_path, what):
    path = tmp_path / f"{what}.svg"
    export_for_slides(trained, what, str(path), (800, 600), 2.0)
    assert QSvgRenderer(str(path)).isValid()
    assert "<svg" in path.read_text()


def test_the_window_and_graph_at_presentation_scale(trained, tmp_path):
    window_png = tmp_path / "window.png"
    export_for_slides(trained, "window", str(window_png), scale=1.8)
    image = QImage(str(window_png))
    assert image.width() == round(trained.width() * 1.8)
    graph_png = tmp_path / "graph.png"
    export_for_slides(trained, "graph", str(graph_png), scale=2.0)
    assert not QImage(str(graph_png)).isNull()


def test_a_failed_export_leaves_an_older_file_whole(trained, tmp_path):
    path = tmp_path / "heatmap.png"
    export_for_slides(trained, "heatmap", str(path), (400, 300), 1.0)
    before = path.read_bytes()
    with pytest.raises(NetExplorerError, match=r"use a \.png or \.svg"):
        export_for_slides(trained, "heatmap", str(tmp_path / "heatmap.jpg"), (400, 300), 1.0)
    with pytest.raises(NetExplorerError, match="does not exist"):
        export_for_slides(trained, "heatmap", str(tmp_path / "no" / "heatmap.png"), (400, 300), 1.0)
    assert path.read_bytes() == before

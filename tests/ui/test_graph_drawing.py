"""The Graph tab draws a big graph a little at a time: the pieces must add up to what
drawing it at once gives (the scene indexed as its items arrive, the overview drawn in
strips)."""

import math

import pytest
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from netexplorer.core.graph import graph_for_tree
from netexplorer.core.sources import OpenOptions, open_source
from netexplorer.ui.graph.items import LabelMetrics
from netexplorer.ui.graph.overview import Overview, overview_strips
from netexplorer.ui.graph.scene import GraphScene
from netexplorer.ui.graph.tasks import Collapse, lay_out


@pytest.fixture
def tiny_gpt_scene(qapp):
    tree = open_source("example:tiny-gpt", OpenOptions())
    metrics = LabelMetrics()
    graph = graph_for_tree(tree, seed=0)
    laid = lay_out(tree, graph, Collapse(graph.default_depth()), metrics.node_size)
    scene = GraphScene(laid, tree, metrics)
    yield scene
    scene.deleteLater()


def test_the_scene_knows_its_extent_and_its_items_from_the_start(tiny_gpt_scene):
    scene = tiny_gpt_scene
    assert scene.sceneRect() == scene.bounds
    assert scene.item_count() == len(scene.items())
    node = next(iter(scene.nodes.values()))
    assert node in scene.items(node.rect.center())


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_the_overview_drawn_in_strips_is_the_overview_drawn_at_once(tiny_gpt_scene, ratio):
    scene = tiny_gpt_scene
    source = scene.bounds
    k = min(Overview.MAX_W / source.width(), Overview.MAX_H / source.height())
    w, h = math.ceil(source.width() * k), math.ceil(source.height() * k)

    def picture(strips: int) -> QImage:
        image = QImage(round(w * ratio), round(h * ratio), QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        if strips == 0:
            scene.render(painter, QRectF(0, 0, w, h), source)
        else:
            for target, seen in overview_strips(source, w, h, strips, ratio):
                scene.render(painter, target, seen, Qt.AspectRatioMode.IgnoreAspectRatio)
        painter.end()
        return image

    whole, strips = picture(0), picture(5)
    assert len(overview_strips(source, w, h, 5, ratio)) == 5
    last_x, last_y = whole.width() - 1, whole.height() - 1
    differ = [
        (x, y)
        for y in range(whole.height())
        for x in range(whole.width())
        if whole.pixel(x, y) != strips.pixel(x, y)
    ]
    # the same, but for the scene's near-white background reaching the last row of pixels
    assert all(x == last_x or y == last_y for x, y in differ)
    assert len(differ) <= whole.width() + whole.height()

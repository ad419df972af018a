"""The shard picture: a tensor's rectangle cut into the chunks ranks saved, each where its
elements are, coloured by rank, with a tooltip naming rank, elements and file."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from netexplorer.core.sources.dcp import ShardChunk
from netexplorer.ui.shard_picture import ShardPicture, matrix_shape, rank_color


def chunk(offsets, sizes, rank, byte_offset=0) -> ShardChunk:
    return ShardChunk(tuple(offsets), tuple(sizes), f"__{rank}_0.distcp", rank, byte_offset, 99)


@pytest.fixture
def picture(qtbot) -> ShardPicture:
    widget = ShardPicture()
    qtbot.addWidget(widget)
    widget.resize(300, 240)
    return widget


def rects_by_chunk(widget: ShardPicture) -> dict[int, list]:
    out: dict[int, list] = {}
    for index, rect in widget.chunk_rects():
        out.setdefault(index, []).append(rect)
    return out


def test_rows_split_by_fsdp_are_stacked_bands_of_the_tensor(picture):
    picture.set_layout((10, 6), [chunk((0, 0), (5, 6), 0), chunk((5, 0), (5, 6), 1)])
    frame = picture.tensor_rect()
    (top,), (bottom,) = rects_by_chunk(picture).values()
    assert top.left() == bottom.left() == frame.left()
    assert top.width() == bottom.width() == pytest.approx(frame.width())
    assert top.top() == pytest.approx(frame.top())
    assert bottom.top() == pytest.approx(top.bottom())
    assert top.height() == pytest.approx(bottom.height())
    assert bottom.bottom() == pytest.approx(frame.bottom())


def test_columns_are_proportional_to_their_elements(picture):
    chunks = [chunk((0, 0), (7, 4), 0), chunk((0, 4), (7, 4), 1), chunk((0, 8), (7, 2), 2)]
    picture.set_layout((7, 10), chunks)
    frame = picture.tensor_rect()
    rects = [r for (r,) in rects_by_chunk(picture).values()]
    assert [r.width() / frame.width() for r in rects] == pytest.approx([0.4, 0.4, 0.2])
    assert all(r.height() == pytest.approx(frame.height()) for r in rects)
    assert rects[1].left() == pytest.approx(rects[0].right())


def test_a_chunk_split_along_a_middle_dimension_is_several_bands(picture):
    # (2, 3, 4) drawn as 6 x 4; dimension 1 split 2 + 1: rows {0, 1, 3, 4} and {2, 5}
    picture.set_layout((2, 3, 4), [chunk((0, 0, 0), (2, 2, 4), 0), chunk((0, 2, 0), (2, 1, 4), 1)])
    assert matrix_shape((2, 3, 4)) == (6, 4)
    frame = picture.tensor_rect()
    row = frame.height() / 6
    bands = rects_by_chunk(picture)
    assert [(r.top() - frame.top()) / row for r in bands[0]] == pytest.approx([0, 3])
    assert [r.height() / row for r in bands[0]] == pytest.approx([2, 2])
    assert [(r.top() - frame.top()) / row for r in bands[1]] == pytest.approx([2, 5])


def test_an_empty_chunk_is_not_drawn_and_the_caption_counts_it(picture):
    chunks = [
        chunk((0, 0, 0), (1, 3, 4), 0),
        chunk((1, 0, 0), (1, 3, 4), 1),
        chunk((2, 0, 0), (0, 3, 4), 2),
    ]
    picture.set_layout((2, 3, 4), chunks)
    assert set(rects_by_chunk(picture)) == {0, 1}
    assert picture.caption() == "2 × 3 × 4: 3 chunks, 3 ranks, 1 empty"


def test_a_scalar_fills_the_rectangle(picture):
    picture.set_layout((), [chunk((), (), 1)])
    [(index, rect)] = picture.chunk_rects()
    assert index == 0 and rect == picture.tensor_rect()
    assert picture.tooltip_at(rect.center()).startswith("rank 1: all")


def test_a_long_tensor_stays_legible(picture):
    picture.set_layout((50257, 1024), [chunk((0, 0), (50257, 1024), 0)])
    frame = picture.tensor_rect()
    assert frame.height() / frame.width() == pytest.approx(3.0)
    assert picture.rect().contains(frame.toRect())


def test_the_tooltip_names_rank_elements_and_bytes(picture, qtbot):
    picture.set_layout((10, 6), [chunk((0, 0), (5, 6), 0), chunk((5, 0), (5, 6), 1, 1641)])
    picture.show()
    qtbot.waitExposed(picture)
    (_,), (bottom,) = rects_by_chunk(picture).values()
    text = picture.tooltip_at(bottom.center())
    assert text == "rank 1: elements [5–9, 0–5] (5 × 6)\n__1_0.distcp: 99 bytes from byte 1,641"
    at = bottom.center().toPoint()
    event = QHelpEvent(QEvent.Type.ToolTip, at, picture.mapToGlobal(at))
    QApplication.sendEvent(picture, event)
    qtbot.waitUntil(lambda: QToolTip.text() == text)
    assert picture.tooltip_at(QPointF(1, 1)) == ""


def test_chunks_are_painted_in_their_rank_colour(picture, qtbot):
    picture.set_layout((10, 6), [chunk((0, 0), (5, 6), 0), chunk((5, 0), (5, 6), 1)])
    image = picture.grab().toImage()
    ratio = image.devicePixelRatio()
    for index, rect in picture.chunk_rects():
        # a point off the label, inside the rectangle
        point = QPoint(int((rect.left() + 4) * ratio), int((rect.top() + 4) * ratio))
        assert image.pixelColor(point) == rank_color(index, 2)


def test_a_new_layout_replaces_the_old_and_clear_empties_it(picture):
    picture.set_layout((10, 6), [chunk((0, 0), (5, 6), 0), chunk((5, 0), (5, 6), 1)])
    picture.set_layout((4,), [chunk((0,), (4,), 3)])
    [(index, rect)] = picture.chunk_rects()
    assert index == 0 and rect == picture.tensor_rect() and picture.chunks[0].rank == 3
    picture.clear()
    assert picture.chunk_rects() == [] and picture.caption() == ""


def test_chunks_without_ranks_are_coloured_by_file(picture):
    chunks = [
        ShardChunk((0,), (2,), "a.distcp", None, 0, 9),
        ShardChunk((2,), (2,), "b.distcp", None, 0, 9),
    ]
    picture.set_layout((4,), chunks)
    assert picture.caption() == "4: 2 chunks, 2 files"
    assert picture.tooltip_at(picture.chunk_rects()[1][1].center()).startswith("rank unknown")

"""Big trees in the tree view: rows made lazily (a batch at a time, folded groups past
GROUP_ABOVE rows), the filter incremental and exact, expand-all a few modules at a time with
progress and a way to stop it, a path found without a scan, and a big checkpoint opened and
filtered as a user does it."""

from __future__ import annotations

import numpy as np
import pytest
from filter_oracle import brute_force
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView
from torch import nn

from netexplorer.core.handles import ArrayHandle
from netexplorer.core.tree import tree_from_entries, tree_from_module
from netexplorer.ui import tree_view
from netexplorer.ui.document import Document
from netexplorer.ui.main_window import MainWindow
from netexplorer.ui.tree_view import (
    FETCH_BATCH,
    GROUP_SIZE,
    NAME,
    PATH_ROLE,
    TYPE,
    ModuleTreeModel,
    RowGroup,
    TreePanel,
)


def synthetic(keys) -> object:
    """A checkpoint-like tree of small float32 tensors under these keys."""
    zeros = lambda: np.zeros((2, 2), np.float32)  # noqa: E731
    return tree_from_entries(((k, ArrayHandle((2, 2), "float32", zeros)) for k in keys), source="t")


def shown_panel(qtbot, tree=None) -> tuple[Document, TreePanel]:
    document = Document()
    panel = TreePanel(document)
    qtbot.addWidget(panel)
    panel.resize(700, 600)
    panel.show()
    qtbot.waitExposed(panel)
    if tree is not None:
        document.set_tree(tree)
        wait_idle(qtbot, panel)
    return document, panel


def wait_idle(qtbot, panel: TreePanel, timeout: int = 20_000) -> None:
    qtbot.waitUntil(lambda: panel.model.rows is not None and not panel.busy, timeout=timeout)


def root_index(panel: TreePanel):
    return panel.proxy.index(0, 0)


def on_screen(panel: TreePanel) -> list:
    """The rows the view shows, top to bottom (proxy indexes)."""
    view = panel.view
    rows, index = [], view.indexAt(QPoint(1, 1))
    while index.isValid() and view.visualRect(index).top() < view.viewport().height():
        rows.append(index)
        index = view.indexBelow(index)
    return rows


def all_shown_paths(model: ModuleTreeModel) -> set[str]:
    """Every path the model shows, its rows made as a view scrolling to them would."""
    paths: set[str] = set()
    pending = [model.index(0, 0)] if model.rowCount() else []
    while pending:
        index = pending.pop()
        item = index.internalPointer()
        if type(item) is not RowGroup:
            paths.add(item.path)
        while model.canFetchMore(index):
            model.fetchMore(index)
        pending.extend(model.index(r, 0, index) for r in range(model.rowCount(index)))
    return paths


# -- lazy rows ------------------------------------------------------------------------------


def test_a_module_of_many_tensors_makes_its_rows_a_batch_at_a_time(qtbot):
    _document, panel = shown_panel(qtbot, synthetic(f"t{i}" for i in range(1_500)))
    root, proxy = root_index(panel), panel.proxy
    assert proxy.rowCount(root) == FETCH_BATCH  # not 1,500 rows up front
    assert proxy.canFetchMore(root)
    proxy.fetchMore(root)
    assert proxy.rowCount(root) == 2 * FETCH_BATCH
    # scrolling to the end makes the rest, a batch each time the end comes into view
    for _ in range(20):
        panel.view.scrollToBottom()
        qtbot.wait(10)
        if not proxy.canFetchMore(root):
            break
    assert proxy.rowCount(root) == 1_500
    panel.view.scrollToBottom()
    qtbot.waitUntil(lambda: on_screen(panel) and on_screen(panel)[-1].data() == "t1499")


def test_rows_of_a_module_in_the_middle_come_as_the_view_reaches_them(qtbot):
    # Qt fetches only for the parents of the view's very last row
    keys = [f"a.t{i}" for i in range(1_500)] + [f"b.t{i}" for i in range(60)]
    _document, panel = shown_panel(qtbot, synthetic(keys))
    a = panel.proxy.mapFromSource(panel.model.index_for_path("a", fetch=False))
    qtbot.wait(100)  # what Qt fetches once a parent is open
    made = panel.proxy.rowCount(a)
    assert made < 1_500 and made % FETCH_BATCH == 0
    last = panel.proxy.index(made - 1, 0, a)
    panel.view.scrollTo(last, QAbstractItemView.ScrollHint.PositionAtCenter)
    qtbot.waitUntil(lambda: panel.proxy.rowCount(a) == made + FETCH_BATCH)
    assert "b" not in [index.data() for index in on_screen(panel)]  # a's rows come first


def test_a_module_of_thousands_of_tensors_shows_folded_groups(qtbot, monkeypatch):
    made = []
    index = ModuleTreeModel.index
    monkeypatch.setattr(
        ModuleTreeModel, "index", lambda self, *a: made.append(1) or index(self, *a)
    )
    document, panel = shown_panel(qtbot, synthetic(f"t{i}" for i in range(5_000)))
    assert len(made) < 500  # the old model made every row of the root module, and more
    root, proxy = root_index(panel), panel.proxy
    assert proxy.rowCount(root) == 5
    groups = [proxy.index(r, 0, root) for r in range(5)]
    assert [g.data() for g in groups[:2]] == ["t0 … t999", "t1000 … t1999"]
    assert groups[4].siblingAtColumn(TYPE).data() == "rows 4,001–5,000 of 5,000"
    assert not panel.view.isExpanded(groups[4])  # folded until opened
    panel.view.expand(groups[1])
    first = proxy.rowCount(groups[1])  # the first batch, and what Qt fetches on expanding
    assert first % FETCH_BATCH == 0 and FETCH_BATCH <= first < GROUP_SIZE
    proxy.fetchMore(groups[1])
    assert proxy.rowCount(groups[1]) == first + FETCH_BATCH
    # selecting the last path makes its group's rows up to it, and shows it
    document.select("t4999")
    current = panel.view.currentIndex()
    assert current.data(PATH_ROLE) == "t4999"
    assert current.parent() == groups[4]
    assert proxy.rowCount(groups[4]) == GROUP_SIZE
    assert panel.view.viewport().rect().intersects(panel.view.visualRect(current))
    # moving onto a group keeps its module selected
    panel.view.setCurrentIndex(groups[0])
    assert document.selected == ""


def test_a_path_deep_down_is_found_by_lookups_not_a_scan(qtbot, monkeypatch):
    levels = [f"d{i}" for i in range(150)]
    tree = synthetic(".".join(levels[: depth + 1]) + ".w" for depth in range(150))
    document, panel = shown_panel(qtbot, tree)
    deepest = ".".join(levels) + ".w"
    asked = []
    index = ModuleTreeModel.index
    monkeypatch.setattr(
        ModuleTreeModel, "index", lambda self, *a: asked.append(1) or index(self, *a)
    )
    found = panel.model.index_for_path(deepest)
    assert found.isValid() and found.data(PATH_ROLE) == deepest
    assert asked == []  # no walk over rows: a lookup per level
    document.select(deepest)
    assert panel.view.currentIndex().data(PATH_ROLE) == deepest
    parent = panel.view.currentIndex().parent()
    while parent.isValid():
        assert panel.view.isExpanded(parent)
        parent = parent.parent()


# -- the filter -----------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8)) for _ in range(3)
        )


def transformer() -> nn.Module:
    net = nn.Module()
    net.embed = nn.Embedding(16, 8)
    net.layers = nn.ModuleList(Block() for _ in range(8))
    net.head = nn.Linear(8, 16, bias=False)
    return net


def typed(qtbot, panel: TreePanel, keys: str | Qt.Key) -> None:
    if isinstance(keys, str):
        qtbot.keyClicks(panel.filter_edit, keys)
    else:
        qtbot.keyClick(panel.filter_edit, keys)
    text = panel.filter_edit.text().strip().lower()
    qtbot.waitUntil(lambda: panel._shown_text == text and not panel.busy, timeout=10_000)


@pytest.mark.parametrize("in_a_worker", [False, True])
def test_typing_narrows_deleting_widens_and_the_selection_stays(qtbot, monkeypatch, in_a_worker):
    if in_a_worker:  # as for a large tree
        monkeypatch.setattr(tree_view, "FILTER_ON_GUI_THREAD", 0)
    tree = tree_from_module(transformer())
    document, panel = shown_panel(qtbot, tree)
    document.select("layers.3.attn.in_proj_weight")
    before = None
    for keys in ["a", "t", "t"]:
        typed(qtbot, panel, keys)
        text = panel.filter_edit.text()
        shown = all_shown_paths(panel.model)
        assert shown == brute_force(tree, text)
        assert before is None or shown <= before  # a longer text narrows
        before = shown
        assert document.selected == "layers.3.attn.in_proj_weight"  # filtering is not choosing
        assert panel.view.currentIndex().data(PATH_ROLE) == "layers.3.attn.in_proj_weight"
    assert panel.status_label.text() == (
        f"{len(panel.model.rows.matches):,} of {len(tree.modules) + len(tree.tensors):,} rows match"
    )
    typed(qtbot, panel, Qt.Key.Key_Backspace)  # "at": wider again
    assert all_shown_paths(panel.model) == brute_force(tree, "at") >= before
    typed(qtbot, panel, "tn.out")
    assert all_shown_paths(panel.model) == brute_force(tree, "attn.out")
    assert document.selected == "layers.3.attn.in_proj_weight"  # hidden now, still selected
    assert not panel.model.index_for_path("layers.3.attn.in_proj_weight").isValid()
    # every row the filter shows is expanded, so the matches are on screen
    texts = [index.data() for index in on_screen(panel)]
    assert "out_proj" in texts
    qtbot.keyClick(panel.view, Qt.Key.Key_Escape)  # Esc clears the filter
    wait_idle(qtbot, panel)
    assert panel.filter_edit.text() == ""
    assert panel.view.currentIndex().data(PATH_ROLE) == "layers.3.attn.in_proj_weight"
    assert all_shown_paths(panel.model) == set(tree.modules) | set(tree.tensors)


@pytest.mark.parametrize("in_a_worker", [False, True])
def test_typing_on_where_every_match_stays_keeps_the_view_as_it_is(qtbot, monkeypatch, in_a_worker):
    """Typing on where the rows stay the same ("at", "att", "attn" in a model whose every
    match holds "attn"): the view is not reset, and stays scrolled and expanded as the
    person left it (in a million-tensor tree each such keystroke was a 350 ms search and
    a reset); a text that changes the rows resets it as before."""
    if in_a_worker:
        monkeypatch.setattr(tree_view, "FILTER_ON_GUI_THREAD", 0)
    tree = tree_from_module(transformer())
    _document, panel = shown_panel(qtbot, tree)
    panel.resize(600, 250)  # rows to scroll through
    typed(qtbot, panel, "at")
    resets: list[int] = []
    panel.model.modelReset.connect(lambda: resets.append(1))
    rows = panel.model.rows
    bar = panel.view.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    scrolled = bar.value()
    assert scrolled > 0
    for key in "tn":  # "att", "attn": the same rows
        typed(qtbot, panel, key)
        assert brute_force(tree, panel.filter_edit.text()) == all_shown_paths(panel.model)
        assert panel.model.rows is rows and resets == [] and bar.value() == scrolled
    assert panel.status_label.text().endswith("rows match")
    typed(qtbot, panel, ".out")  # fewer rows: shown anew
    assert resets and all_shown_paths(panel.model) == brute_force(tree, "attn.out")


# -- expanding ------------------------------------------------------------------------------


def many_modules():
    return synthetic(f"b{i}.m{j}.w" for i in range(40) for j in range(50))  # 2,041 modules


def test_expand_all_goes_a_few_modules_at_a_time_with_progress(qtbot, monkeypatch):
    _document, panel = shown_panel(qtbot, many_modules())
    panel.expander.budget_ms = 0.5  # many turns of the event loop
    monkeypatch.setattr("netexplorer.ui.tree_expansion.UNIT_ROWS", 1)
    progress: list[tuple[int, int]] = []
    panel.expander.progressed.connect(lambda done, total: progress.append((done, total)))
    panel.expand_all()
    assert panel.expander.running  # not all of it at once
    wait_idle(qtbot, panel)
    assert len(progress) > 2
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert progress[-1][0] == progress[-1][1] == 2_041
    for path in ("", "b0", "b39", "b39.m49", "b17.m3"):
        index = panel.proxy.mapFromSource(panel.model.index_for_path(path))
        assert panel.view.isExpanded(index), path
    assert "b39.m49.w" in all_shown_paths(panel.model)


def test_progress_shows_and_its_stop_button_stops(qtbot, monkeypatch):
    monkeypatch.setattr(tree_view, "SHOW_WORK_AFTER_MS", 0)
    _document, panel = shown_panel(qtbot, many_modules())
    panel.expander.budget_ms = 0.5
    monkeypatch.setattr("netexplorer.ui.tree_expansion.UNIT_ROWS", 1)
    panel.expand_all()
    qtbot.waitUntil(panel.stop_button.isVisible)
    assert panel.status_label.text() == "Expanding 2,041 modules…"
    assert panel.progress_bar.isVisible()
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert not panel.busy
    assert not panel.stop_button.isVisible()
    assert panel.status_label.text() == "2,041 modules, 2,000 tensors"


def test_expanding_can_be_stopped_and_the_tree_stays_usable(qtbot, monkeypatch):
    document, panel = shown_panel(qtbot, many_modules())
    panel.expander.budget_ms = 0.5
    monkeypatch.setattr("netexplorer.ui.tree_expansion.UNIT_ROWS", 1)
    panel.view.setFocus()
    panel.expand_all()
    qtbot.wait(30)
    assert panel.expander.running
    qtbot.keyClick(panel.view, Qt.Key.Key_Escape)  # Esc stops it (the filter is empty)
    assert not panel.busy
    expanded = [
        panel.view.isExpanded(panel.proxy.mapFromSource(panel.model.index_for_path(path)))
        for path in ("b0.m0", "b39.m49")
    ]
    assert expanded == [True, False]  # what was done stays, the rest stays folded
    assert panel.view.isEnabled() and panel.filter_edit.isEnabled()
    rows = on_screen(panel)
    target = rows[3]
    rect = panel.view.visualRect(target)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert document.selected == target.data(PATH_ROLE)
    typed(qtbot, panel, "m49")
    assert all_shown_paths(panel.model) == brute_force(document.tree, "m49")


def test_star_expands_everything_below_a_row(qtbot):
    document, panel = shown_panel(qtbot, many_modules())
    document.select("b5")
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_Asterisk)
    wait_idle(qtbot, panel)
    for path in ("b5", "b5.m0", "b5.m49"):
        assert panel.view.isExpanded(panel.proxy.mapFromSource(panel.model.index_for_path(path)))
    six = panel.proxy.mapFromSource(panel.model.index_for_path("b6.m0"))
    assert not panel.view.isExpanded(six)


# -- as a user does it ----------------------------------------------------------------------


def window_up(qtbot) -> MainWindow:
    """A main window on screen, as a person has it before opening a file."""
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_a_big_checkpoint_opened_and_filtered_in_the_window(qtbot, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "big.safetensors"
    save_file({f"blocks.{i}.w{j}": torch.zeros(2) for i in range(60) for j in range(100)}, path)
    w = window_up(qtbot)
    w.open_source(str(path))  # as File ▸ Open does: a worker reads it
    panel = w.tree_panel
    qtbot.waitUntil(
        lambda: (
            panel.model.tree is not None
            and panel.model.tree.source == str(path)
            and panel.model.rows is not None
            and not panel.busy
        ),
        timeout=30_000,
    )
    names = [index.data() for index in on_screen(panel)]
    assert names[:3] == ["net", "blocks", "0"]
    assert panel.status_label.text() == "62 modules, 6,000 tensors"
    panel.filter_edit.setFocus()
    qtbot.keyClicks(panel.filter_edit, "w59")
    text = "w59"
    qtbot.waitUntil(lambda: panel._shown_text == text and not panel.busy, timeout=10_000)
    rows = on_screen(panel)
    tensors = [r.data() for r in rows if not r.internalPointer().is_module]
    modules = [r.data() for r in rows if r.internalPointer().is_module]
    assert tensors and all(name == "w59" for name in tensors)
    assert modules[:2] == ["net", "blocks"]  # their ancestors, dimmed
    assert rows[0].data(Qt.ItemDataRole.ForegroundRole) is not None
    assert panel.status_label.text() == "60 of 6,062 rows match"
    assert panel.filter_edit.isEnabled() and panel.view.isEnabled()
    assert all(r.flags() & Qt.ItemFlag.ItemIsEnabled for r in rows)
    qtbot.keyClick(panel.filter_edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: panel._shown_text == "" and not panel.busy)
    assert [index.data() for index in on_screen(panel)][:3] == ["net", "blocks", "0"]
    assert on_screen(panel)[0].siblingAtColumn(NAME).data() == "net"


def test_a_large_tree_opens_with_its_first_blocks_expanded_not_all(qtbot):
    """Qt lays out every row under an expanded parent: a tree of 600 top-level blocks of 40
    tensors opens with the root and its first blocks open, about OPEN_ROWS rows, not 24,000;
    the rest opens when asked (its arrow, '*', Expand all)."""
    keys = [f"b{b}.w{t}" for b in range(600) for t in range(40)]
    _document, panel = shown_panel(qtbot, synthetic(keys))
    root = root_index(panel)
    assert panel.view.isExpanded(root)
    while panel.proxy.canFetchMore(root):
        panel.proxy.fetchMore(root)
    opened = [
        panel.view.isExpanded(panel.proxy.index(row, 0, root))
        for row in range(panel.proxy.rowCount(root))
    ]
    assert len(opened) == 600
    first_shut = opened.index(False)
    assert not any(opened[first_shut:])
    made = tree_view.FETCH_BATCH + 40 * first_shut  # the root's first rows, the blocks'
    assert tree_view.OPEN_ROWS - 40 < made <= tree_view.OPEN_ROWS


def test_a_big_tree_is_shown_first_and_its_first_tensor_selected_a_turn_later(
    qtbot, tmp_path, monkeypatch
):
    """Setting a tree of SELECT_LATER_FROM tensors or more and showing its first tensor are
    two turns of the event loop (each one stall, not both in one): in a window already up,
    File ▸ Open of such a file shows the tree, then the first tensor, selected in the tree
    and named in the details. A selection the user makes first is kept."""
    import torch
    from safetensors.torch import save_file

    from netexplorer.ui import main_window

    monkeypatch.setattr(main_window, "SELECT_LATER_FROM", 50)  # a small file stands in
    path = tmp_path / "many.safetensors"
    save_file({f"blocks.{i}.w{j}": torch.ones(2) for i in range(10) for j in range(10)}, path)
    w = window_up(qtbot)
    w.build_panels()
    seen: list[tuple[str, str | None]] = []
    w.document.tree_changed.connect(lambda tree: seen.append(("tree", w.document.selected)))
    w.open_source(str(path))
    qtbot.waitUntil(lambda: w.document.selected == "blocks.0.w0", timeout=30_000)
    assert seen == [("tree", None)]  # the tree came first, nothing selected with it
    current = w.tree_panel.view.currentIndex()
    assert current.data(tree_view.PATH_ROLE) == "blocks.0.w0"
    assert "w0" in w.details.heading.text() and w.details.access.text() == "net.blocks[0].w0"

    tree = w.document.tree
    w.document.set_tree(None)
    w.set_tree(tree)
    assert w.document.selected is None  # set; its first tensor comes a turn later
    qtbot.waitUntil(lambda: w.document.selected == "blocks.0.w0")
    w.document.set_tree(None)
    w.set_tree(tree)  # set again, and the user picks a tensor before the first is shown
    w.document.select("blocks.9.w9")
    qtbot.wait(50)
    assert w.document.selected == "blocks.9.w9"

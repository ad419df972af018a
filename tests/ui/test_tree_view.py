"""The module tree widget: selection both ways, tie highlighting, the filter, and the three
kinds of sharing shown differently."""

from PySide6.QtCore import Qt

from netexplorer.core.sources import open_source
from netexplorer.ui.document import Document
from netexplorer.ui.tree_view import NAME, PATH_ROLE, TIES, TreePanel


def make_panel(qtbot, spec="example:tied"):
    document = Document()
    panel = TreePanel(document)
    qtbot.addWidget(panel)
    panel.resize(700, 600)
    panel.show()
    document.set_tree(open_source(spec))
    return document, panel


def source_index(panel, path, column=NAME):
    return panel.model.index_for_path(path).siblingAtColumn(column)


def test_model_to_view_selects_row_and_highlights_tie_group(qtbot):
    document, panel = make_panel(qtbot)
    document.select("4.weight")
    assert panel.view.currentIndex().data(PATH_ROLE) == "4.weight"
    background = lambda p: source_index(panel, p).data(Qt.ItemDataRole.BackgroundRole)  # noqa: E731
    assert background("2.weight") is not None and background("4.weight") is not None
    assert background("2.bias") is None and background("0.weight") is None
    document.select("0.bias")
    assert background("2.weight") is None  # the highlight follows the selection


def test_view_to_model_click_selects_in_document(qtbot):
    document, panel = make_panel(qtbot)
    proxy_index = panel.proxy.mapFromSource(source_index(panel, "6.bias"))
    rect = panel.view.visualRect(proxy_index)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert document.selected == "6.bias"
    qtbot.keyClick(panel.view, Qt.Key.Key_Up)  # keyboard moves the selection too
    assert document.selected == "6.weight"


def test_selecting_a_shared_module_highlights_its_other_place(qtbot):
    document, panel = make_panel(qtbot)
    document.select("2")
    assert source_index(panel, "4").data(Qt.ItemDataRole.BackgroundRole) is not None
    assert source_index(panel, "0").data(Qt.ItemDataRole.BackgroundRole) is None


def test_filter_keeps_matches_and_their_parents(qtbot):
    document, panel = make_panel(qtbot, "example:nested")

    def visible_tensors(parent):
        out = []
        for row in range(panel.proxy.rowCount(parent)):
            index = panel.proxy.index(row, 0, parent)
            node = panel.proxy.mapToSource(index).internalPointer()
            if not node.is_module:
                out.append(node.path)
            out.extend(visible_tensors(index))
        return out

    assert len(visible_tensors(panel.proxy.index(0, 0))) == 18
    qtbot.keyClicks(panel.filter_edit, "bias")
    expected = [p for p in document.tree.tensors if p.endswith("bias")]
    qtbot.waitUntil(lambda: visible_tensors(panel.proxy.index(0, 0)) == expected, timeout=3000)
    assert len(expected) == 9
    # selecting a tensor the filter hides clears the filter
    document.select("1.weight")
    assert panel.filter_edit.text() == ""
    assert panel.view.currentIndex().data(PATH_ROLE) == "1.weight"


def test_three_kinds_of_sharing_look_different(qtbot):
    _document, panel = make_panel(qtbot, "example:sharing")

    def ties(path):
        index = source_index(panel, path, TIES)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        return index.data(), icon.pixmap(16, 16).toImage() if icon is not None else None

    tensor_text, tensor_icon = ties("embed.weight")
    alias_text, alias_icon = ties("body.0")
    empty_text, empty_icon = ties("body.1")
    assert tensor_text == "= head.weight"
    assert alias_text == "same object as body.2"
    assert empty_text == "same object as body.3 (no parameters)"
    assert tensor_icon != alias_icon and alias_icon != empty_icon and tensor_icon != empty_icon
    assert ties("embed")[1] is None  # the modules of a cross-module tie are not aliases
    # tie group colours differ between groups
    assert ties("body.0.weight")[1] != ties("body.0.bias")[1]


def test_filtering_away_the_current_row_keeps_the_selection_and_does_not_crash(qtbot, window):
    # found by the monkey test: a filter that hid the current row moved "current" during the
    # proxy's filter change; selecting that row re-entered the model and Qt crashed
    w = window("example:sharing")
    w.show()
    qtbot.waitExposed(w)
    panel = w.tree_panel
    panel.filter_edit.setText("weight")
    panel._apply_filter()
    w.document.select("body.0.bias")  # hidden by the filter: the filter is cleared to show it
    assert panel.filter_edit.text() == ""
    panel.filter_edit.setText("weight")
    panel._apply_filter()  # hides the current row again
    assert w.document.selected == "body.0.bias"  # filtering is not choosing
    panel.clear_filter()
    assert panel.view.currentIndex().data(PATH_ROLE) == "body.0.bias"


def all_proxy_indexes(panel, parent=None):
    """Every cell the view can show, row after row, depth first."""
    from PySide6.QtCore import QModelIndex

    parent = QModelIndex() if parent is None else parent
    for row in range(panel.proxy.rowCount(parent)):
        for column in range(panel.proxy.columnCount(parent)):
            yield panel.proxy.index(row, column, parent)
        yield from all_proxy_indexes(panel, panel.proxy.index(row, 0, parent))


def test_the_row_delegate_styles_every_cell_as_qt_would_from_data(qtbot):
    """The tree's delegate fills each cell's style in one call into the model (a full
    repaint asked data() ~1,850 times); what it fills must be what Qt's own delegate makes
    of data(): text, icon, bold highlight, alignment, dimmed or tie-coloured text,
    highlight background. Tied, shared, filtered (dimmed parents) and selected rows."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

    document, panel = make_panel(qtbot, "example:tied")
    panel.view.setColumnHidden(5, False)  # grad norms: right-aligned numbers
    document.select("4.weight")  # its tie group highlighted
    panel.filter_edit.setText("weight")  # modules above shown dimmed
    qtbot.waitUntil(lambda: panel.model.rows is not None and panel.model.rows.matches is not None)
    cells = list(all_proxy_indexes(panel))
    assert len(cells) > 30
    kinds = {"bold": 0, "dimmed": 0, "background": 0, "icon": 0, "right": 0}
    for index in cells:
        options = []
        for fill in (
            panel.delegate.initStyleOption,
            lambda o, i: QStyledItemDelegate.initStyleOption(panel.delegate, o, i),
        ):
            option = QStyleOptionViewItem()
            panel.view.initViewItemOption(option)
            if index.data(PATH_ROLE) == "4.weight":
                option.state |= QStyle.StateFlag.State_Selected
            fill(option, index)
            options.append(option)
        ours, qts = options
        where = (index.data(PATH_ROLE), index.column())
        assert ours.text == qts.text, where
        assert ours.features == qts.features, where
        assert ours.icon.cacheKey() == qts.icon.cacheKey(), where
        assert ours.decorationSize == qts.decorationSize, where
        assert ours.font == qts.font, where
        assert ours.displayAlignment == qts.displayAlignment, where
        text_role = QPalette.ColorRole.Text
        assert ours.palette.color(text_role) == qts.palette.color(text_role), where
        assert ours.backgroundBrush == qts.backgroundBrush, where
        kinds["bold"] += ours.font.bold()
        kinds["dimmed"] += ours.palette.color(text_role) != panel.view.palette().color(text_role)
        kinds["background"] += ours.backgroundBrush.style() != Qt.BrushStyle.NoBrush
        kinds["icon"] += not ours.icon.isNull()
        kinds["right"] += bool(ours.displayAlignment & Qt.AlignmentFlag.AlignRight)
    assert all(kinds.values()), kinds  # each way a cell can look was compared


def test_tensor_rows_keep_their_parents_past_the_bounded_memo(qtbot, monkeypatch):
    """parent() of a tensor row is remembered for a few thousand rows (painting asks for
    it three times a row); past that the memo starts again, and parents stay right."""
    from netexplorer.ui import tree_view

    monkeypatch.setattr(tree_view, "LEAF_PLACES", 4)
    _document, panel = make_panel(qtbot, "example:nested")
    panel.view.expandAll()
    model = panel.model
    checked = 0
    for index in all_proxy_indexes(panel):
        source = panel.proxy.mapToSource(index)
        for _ in range(2):  # asked again: from the memo (or after it was emptied)
            parent = model.parent(source)
            assert model.index(source.row(), source.column(), parent) == source
        checked += model.node(source) is not None and not model.node(source).is_module
        assert len(model._leaf_parent) <= 4
    assert checked > 8

"""The selection in the graph, kept in step with the document's: a click on a node selects
its module (and so the tree row and the heatmap); selecting in the tree highlights every
visible node that stands for it (its calls, or the collapsed box around them; for a tensor,
the nodes of every path tied to it), and scrolls the first into view."""

from __future__ import annotations

from collections.abc import Callable

from ...core.errors import UnknownPathError
from ...core.tree import ModuleNode, TensorNode
from ..document import Document
from .canvas import GraphCanvas
from .items import NodeItem
from .scene import GraphScene
from .tasks import LaidOut


class GraphSelection:
    """Which nodes are highlighted, from the document's selection and the node clicked."""

    def __init__(
        self,
        document: Document,
        canvas: GraphCanvas,
        shown: Callable[[], tuple[LaidOut | None, GraphScene | None]],
        changed: Callable[[], None],
    ) -> None:
        self.document = document
        self.canvas = canvas
        self._shown = shown  # the layout and scene on screen
        self._changed = changed  # after the highlight changed (the overview redraws)
        self._clicked: str | None = None  # the node clicked, among the calls of its path

    def forget(self) -> None:
        self._clicked = None

    def select_node(self, node_id: str) -> None:
        """Select the module of a node in the document (and so in the tree and heatmap)."""
        laid, _scene = self._shown()
        if laid is None:
            return
        node = laid.view.node(node_id)
        if node.path is None:  # the model input or output
            return
        self._clicked = node_id
        if self.document.selected == node.path:
            self.apply(scroll=False)
        else:
            self.document.select(node.path)

    def apply(self, *, scroll: bool) -> None:
        """Highlight what the document selects; `scroll` it into view."""
        _laid, scene = self._shown()
        if scene is None:
            return
        path = self.document.selected
        ids = self.visible_for_path(path) if path is not None else []
        primary = [self._clicked] if self._clicked in ids else ids
        if self._clicked not in ids:
            self._clicked = None
        scene.highlight(primary)
        self._changed()
        if scroll and primary:
            item = scene.nodes.get(primary[0]) or scene.boxes.get(primary[0])
            if item is not None:
                self.canvas.ensureVisible(item.rect, 60, 60)

    def visible_for_path(self, path: str) -> list[str]:
        """The visible nodes (or boxes) that stand for a module or tensor path: its calls, or
        the collapsed box around them; a tensor's, those of every path tied to it."""
        laid, scene = self._shown()
        tree = self.document.tree
        if laid is None or tree is None or scene is None:
            return []
        graph = laid.graph
        try:
            node = tree.node(path)
        except UnknownPathError:
            return []
        ids: list[str] = []
        if isinstance(node, TensorNode):
            group = tree.tie_group(path)
            for p in group.paths if group is not None else (path,):
                ids += graph.nodes_using(p)
        else:
            module: ModuleNode | None = node
            while module is not None and not ids:  # a module never called: its caller
                ids = graph.nodes_at(module.path)
                module = module.parent
        out: list[str] = []
        for node_id in ids:
            shown = laid.view.visible_id(node_id)
            if (shown in scene.nodes or shown in scene.boxes) and shown not in out:
                out.append(shown)
        return out

    def highlighted(self) -> tuple[list[str], list[str]]:
        """Ids of the selected nodes and of the nodes tie-linked to them (for tests)."""
        _laid, scene = self._shown()
        if scene is None:
            return [], []
        items = [*scene.nodes.values(), *scene.boxes.values()]
        selected = [i.node_id for i in items if isinstance(i, NodeItem) and i.selected]
        partners = [
            i.node_id
            for i in items
            if i.highlight is not None and not (isinstance(i, NodeItem) and i.selected)
        ]
        return selected, partners

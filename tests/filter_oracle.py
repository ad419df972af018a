"""What the tree's filter must show, found the slow way (used by the core filter's tests and
the tree view's)."""

from __future__ import annotations

from netexplorer.core.tree import ModuleNode, TensorNode


def brute_force(tree, text: str) -> set[str]:
    """The paths the filter shows, by walking the tree and matching each node's path, name,
    kind or type and access expression (what the filter proxy of the tree view did)."""
    text = text.strip().lower()
    shown: set[str] = set()

    def matches(node) -> bool:
        kind = node.kind if isinstance(node, TensorNode) else node.type_name
        return any(text in s.lower() for s in (node.path, node.name, kind, node.access))

    def visit(module: ModuleNode) -> bool:
        below = False
        for tensor in module.tensors:
            if matches(tensor):
                shown.add(tensor.path)
                below = True
        for child in module.children:
            below = visit(child) or below
        if below or matches(module):
            shown.add(module.path)
        return below or matches(module)

    visit(tree.root)
    return shown

"""The graph view's data: one node per module call, data-flow edges, tie links, containers.

A live model runs one forward pass on its default input (seeded, `torch.no_grad()`, eval
mode, restored afterwards), recorded by a `CallRecorder`. Every module call is a node, in call
order (`n{index}`: the root call is `n0`), plus the model `input` and `output`. A call that
made other calls is a *container* (a box that can be collapsed to one node); the others are
leaves.

Data flow follows tensors, not names. Between module calls a torch function mode carries, for
every tensor, where its values came from (the output of a call, or the input of a container
seen from inside it); functional glue (`x + attn(x)`, `split`, `view`) passes origins on. An
edge is therefore "this output fed that call", and it stays inside the box it belongs to: a
container's input feeds its children from the box's left edge (`source_port="in"`), its
children feed its output at the right edge (`target_port="out"`), and a residual connection
that carries the input past everything is an edge from the box's input to its output. Edges
never fan out to every leaf that a residual stream ever touched (that would be one edge per
pair of layers in a transformer). The root is not a box: its input and output are the
`input` and `output` nodes.

A checkpoint without code, and a model whose forward cannot run, get the module hierarchy
instead (no data flow) and a `note` saying why.

Tie links join the nodes that use one tensor, each of one kind:

- `tied_tensor`: one tensor held by different modules (an embedding and the output head);
- `shared_module`: one module object placed at several paths (the notebook's `2` and `4`);
- `loop`: one module called several times at one path (an unrolled RNN cell): a chain over
  its calls in call order;
- `stateless`: one parameter-free module used at several places (a ReLU object reused); the
  link names no tensor.

Ties come from `tree.tie_groups` and module identity (`ModuleNode.shared_with`), never from
names. The uses of one tensor are chained in call order, so n uses give n - 1 links.

torch is imported only when a forward pass runs.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .calls import CallRecorder, ModuleCall, iter_tensors
from .inputs import InputBatch, InputSpec, as_batch
from .text import shape_text
from .torch_import import import_torch
from .tree import ModuleNode, ModuleTree

INPUT_ID = "input"
OUTPUT_ID = "output"

# node kinds
MODULE = "module"
CONTAINER = "container"
INPUT = "input"
OUTPUT = "output"
FOLD = "fold"  # a run of alike sibling calls shown as one node ("Block ×24")

FOLD_MIN = 3  # a run this long or longer folds (two blocks are clearer side by side)

# tie link kinds
TIED_TENSOR = "tied_tensor"
SHARED_MODULE = "shared_module"
LOOP = "loop"
STATELESS = "stateless"
TIE_KINDS = (TIED_TENSOR, SHARED_MODULE, LOOP, STATELESS)

NO_CODE_NOTE = (
    "a checkpoint without code has no data flow: open it with its model code "
    "(--model pkg.module:factory --weights FILE) to see one"
)
NO_INPUT_NOTE = (
    "no input is known for this model, so there is no data flow to show: give an input "
    "shape to run a forward pass"
)

SCRIPTED_NOTE = (
    "which runs as compiled code: its module calls cannot be recorded, so there is no data flow"
)

V = TypeVar("V")


@dataclass(eq=False)
class GraphNode:
    """One module call (or one module, without data flow), or the model input or output."""

    id: str
    kind: str  # MODULE | CONTAINER | INPUT | OUTPUT
    path: str | None  # module path ('' is the root); None for the input and output
    call: int | None  # calls of this path before this one; None for the input and output
    type: str  # module type name ('' when a checkpoint does not say)
    parent: str | None = None  # id of the enclosing container
    depth: int = 0  # containers around it; the root is 0, its children 1
    children: list[str] = field(default_factory=list)  # ids, for containers
    calls_at_site: int = 1  # calls of this path in the pass: the loop badge when above 1
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # output (input: its own)
    tensor_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # its own, for folds
    members: tuple[str, ...] = ()  # a fold: the ids of the calls it stands for
    fold_key: str = ""  # a fold: opening it opens every run of these calls (Graph.folds)
    span: str = ""  # a fold: which calls, `blocks.0 … blocks.23`

    @property
    def is_container(self) -> bool:
        return self.kind == CONTAINER

    def label_lines(self) -> list[str]:
        """What a node shows: type, then where it is (and which call, in a loop)."""
        if self.kind in (INPUT, OUTPUT):
            return [self.kind, *(shape_text(s, "compact") for s in self.shapes[:1])]
        if self.kind == FOLD:
            return [f"{self.type or 'module'} ×{len(self.members)}", self.span]
        where = self.path or "(model)"
        if self.calls_at_site > 1:
            where += f"  [{(self.call or 0) + 1}/{self.calls_at_site}]"
        if self.type:
            return [self.type, where]
        name = where.rpartition(".")[2]  # a checkpoint does not say the type
        return [name, where] if name != where else [where]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "call": self.call,
            "type": self.type,
            "kind": self.kind,
            "parent": self.parent,
            "depth": self.depth,
        }
        if self.calls_at_site > 1:
            out["calls_at_site"] = self.calls_at_site
        if self.shapes:
            out["shapes"] = [list(s) for s in self.shapes]
        return out


@dataclass(frozen=True)
class DataEdge:
    """Values flowing from `source` to `target`.

    A port says which side of a container box is meant: `source_port="in"` is the
    container's input as seen from inside it (feeding a child, or its output directly);
    `target_port="out"` is its output as seen from inside (fed by a child). Otherwise a
    source means that node's output and a target that node's input."""

    source: str
    target: str
    source_port: str = "out"
    target_port: str = "in"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.source, "to": self.target}
        if self.source_port != "out":
            out["from_port"] = self.source_port
        if self.target_port != "in":
            out["to_port"] = self.target_port
        return out


@dataclass
class TieLink:
    """Nodes `a` and `b` use the same tensor(s) (`a` comes first in call order).

    `paths` pairs each shared tensor's path as seen from `a` and from `b` (`("2.weight",
    "4.weight")`; for a loop both are the same path); `tensors` labels them: the names
    within the module for a shared module or a loop (`weight`), both paths for a tensor tied
    across modules (`tok_emb.weight = head.weight`), nothing for a stateless module."""

    a: str
    b: str
    kind: str  # one of TIE_KINDS
    tensors: list[str] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "tensors": list(self.tensors),
            "kind": self.kind,
            "paths": [list(p) for p in self.paths],
        }


class Graph:
    """The whole graph of one tree: every node, the data-flow edges, the tie links.

    `view()` gives what is visible for a collapse state; `core.layout.layout_view` places it.
    """

    def __init__(
        self,
        nodes: list[GraphNode],
        edges: list[DataEdge],
        tie_links: list[TieLink],
        *,
        has_data_flow: bool,
        note: str = "",
    ) -> None:
        self.nodes = nodes
        self.edges = edges
        self.tie_links = tie_links
        self.has_data_flow = has_data_flow
        self.note = note  # why there is no data flow ('' when there is)
        self.by_id: dict[str, GraphNode] = {n.id: n for n in nodes}
        self.order: dict[str, int] = {n.id: k for k, n in enumerate(nodes)}
        self.root_id = next((n.id for n in nodes if n.path == "" and n.parent is None), None)
        self._by_call: dict[tuple[str, int], str] = {
            (n.path, n.call): n.id for n in nodes if n.path is not None and n.call is not None
        }
        self._tensor_nodes: dict[str, list[str]] = {}  # tensor path -> ids of nodes using it
        self._folds: list[GraphNode] | None = None

    # -- lookup -----------------------------------------------------------------------------

    @property
    def containers(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.kind == CONTAINER]

    def nodes_at(self, path: str) -> list[str]:
        """Ids of the nodes of module `path` (one per call), in call order."""
        return [n.id for n in self.nodes if n.path == path]

    def nodes_using(self, tensor_path: str) -> list[str]:
        """Ids of the nodes that use the tensor at `tensor_path` (its owner's calls)."""
        return list(self._tensor_nodes.get(tensor_path, ()))

    def links_of(self, node_id: str) -> list[TieLink]:
        return [link for link in self.tie_links if node_id in (link.a, link.b)]

    def node_for_call(self, site: str, call: int) -> str | None:
        """The node of the `call`-th call of module path `site` (the pass engine's use)."""
        return self._by_call.get((site, call))

    def values_on_nodes(self, values: Mapping[tuple[str, int], V]) -> dict[str, V]:
        """Per-use values keyed by (site, call), such as the gradient each use of a shared
        parameter contributed, put on node ids (uses the graph has no node for are left
        out). `GraphView.values_on_visible` then gathers them onto collapsed boxes."""
        out: dict[str, V] = {}
        for (site, call), value in values.items():
            node_id = self._by_call.get((site, call))
            if node_id is not None:
                out[node_id] = value
        return out

    # -- folds ------------------------------------------------------------------------------

    def folds(self) -> list[GraphNode]:
        """Runs of at least FOLD_MIN alike blocks (calls of containers) side by side under
        one parent (the layers of a transformer), each as a FOLD node standing for them.
        Alike: the same kind, type, output shapes and tensors (names and shapes: a
        checkpoint's layers, without output shapes, fold too), and alike calls inside,
        recursively. A run whose calls share tensors with each other (one module called in
        a loop, a shared block) does not fold: the sharing is what there is to see. A fold's
        `fold_key` names the parent and the kind of call: opening one opens every run of
        them there."""
        if self._folds is None:
            self._folds = self._find_folds()
        return self._folds

    def _find_folds(self) -> list[GraphNode]:
        interned: dict[Hashable, int] = {}
        signature: dict[str, int] = {}
        for n in reversed(self.nodes):  # children before their parents
            key = (
                n.kind,
                n.type,
                tuple(n.shapes),
                n.tensor_shapes,
                tuple(signature[c] for c in n.children),
            )
            signature[n.id] = interned.setdefault(key, len(interned))
        by_parent: dict[str | None, list[GraphNode]] = {}
        for n in self.nodes:
            if n.parent is not None:
                by_parent.setdefault(n.parent, []).append(n)
        shared = self._members_sharing()
        folds: list[GraphNode] = []
        for parent, children in by_parent.items():
            for _, run in itertools.groupby(children, key=lambda n: signature[n.id]):
                members = list(run)
                if (
                    len(members) < FOLD_MIN
                    or members[0].kind != CONTAINER  # q, k, v and o: alike, yet each its own
                    or any(m.id in shared for m in members)
                ):
                    continue
                first, last = members[0], members[-1]
                if first.path == last.path:
                    span = f"{first.path}  [calls {(first.call or 0) + 1}–{(last.call or 0) + 1}]"
                else:
                    span = f"{first.path} … {last.path}"
                folds.append(
                    GraphNode(
                        id=f"fold:{first.id}",
                        kind=FOLD,
                        path=first.path,
                        call=first.call,
                        type=first.type,
                        parent=parent,
                        depth=first.depth,
                        shapes=list(last.shapes),
                        members=tuple(m.id for m in members),
                        fold_key=f"{parent}/{signature[first.id]}",
                        span=span,
                    )
                )
        return folds

    def _members_sharing(self) -> set[str]:
        """Ids of the calls that share tensors with a sibling call (or a sibling's insides)."""
        out: set[str] = set()
        for link in self.tie_links:
            a, b = self.by_id[link.a], self.by_id[link.b]
            ancestors_a = {}
            node: GraphNode | None = a
            while node is not None:
                ancestors_a[node.parent] = node.id
                node = self.by_id.get(node.parent) if node.parent is not None else None
            node = b
            while node is not None:
                mine = ancestors_a.get(node.parent)
                if mine is not None:  # the children of one parent that hold a and b
                    if mine != node.id:
                        out.update((mine, node.id))
                    break
                node = self.by_id.get(node.parent) if node.parent is not None else None
        return out

    # -- collapse ---------------------------------------------------------------------------

    def default_depth(self, max_nodes: int = 60, *, fold: bool = False) -> int:
        """The deepest depth whose view (with `fold`, runs of alike calls folded) shows at
        most `max_nodes` nodes (at least 1)."""
        deepest = max((n.depth for n in self.nodes if n.kind == CONTAINER), default=0) + 1
        best = 1
        for depth in range(1, deepest + 1):
            if len(self.view(depth=depth, fold=fold).nodes) > max_nodes:
                break
            best = depth
        return best

    def view(
        self,
        collapsed: Collection[str] = (),
        *,
        depth: int | None = None,
        expanded: Collection[str] = (),
        fold: bool = False,
        unfolded: Collection[str] = (),
    ) -> GraphView:
        """What is visible when the containers at the module paths in `collapsed` are shut,
        and, with `depth`, every container at that depth or deeper (depth 1 shows the
        model's children; 0 shuts the model itself) except those whose path is in
        `expanded`. With `fold`, runs of alike calls are folded into one node (`folds()`)
        unless their `fold_key` is in `unfolded`. Edges and tie links are mapped onto what
        is visible: merged, without self-loops or duplicates."""
        collapsed = set(collapsed)
        expanded = set(expanded)
        unfolded = set(unfolded)
        fold_of: dict[str, GraphNode] = {}
        if fold:
            for fold in self.folds():
                if fold.fold_key not in unfolded:
                    for member in fold.members:
                        fold_of[member] = fold
        shut = {
            n.id
            for n in self.nodes
            if n.kind == CONTAINER
            and (
                n.path in collapsed
                or (depth is not None and n.depth >= depth and n.path not in expanded)
            )
        }
        rep: dict[str, str] = {}
        shown_folds: dict[str, GraphNode] = {}
        visible: list[GraphNode] = []
        for n in self.nodes:  # a parent always comes before its children
            parent = n.parent
            if parent is None:
                rep[n.id] = n.id
            elif rep[parent] != parent:
                rep[n.id] = rep[parent]
            elif parent in shut:
                rep[n.id] = parent
            elif n.id in fold_of:
                fold = fold_of[n.id]
                rep[n.id] = fold.id
                if fold.id not in shown_folds:
                    shown_folds[fold.id] = fold
                    visible.append(fold)
            else:
                rep[n.id] = n.id
            if rep[n.id] == n.id and (n.kind != CONTAINER or n.id in shut):
                visible.append(n)
        boxes = [
            n
            for n in self.nodes
            if rep[n.id] == n.id
            and n.kind == CONTAINER
            and n.id not in shut
            and n.id != self.root_id
        ]
        box_ids = {b.id for b in boxes}
        return GraphView(
            graph=self,
            collapsed=frozenset(shut),
            nodes=visible,
            boxes=boxes,
            edges=self._visible_edges(rep, box_ids),
            tie_links=self._visible_links(rep, shut, shown_folds),
            representative=rep,
            folds=shown_folds,
        )

    def _visible_edges(self, rep: dict[str, str], box_ids: set[str]) -> list[DataEdge]:
        out: dict[DataEdge, None] = {}
        for e in self.edges:
            source, source_port = _visible_end(e.source, e.source_port, "out", rep, box_ids)
            target, target_port = _visible_end(e.target, e.target_port, "in", rep, box_ids)
            if source == target and not (source_port == "in" and target_port == "out"):
                continue  # inside one collapsed box
            out[DataEdge(source, target, source_port, target_port)] = None
        return list(out)

    def _visible_links(
        self, rep: dict[str, str], shut: set[str], folds: dict[str, GraphNode]
    ) -> list[TieLink]:
        merged: dict[tuple[str, str, str], TieLink] = {}
        order = {**self.order, **{f.id: self.order[f.members[0]] for f in folds.values()}}
        for link in self.tie_links:
            a, b = rep[link.a], rep[link.b]
            if a == b or (self.root_id in (a, b) and self.root_id not in shut):
                continue  # inside one collapsed box, or on the model itself, which is no box
            if order[a] > order[b]:
                a, b = b, a
                pairs = [(pb, pa) for pa, pb in link.paths]
            else:
                pairs = list(link.paths)
            key = (a, b, link.kind)
            target = merged.get(key)
            if target is None:
                target = merged[key] = TieLink(a, b, link.kind)
            node_a, node_b = folds.get(a) or self.by_id[a], folds.get(b) or self.by_id[b]
            for pair in pairs:
                if pair not in target.paths:
                    target.paths.append(pair)
                    label = tensor_label(link.kind, *pair, node_a.path or "", node_b.path or "")
                    if label not in target.tensors:
                        target.tensors.append(label)
        return list(merged.values())

    # -- output -----------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The `graph` object of the JSON description (DESIGN.md), with `kind`s, ports,
        `has_data_flow` and `note` besides."""
        return {
            "nodes": [n.as_dict() for n in self.nodes],
            "edges": [e.as_dict() for e in self.edges],
            "tie_links": [link.as_dict() for link in self.tie_links],
            "has_data_flow": self.has_data_flow,
            "note": self.note or None,
        }


@dataclass
class GraphView:
    """What the graph view shows for one collapse state.

    `nodes` are drawn as nodes (leaves, collapsed containers, input, output); `boxes` are
    expanded containers drawn as frames around their contents (the root is never a box: its
    input and output are the `input` and `output` nodes). Edge and link endpoints are ids in
    `nodes` or `boxes`; `representative` maps every node id to the visible node or box that
    stands for it (select a module in the tree: highlight its representative)."""

    graph: Graph
    collapsed: frozenset[str]  # ids of every shut container, visible or not
    nodes: list[GraphNode]
    boxes: list[GraphNode]
    edges: list[DataEdge]
    tie_links: list[TieLink]
    representative: dict[str, str]
    folds: dict[str, GraphNode] = field(default_factory=dict)  # the folds shown, by id

    def __post_init__(self) -> None:
        self._order = dict(self.graph.order)
        for fold in self.folds.values():
            self._order[fold.id] = self._order[fold.members[0]]
        box_ids = {b.id for b in self.boxes}
        self._box_of: dict[str, str | None] = {}
        for n in (*self.boxes, *self.nodes):
            parent = n.parent
            while parent is not None and parent not in box_ids:
                parent = self.graph.by_id[parent].parent
            self._box_of[n.id] = parent

    def node(self, item_id: str) -> GraphNode:
        """The node or box of a visible id (a fold, or one of the graph's nodes)."""
        return self.folds.get(item_id) or self.graph.by_id[item_id]

    def order(self, item_id: str) -> int:
        """Where a visible node comes in call order (a fold: where its first call does)."""
        return self._order[item_id]

    def box_of(self, item_id: str) -> str | None:
        """The box drawn around a visible node or box (None: the top level)."""
        return self._box_of[item_id]

    def visible_id(self, node_id: str) -> str:
        """The visible node or box that stands for `node_id`."""
        return self.representative[node_id]

    def values_on_visible(
        self, values: Mapping[str, float], combine: Callable[[Iterable[float]], float] = max
    ) -> dict[str, float]:
        """Per-node values (say gradient norms) gathered onto the visible nodes: a collapsed
        box gets `combine` of the values of the nodes inside it."""
        gathered: dict[str, list[float]] = {}
        for node_id, value in values.items():
            rep = self.representative.get(node_id)
            if rep is not None:
                gathered.setdefault(rep, []).append(value)
        return {k: combine(v) for k, v in gathered.items()}


def _visible_end(
    node_id: str, port: str, default: str, rep: dict[str, str], box_ids: set[str]
) -> tuple[str, str]:
    shown = rep[node_id]
    if shown == node_id and node_id in box_ids:
        return node_id, port
    return shown, default


def tensor_label(kind: str, path_a: str, path_b: str, module_a: str, module_b: str) -> str:
    """How a tie link names one shared tensor: `weight` for a shared module or a loop (the
    name within the module), `tok_emb.weight = head.weight` for a tensor tied across modules."""
    if kind == TIED_TENSOR:
        return f"{path_a} = {path_b}"
    if module_a and path_a.startswith(module_a + "."):
        return path_a[len(module_a) + 1 :]
    return path_a


# -- building -------------------------------------------------------------------------------


def graph_for_tree(
    tree: ModuleTree,
    seed: int | None = 0,
    input_spec: InputSpec | InputBatch | None = None,
    pause: Callable[[], None] | None = None,
) -> Graph:
    """The graph of a tree: with data flow from one forward pass for a live model (on
    `input_spec`, else the tree's default input, generated from `seed`); the hierarchy with
    a note saying why for a checkpoint without code or a forward that cannot run. `pause()`
    is called before each module call of the pass (a caller that wants the GIL for a moment
    waits there)."""
    if not tree.is_live:
        if tree.structure is not None:  # an architecture from a config, on the meta device
            return _structure_graph(tree, seed, input_spec)
        return hierarchy_graph(tree, NO_CODE_NOTE)
    scripted = _scripted_path(tree)
    if scripted == "":  # the whole model is compiled: its calls are read from its graphs
        return _script_graph(tree)
    if scripted is not None:
        where = "the model is" if scripted == "" else f"module `{scripted}` is"
        return hierarchy_graph(tree, f"{where} TorchScript, {SCRIPTED_NOTE}")
    spec = input_spec or tree.default_input
    if spec is None:  # a factory's model: the batch its first input layer takes
        from .errors import PassError
        from .passes.input_guess import infer_input_spec

        try:
            spec = infer_input_spec(tree.module)
        except PassError:
            return hierarchy_graph(tree, NO_INPUT_NOTE)
    with paused_gc():
        try:
            recorder, batch = _record_forward(tree, spec, seed, pause)
        except _ForwardFailed as failed:
            return hierarchy_graph(tree, str(failed))
        try:
            return _flow_graph(tree, recorder, batch)
        finally:
            recorder.clear()  # let go of the pass's tensors


def _script_graph(tree: ModuleTree) -> Graph:
    """The calls of a TorchScript model as its compiled graphs list them (script_calls.py)."""
    from types import SimpleNamespace

    from .script_calls import script_calls

    try:
        found = script_calls(tree.module)
    except Exception as exc:  # a graph this reader does not follow: the hierarchy
        return hierarchy_graph(tree, f"the model is TorchScript, {SCRIPTED_NOTE} ({exc})")
    inputs = [SimpleNamespace(shape=s) for s in found.input_shapes]
    graph = _flow_graph(tree, found, inputs)  # type: ignore[arg-type]
    graph.note = SCRIPT_GRAPH_NOTE
    return graph


SCRIPT_GRAPH_NOTE = (
    "TorchScript: the calls are read from its compiled graphs (a call in a loop shows once; "
    "no output shapes)"
)


def _structure_graph(
    tree: ModuleTree, seed: int | None, input_spec: InputSpec | InputBatch | None
) -> Graph:
    """The call graph of a checkpoint's architecture (tree.structure, on the meta device):
    the calls and their data flow, without values; the hierarchy when it cannot run there."""
    import sys

    shadow = ModuleTree(tree.root, tree.tie_groups, module=tree.structure)
    shadow.default_input = input_spec or tree.default_input
    quiet: Any = contextlib.nullcontext()
    if "transformers" in sys.modules:  # what it logs about a tiny config is not the user's
        from .hf_library import quiet_transformers

        quiet = quiet_transformers()
    with quiet:
        graph = graph_for_tree(shadow, seed)
    if graph.has_data_flow:
        graph.note = STRUCTURE_NOTE
    else:
        graph.note = f"{graph.note}; {STRUCTURE_NOTE}" if graph.note else STRUCTURE_NOTE
    return graph


STRUCTURE_NOTE = (
    "the architecture from config.json, run on the meta device: calls and shapes without "
    "values (Make live runs it for real)"
)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a burst of small allocations (building
    or laying out a graph of thousands of calls): with torch and Qt loaded, each collection
    walks a large heap and would double the time. Reference counting still frees memory."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def hierarchy_graph(tree: ModuleTree, note: str = "") -> Graph:
    """The module hierarchy as a graph: one node per module path (`n{k}` in state_dict
    order), containers for modules with children, no data flow, the tie links."""
    ids: dict[str, str] = {}
    nodes: list[GraphNode] = []
    for k, m in enumerate(tree.root.walk()):
        ids[m.path] = f"n{k}"
        parent = ids[m.parent.path] if m.parent is not None else None
        nodes.append(
            GraphNode(
                id=ids[m.path],
                kind=CONTAINER if m.children else MODULE,
                path=m.path,
                call=0,
                type=m.type_name,
                parent=parent,
                depth=0 if m.parent is None else nodes[int(parent[1:])].depth + 1,
                children=[],
                tensor_shapes=_tensor_shapes(m),
            )
        )
    for n in nodes:
        if n.parent is not None:
            nodes[int(n.parent[1:])].children.append(n.id)
    nodes_at = {n.path: [n] for n in nodes if n.path is not None}
    graph = Graph(nodes, [], [], has_data_flow=False, note=note)
    graph.tie_links = _tie_links(tree, graph, nodes_at)
    return graph


def _tensor_shapes(module: ModuleNode | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if module is None:
        return ()
    return tuple((t.name, tuple(t.handle.shape)) for t in module.tensors)


def _scripted_path(tree: ModuleTree) -> str | None:
    """The first module path whose module is TorchScript (None: there is none)."""
    torch = import_torch()

    for path, module in tree.module.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            return path
    return None


class _ForwardFailed(Exception):
    """The forward pass could not run; the message says why, for the note."""


def _record_forward(
    tree: ModuleTree,
    spec: InputSpec | InputBatch,
    seed: int | None,
    pause: Callable[[], None] | None = None,
) -> tuple[Any, list[Any]]:
    torch = import_torch()

    module = tree.module
    modes = [(m, m.training) for m in module.modules()]
    recorder: _FlowRecorder | None = None
    running = False
    try:
        recorder = _FlowRecorder(tree)
        recorder.pause = pause
        args, kwargs = as_batch(spec).make(seed)
        first = next(iter(module.parameters()), None)
        if first is None:
            first = next(iter(module.buffers()), None)
        if first is not None:  # the meta device too: structure only
            moved: dict[int, Any] = {}
            args = tuple(moved.setdefault(id(a), a.to(first.device)) for a in args)
            kwargs = {k: moved.setdefault(id(v), v.to(first.device)) for k, v in kwargs.items()}
        batch = [*args, *dict.fromkeys(kwargs.values())]  # each tensor once
        module.eval()  # no dropout, no BatchNorm statistics updated by looking
        with torch.no_grad(), recorder, recorder.follow_tensors():
            for tensor in batch:
                recorder.start_input(tensor)
            running = True
            module(*args, **kwargs)
    except Exception as exc:
        if recorder is not None:  # hooks registered before one was refused: remove them
            recorder.__exit__(None, None, None)
        raise _ForwardFailed(_failure_note(recorder if running else None, exc)) from exc
    finally:
        for m, training in modes:
            m.training = training
    return recorder, batch


def _failure_note(recorder: CallRecorder | None, exc: Exception) -> str:
    """`the forward pass raised ValueError in module `2` (Linear): ...`, first line only;
    without a recorder, the pass could not even start (hooks refused, no input made)."""
    message = (str(exc).strip().splitlines() or [""])[0]
    if len(message) > 200:
        message = message[:197] + "..."
    if recorder is None:
        return f"the forward pass could not be recorded: {type(exc).__name__}: {message}"
    failed = recorder.failed_call()
    if failed is None:
        where = ""
    elif failed.site == "":
        where = " in the model's own forward"
    else:
        where = f" in module `{failed.site}` ({failed.type_name})"
    return f"the forward pass raised {type(exc).__name__}{where}: {message}".rstrip(": ")


# Where a tensor's values came from, as small ints so that merging them is cheap: the output
# of call i is 2i, the input of call i as seen from inside it is 2i + 1, the model input -1.
_MODEL_INPUT = -1


def _output_of(i: int) -> int:
    return 2 * i


def _input_of(i: int) -> int:
    return 2 * i + 1


class _FlowRecorder(CallRecorder):
    """A CallRecorder that follows tensors from call to call (see the module docstring).

    `origin` maps id(tensor) to where its values came from. A call stamps its inputs as "my
    input" for its duration (restored when it returns: the caller may use them again) and
    its outputs as "my output"; the torch function mode from `follow_tensors` passes origins
    through every torch operation between calls. Tensors stamped by the mode are kept alive
    until `clear()`, so an id never stands for two tensors."""

    def __init__(self, tree: ModuleTree) -> None:
        torch = import_torch()

        super().__init__(tree, keep_io=True)
        self._tensor_type = torch.Tensor
        self._reset()

    def _reset(self) -> None:
        self.origin: dict[int, frozenset[int]] = {}
        self.entered: dict[int, frozenset[int]] = {}  # call -> origins of its inputs
        self.returned: dict[int, frozenset[int]] = {}  # call -> origins of its outputs
        self.read: dict[int, set[int]] = {}  # call -> origins of what its own operations read
        self.containers: set[int] = set()  # calls that made calls
        self.outputs: dict[int, Any] = {}  # call -> what it returned
        self._restore: dict[int, list[tuple[int, frozenset[int] | None]]] = {}
        self._alive: list[Any] = []

    def clear(self) -> None:
        super().clear()
        self._reset()

    def start_input(self, batch: Any) -> None:
        self.origin[id(batch)] = frozenset((_MODEL_INPUT,))
        self._alive.append(batch)

    def call_started(self, record: ModuleCall, args: tuple) -> None:
        if record.parent is not None:
            self.containers.add(record.parent)
        came_from: set[int] = set()
        saved = []
        for tid in record.input_ids:
            before = self.origin.get(tid)
            if before:
                came_from |= before
            saved.append((tid, before))
        mine = frozenset((_input_of(record.index),))
        for tid in record.input_ids:
            self.origin[tid] = mine
        self.entered[record.index] = frozenset(came_from)
        self._restore[record.index] = saved

    def call_finished(self, record: ModuleCall, output: Any) -> None:
        came_from: set[int] = set()
        for tid in record.output_ids:
            came_from |= self.origin.get(tid, frozenset())
        self.returned[record.index] = frozenset(came_from)
        for tid, before in reversed(self._restore.pop(record.index, [])):
            if before is None:
                self.origin.pop(tid, None)
            else:
                self.origin[tid] = before
        mine = frozenset((_output_of(record.index),))
        for tid in record.output_ids:
            self.origin[tid] = mine
        self.outputs[record.index] = output  # shapes are read after the pass, outside the
        # torch function mode, where reading `.shape` is a plain attribute access

    def output_shapes(self, index: int) -> list[tuple[int, ...]]:
        """The shapes of what call `index` returned (after the pass)."""
        output = self.outputs.get(index)
        if isinstance(output, self._tensor_type):
            return [tuple(output.shape)]
        return [tuple(t.shape) for t in iter_tensors(output)]

    def follow_tensors(self) -> Any:
        """A torch function mode that passes origins through every torch operation."""
        torch = import_torch()
        from torch.overrides import TorchFunctionMode

        recorder = self
        tensor_type = torch.Tensor
        setitem = torch.Tensor.__setitem__

        def tensors_in(value: Any, out: list[Any]) -> None:
            if isinstance(value, tensor_type):
                out.append(value)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    tensors_in(v, out)

        class FollowTensors(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                result = func(*args, **kwargs)
                read: list[Any] = []
                tensors_in(args, read)
                if kwargs:
                    tensors_in(tuple(kwargs.values()), read)
                origin = recorder.origin
                came_from: set[int] = set()
                for t in read:
                    found = origin.get(id(t))
                    if found:
                        came_from |= found
                if not came_from:
                    return result
                current = recorder.current
                if current is not None:
                    recorder.read.setdefault(current.index, set()).update(came_from)
                written: list[Any] = []
                tensors_in(args[:1] if func is setitem else result, written)
                frozen = frozenset(came_from)
                for t in written:
                    origin[id(t)] = frozen
                    recorder._alive.append(t)
                return result

        return FollowTensors()


def _flow_graph(tree: ModuleTree, recorder: _FlowRecorder, batch: Any) -> Graph:
    calls = recorder.calls
    root_is_box = 0 in recorder.containers
    per_site: dict[str, int] = {}
    for c in calls:
        per_site[c.site] = per_site.get(c.site, 0) + 1

    nodes = [GraphNode(INPUT_ID, INPUT, None, None, "", shapes=[tuple(t.shape) for t in batch])]
    for c in calls:
        nodes.append(
            GraphNode(
                id=f"n{c.index}",
                kind=CONTAINER if c.index in recorder.containers else MODULE,
                path=c.site,
                call=c.call,
                type=c.type_name,
                parent=None if c.parent is None else f"n{c.parent}",
                depth=c.depth,
                calls_at_site=per_site[c.site],
                shapes=recorder.output_shapes(c.index),
                tensor_shapes=_tensor_shapes(tree.modules.get(c.site)),
            )
        )
    output_shapes = recorder.output_shapes(0)
    nodes.append(GraphNode(OUTPUT_ID, OUTPUT, None, None, "", shapes=output_shapes))
    for n in nodes[1:-1]:
        if n.parent is not None:
            nodes[int(n.parent[1:]) + 1].children.append(n.id)

    def source(code: int) -> tuple[str, str]:
        if code == _MODEL_INPUT or (code == _input_of(0) and root_is_box):
            return INPUT_ID, "out"
        return f"n{code >> 1}", "in" if code & 1 else "out"

    found: dict[DataEdge, None] = {}

    def add(code: int, target: str, port: str) -> None:
        if target == "n0" and root_is_box:
            if port == "in":
                return  # the model input is the root's input: the input node
            target, port = OUTPUT_ID, "in"
        node, node_port = source(code)
        found[DataEdge(node, target, node_port, port)] = None

    for c in calls:
        i = c.index
        if i in recorder.containers:
            for code in recorder.entered.get(i, ()):
                add(code, f"n{i}", "in")
            for code in recorder.returned.get(i, ()):
                add(code, f"n{i}", "out")
        else:  # a leaf reads its arguments, and whatever else its operations touch
            read = set(recorder.entered.get(i, ())) | recorder.read.get(i, set())
            read.discard(_input_of(i))
            for code in read:
                add(code, f"n{i}", "in")
    if calls and not root_is_box and output_shapes:
        found[DataEdge("n0", OUTPUT_ID)] = None

    graph = Graph(nodes, [], [], has_data_flow=True)
    order = graph.order
    graph.edges = sorted(found, key=lambda e: (order[e.target], order[e.source], e.source_port))
    nodes_at: dict[str, list[GraphNode]] = {}
    for n in nodes[1:-1]:
        nodes_at.setdefault(n.path or "", []).append(n)
    graph.tie_links = _tie_links(tree, graph, nodes_at)
    return graph


# -- tie links ------------------------------------------------------------------------------


def _tie_links(
    tree: ModuleTree, graph: Graph, nodes_at: dict[str, list[GraphNode]]
) -> list[TieLink]:
    """Chain the nodes that use each tensor (and each reused parameter-free module) in call
    order; links between the same two nodes of the same kind merge."""
    order = graph.order

    def users(module: ModuleNode) -> list[GraphNode]:
        # a module that is never called itself (MultiheadAttention's out_proj) has its
        # tensors used by the nearest enclosing module that is
        m: ModuleNode | None = module
        while m is not None:
            if m.path in nodes_at:
                return nodes_at[m.path]
            m = m.parent
        return []

    uses: dict[Hashable, list[tuple[GraphNode, str]]] = {}
    for t in tree.tensors.values():
        if t.module is None:
            continue
        key: Hashable = ("tie", t.tie) if t.tie is not None else t.path
        for node in users(t.module):
            uses.setdefault(key, []).append((node, t.path))
            graph._tensor_nodes.setdefault(t.path, []).append(node.id)

    merged: dict[tuple[str, str, str], TieLink] = {}

    def link(a: GraphNode, b: GraphNode, kind: str, pair: tuple[str, str] | None) -> None:
        entry = merged.get((a.id, b.id, kind))
        if entry is None:
            entry = merged[(a.id, b.id, kind)] = TieLink(a.id, b.id, kind)
        if pair is not None and pair not in entry.paths:
            entry.paths.append(pair)
            entry.tensors.append(tensor_label(kind, *pair, a.path or "", b.path or ""))

    for found in uses.values():
        chain: dict[str, tuple[GraphNode, str]] = {}
        for node, path in sorted(found, key=lambda u: order[u[0].id]):
            chain.setdefault(node.id, (node, path))  # a tensor under two names in one module
        steps = list(chain.values())
        for (a, path_a), (b, path_b) in itertools.pairwise(steps):
            link(a, b, _tie_kind(tree, a, b), (path_a, path_b))

    for m in tree.modules.values():
        aliases = [m.path, *m.shared_with]
        if m.children or m.tensors or m.path != min(aliases):
            continue
        reused = sorted(
            (n for p in aliases for n in nodes_at.get(p, ())), key=lambda n: order[n.id]
        )
        for a, b in itertools.pairwise(reused):
            link(a, b, STATELESS, None)

    return sorted(merged.values(), key=lambda k: (order[k.a], order[k.b], k.kind))


def _tie_kind(tree: ModuleTree, a: GraphNode, b: GraphNode) -> str:
    if a.path == b.path:
        return LOOP
    module = tree.modules.get(a.path or "")
    if module is not None and b.path in module.shared_with:
        return SHARED_MODULE
    return TIED_TENSOR

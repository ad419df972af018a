"""ModuleTree: a network's module hierarchy with its parameters and buffers, as plain data.

A tensor's path is its `state_dict` key (`0.block 1.0.bias`, spaces and all); a module's path
is its `named_modules` name (`''` is the root). A module object placed at several paths gets
one node per path (as `state_dict` lists it once per path) and the nodes name each other in
`shared_with`. Tensors reached from several paths form tie groups (see `sharing.py`).

The tree is built from a live `nn.Module` (`tree_from_module`) or from flat key -> handle
entries of a checkpoint (`tree_from_entries`). This module does not import torch.
"""

from __future__ import annotations

import keyword
import math
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Sized
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .collector import without_cycle_collector
from .errors import UnknownPathError
from .handles import TensorHandle, TorchHandle
from .order import sort_naturally
from .sharing import TieGroup, find_tie_groups, module_aliases
from .torch_import import import_torch

if TYPE_CHECKING:  # imported where inputs are made, not to open a file
    from .inputs import InputBatch, InputSpec

ROOT_NAME = "net"  # the variable name access expressions start from

# Tensors that are buffers by convention (BatchNorm statistics and the like). In a checkpoint
# without code nothing else says which entries are buffers.
KNOWN_BUFFER_NAMES = {"running_mean", "running_var", "num_batches_tracked"}


# Plain classes with slots (a million of them: bigtree), not dataclasses: their __init__
# is a third faster than the one dataclass writes for a parent link and defaults (50,000
# tensors and 32,000 modules a file), and opening a file imports neither dataclasses nor
# inspect. Nodes compare by identity.
class TensorNode:
    """A parameter or buffer at one state_dict path; in a checkpoint without code, where the
    file does not say which it is, a "tensor" (never claimed to require grad)."""

    __slots__ = ("__weakref__", "_module", "access", "handle", "kind", "name", "path")
    __slots__ += ("requires_grad", "tie")
    path: str
    name: str
    kind: str  # "parameter" | "buffer" | "tensor" (a checkpoint's entry of unknown kind)
    handle: TensorHandle
    requires_grad: bool
    access: str
    tie: int | None  # id of its tie group, if the tensor is reached from several paths
    _module: weakref.ReferenceType | None  # the owner (see _weak_parent)

    def __init__(
        self,
        path: str,
        name: str,
        kind: str,
        handle: TensorHandle,
        requires_grad: bool,
        access: str,
        module: ModuleNode | None = None,
        tie: int | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.kind = kind
        self.handle = handle
        self.requires_grad = requires_grad
        self.access = access
        self.tie = tie
        self._module = None if module is None else _ref(module)

    def __repr__(self) -> str:
        return f"TensorNode({self.path!r}, kind={self.kind!r}, shape={self.shape})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.handle.shape

    @property
    def dtype(self) -> str:
        return self.handle.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.handle.shape)

    is_module = False


class ModuleNode:
    """A module at one path. `type_name` is empty when a checkpoint does not say."""

    __slots__ = ("__weakref__", "_parent", "access", "children", "extra_repr", "name", "path")
    __slots__ += ("parameter_count", "shared_with", "tensor_elements", "tensors", "type_name")
    path: str
    name: str
    type_name: str
    extra_repr: str
    access: str
    # a module's lists are one shared empty tuple until something is added (a builder adds
    # with `_add`): most modules of a file are leaves, and most have no shared_with
    children: list[ModuleNode] | tuple[()]
    tensors: list[TensorNode] | tuple[()]
    shared_with: list[str] | tuple[()]  # other paths of the same object
    parameter_count: int  # unique parameter elements in this subtree (a tie counts once)
    tensor_elements: int  # the same for tensors of unknown kind (kind "tensor")
    _parent: weakref.ReferenceType | None  # see _weak_parent

    is_module = True

    def __repr__(self) -> str:
        kind = self.type_name or "module"
        return f"ModuleNode({self.path!r}, {kind}, {len(self.children)} children)"

    def __init__(
        self,
        path: str,
        name: str,
        type_name: str,
        extra_repr: str,
        access: str,
        parent: ModuleNode | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.type_name = type_name
        self.extra_repr = extra_repr
        self.access = access
        self.children = self.tensors = self.shared_with = ()
        self.parameter_count = 0
        self.tensor_elements = 0
        self._parent = None if parent is None else _ref(parent)

    def walk(self) -> Iterator[ModuleNode]:
        """This module and every module below it, in state_dict order (depth first, a
        module before its children). A loop over a stack, not generators nested as deep as
        the tree: every module passed through each enclosing generator (0.07 s of the
        100,000 steps a 50,000-tensor tree takes)."""
        pending = [self]
        while pending:
            module = pending.pop()
            yield module
            if module.children:
                pending.extend(reversed(module.children))

    def walk_tensors(self) -> Iterator[TensorNode]:
        for module in self.walk():
            yield from module.tensors

    @property
    def has_parameters(self) -> bool:
        return any(True for _ in self.walk_tensors())


def depth_first(root: ModuleNode) -> tuple[dict[str, ModuleNode], dict[str, TensorNode]]:
    """Every module and every tensor of a tree by path, in state_dict order (a module's
    tensors, then its children's), in one loop: no generator per module."""
    order: list[ModuleNode] = []
    visit = order.append
    pending = [root]
    pop, extend = pending.pop, pending.extend
    while pending:
        module = pop()
        visit(module)
        if module.children:
            extend(reversed(module.children))
    modules = {m.path: m for m in order}  # comprehensions: a third of the loop's time
    return modules, {t.path: t for m in order for t in m.tensors}


_ref = weakref.ref


def _add(module: ModuleNode, field: str, item: Any) -> None:
    """Add a child, tensor or path to a module's list, giving it a list of its own first."""
    items = getattr(module, field)
    if items:
        items.append(item)
    else:
        setattr(module, field, [item])


def _weak(node: ModuleNode | None) -> weakref.ReferenceType | None:
    return None if node is None else _ref(node)


def _weak_parent(attribute: str) -> property:
    """Links up the tree (a module's parent, a tensor's module) are weak references, so a
    tree is a plain hierarchy without reference cycles: it is freed the moment the window
    lets go of it, even when the garbage collector is frozen (ui/document.py) or off."""

    def get(node: Any) -> ModuleNode | None:
        ref = getattr(node, attribute)
        return None if ref is None else ref()

    def set_(node: Any, value: ModuleNode | None) -> None:
        setattr(node, attribute, _weak(value))

    return property(get, set_)


# the links up, read through their weak references (one helper for both classes)
ModuleNode.parent = _weak_parent("_parent")  # type: ignore[assignment]
TensorNode.module = _weak_parent("_module")  # type: ignore[assignment]

Node = ModuleNode | TensorNode


class ModuleTree:
    """The hierarchy of one source (a live module or a checkpoint), ties resolved."""

    def __init__(
        self,
        root: ModuleNode,
        tie_groups: list[TieGroup],
        *,
        source: str = "",
        reader: str = "",
        metadata: dict[str, Any] | None = None,
        module: Any = None,
        walked: tuple[dict[str, ModuleNode], dict[str, TensorNode]] | None = None,
        new_nodes: bool = False,
    ) -> None:
        """`walked`: `depth_first(root)`, when the builder has it already; `new_nodes`: the
        builder made every node just now (their counts are 0), rather than a tree built
        again over nodes already counted (whose kinds may have changed)."""
        self.root = root
        self.tie_groups = tie_groups
        self.source = source
        self.reader = reader
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.module = module  # the live nn.Module, or None for a checkpoint without code
        # the live model's tensors by identity and by path (passes.ParameterIndex), made
        # where the tree is opened (`passes.prepare`, in a worker: 30 ms for 10,000
        # modules) or by the first pass engine; None until then
        self.parameter_index: Any = None
        # a checkpoint's architecture as a model on the meta device (structure only: types,
        # buffers, calls), where one was built from its config (sources/hf_architecture.py)
        self.structure: Any = None
        self.default_input: InputSpec | InputBatch | None = None  # what a forward pass runs on
        self.default_loss: str | None = None  # a loss that fits the model ("model": its own)
        self.explanation = ""  # what an example teaches, shown beside it
        # a checkpoint's optimizer state matched to parameters: path -> state name -> handle
        # (e.g. "fc.weight" -> {"exp_avg": ..., "exp_avg_sq": ..., "step": ...}); see
        # sources/checkpoint.py for how it is matched
        self.optimizer_state: dict[str, dict[str, TensorHandle]] = {}
        self.run: Any = None  # the training run this tree is the union of (core/run.py)
        self.modules, self.tensors = walked or depth_first(root)
        for group in tie_groups:
            for path in group.paths:
                self.tensors[path].tie = group.id
        self._count_parameters(fresh=new_nodes)

    # -- lookup -----------------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        return self.module is not None

    def node(self, path: str) -> Node:
        """The tensor or module at `path` (a tensor wins if both exist)."""
        if path in self.tensors:
            return self.tensors[path]
        if path in self.modules:
            return self.modules[path]
        import difflib  # only to say what was meant: not imported to open a file

        close = difflib.get_close_matches(path, [*self.tensors, *self.modules], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownPathError(f"no module or tensor at path {path!r}{hint}")

    def node_or_none(self, path: str) -> Node | None:
        """The tensor or module at `path`, or None."""
        return self.tensors.get(path) or self.modules.get(path)

    @property
    def parameters(self) -> list[TensorNode]:
        return [t for t in self.tensors.values() if t.kind == "parameter"]

    @property
    def buffers(self) -> list[TensorNode]:
        return [t for t in self.tensors.values() if t.kind == "buffer"]

    @cached_property
    def has_unknown_kind(self) -> bool:
        """Whether some tensor's kind is unknown (one scan, then remembered: the window and
        its details ask on every tree they are shown)."""
        return any(t.kind == "tensor" for t in self.tensors.values())

    @property
    def unknown_kind(self) -> list[TensorNode]:
        """Tensors a checkpoint holds without saying whether they are parameters or buffers
        (kind "tensor"): counted apart from the parameters."""
        return [t for t in self.tensors.values() if t.kind == "tensor"]

    @property
    def total_tensor_elements(self) -> int:
        """Elements of the tensors of unknown kind, each tensor once."""
        return self.root.tensor_elements

    def tie_group(self, path: str) -> TieGroup | None:
        node = self.tensors.get(path)
        if node is None or node.tie is None:
            return None
        return self.tie_groups[node.tie]

    def tie_partners(self, path: str) -> list[str]:
        """The other paths that reach the same tensor as `path`."""
        group = self.tie_group(path)
        return [] if group is None else [p for p in group.paths if p != path]

    def first_tensor(self, module_path: str) -> TensorNode | None:
        """The first parameter (else buffer) at or below a module, in state_dict order."""
        module = self.modules[module_path]
        tensors = list(module.walk_tensors())
        for t in tensors:
            if t.kind == "parameter":
                return t
        return tensors[0] if tensors else None

    @property
    def total_parameters(self) -> int:
        """Parameter elements, each tensor once however many paths reach it."""
        return self.root.parameter_count

    def trained_parameters(self, paths: Iterable[str]) -> None:
        """Tensors of unknown kind that an optimizer holds state for are parameters (an
        optimizer steps only trainable ones): say so and count them again."""
        changed = False
        for path in paths:
            node = self.tensors.get(path)
            if node is not None and node.kind == "tensor":
                node.kind, node.requires_grad, changed = "parameter", True, True
        if changed:
            self._count_parameters()

    def _count_parameters(self, fresh: bool = False) -> None:
        """Every module's unique parameter elements (and those of tensors of unknown kind).
        `fresh`: the nodes were just made, every count 0."""
        kinds = {t.kind for t in self.tensors.values()}
        for kind, attribute in (("parameter", "parameter_count"), ("tensor", "tensor_elements")):
            if kind in kinds:
                self._count_kind(kind, attribute)
            elif not fresh:  # none of this kind (a live model; a file that does not say)
                for module in self.modules.values():
                    setattr(module, attribute, 0)

    def _count_kind(self, kind: str, attribute: str) -> None:
        """Every module's unique elements of tensors of `kind`, in one pass from the leaves
        up (a tie group counts once in each subtree it reaches; walking every subtree again
        was O(modules x depth): a second for 50,000 tensors). Only modules with a tie below
        them keep a set of its groups."""
        if not self.tie_groups:  # every tensor counts once: a plain sum from the leaves up
            count = attrgetter(attribute)
            for module in reversed(self.modules.values()):
                total = sum(map(count, module.children)) if module.children else 0
                for t in module.tensors:
                    if t.kind == kind:
                        total += math.prod(t.handle.shape)
                setattr(module, attribute, total)
            return
        group_numel: dict[int, int] = {}
        untied_below: dict[int, int] = {}  # id(module) -> its untied elements, if it has ties
        groups_below: dict[int, set[int]] = {}  # id(module) -> tie groups with such a tensor
        for module in reversed(self.modules.values()):  # children before their parent
            total = 0
            groups: set[int] | None = None
            for t in module.tensors:
                if t.kind != kind:
                    continue
                if t.tie is None:
                    total += math.prod(t.handle.shape)
                else:
                    if groups is None:
                        groups = set()
                    groups.add(t.tie)
                    group_numel[t.tie] = math.prod(t.handle.shape)
            for child in module.children:
                below = groups_below.pop(id(child), None)
                if below is None:
                    total += getattr(child, attribute)
                else:  # the child's set is no longer needed: it is taken, not copied
                    total += untied_below.pop(id(child))
                    if groups is None:
                        groups = below
                    else:
                        groups |= below
            if groups:
                untied_below[id(module)], groups_below[id(module)] = total, groups
                total += sum([group_numel[g] for g in groups])
            setattr(module, attribute, total)


# -- access expressions ---------------------------------------------------------------------


def _attribute(name: str) -> str:
    if name.isidentifier() and not keyword.iskeyword(name):
        return f".{name}"
    return f"[{name!r}]"


def access_step(parent: Any, name: str) -> str:
    """How Python reaches child `name` of `parent` (a live module, or None if unknown)."""
    if parent is None:  # checkpoint without code: ModuleList-like indices, attributes
        return f"[{name}]" if name.isdigit() else _attribute(name)
    nn = import_torch().nn

    if isinstance(parent, nn.Sequential):
        if name.isidentifier() and not keyword.iskeyword(name):
            return f".{name}"
        return f"[{list(parent._modules).index(name)}]"  # Sequential indexes by position
    if isinstance(parent, (nn.ModuleList, nn.ParameterList)) and name.isdigit():
        return f"[{name}]"
    if isinstance(parent, (nn.ModuleDict, nn.ParameterDict)):
        return f"[{name!r}]"
    if name.isidentifier() and not keyword.iskeyword(name):
        return f".{name}"
    return f".get_submodule({name!r})" if name in parent._modules else f".get_parameter({name!r})"


# -- building -------------------------------------------------------------------------------


@without_cycle_collector
def tree_from_module(module: Any, *, source: str = "", metadata: dict | None = None) -> ModuleTree:
    """Build the tree of a live `nn.Module`: state_dict keys in state_dict order, ties by
    Parameter identity, one node per path for a module placed at several paths."""
    module_nodes: dict[str, ModuleNode] = {}
    module_objects: dict[str, Any] = {}

    # depth first, in registration order, without a recursive closure (a closure that calls
    # itself is a reference cycle: it would keep the model alive once the collector is frozen)
    pending: list[tuple[Any, str, str, ModuleNode | None, str]] = [
        (module, "", "", None, ROOT_NAME)
    ]
    while pending:
        obj, path, name, parent, access = pending.pop()
        node = ModuleNode(
            path=path,
            name=name,
            type_name=type(obj).__name__,
            extra_repr=_safe_extra_repr(obj),
            access=access,
            parent=parent,
        )
        if parent is not None:
            _add(parent, "children", node)
        module_nodes[path] = node
        module_objects[path] = obj
        children = [
            (child, f"{path}.{child_name}" if path else child_name, child_name)
            for child_name, child in obj._modules.items()
            if child is not None
        ]
        for child, child_path, child_name in reversed(children):
            pending.append(
                (child, child_path, child_name, node, access + access_step(obj, child_name))
            )

    identity: dict[str, Hashable] = {}
    for key, value in module.state_dict(keep_vars=True).items():
        owner_path = _owner(key, module_nodes)
        owner = module_nodes[owner_path]
        name = key[len(owner_path) + 1 :] if owner_path else key
        nn = import_torch().nn

        is_param = isinstance(value, nn.Parameter)
        _add(
            owner,
            "tensors",
            TensorNode(
                path=key,
                name=name,
                kind="parameter" if is_param else "buffer",
                handle=TorchHandle(value, snapshot=True),
                requires_grad=bool(value.requires_grad),
                access=owner.access + access_step(module_objects[owner_path], name),
                module=owner,
            ),
        )
        identity[key] = id(value)

    for path, others in module_aliases({p: id(m) for p, m in module_objects.items()}).items():
        module_nodes[path].shared_with = others
    ordered = [t.path for t in module_nodes[""].walk_tensors()]
    groups = find_tie_groups(ordered, identity)
    return ModuleTree(
        module_nodes[""],
        groups,
        source=source,
        reader="module",
        metadata=metadata,
        module=module,
        new_nodes=True,
    )


@without_cycle_collector
def tree_from_entries(
    entries: Iterable[tuple[str, TensorHandle]],
    *,
    source: str = "",
    reader: str = "",
    metadata: dict | None = None,
    kinds: dict[str, str] | None = None,
    containers: Iterable[tuple[str, ...]] = (),
    natural_order: bool = False,
    progress: Callable[[float, str], None] | None = None,
    ties: bool = True,
    count: int | None = None,
) -> ModuleTree:
    """Build the tree of a checkpoint from its flat `key -> handle` entries, in file order
    (or, with `natural_order`, in the order of `order.in_display_order`: for a file that
    does not keep the model's order).

    Module nodes are made for every key prefix; ties come from the handles' storage keys
    (same storage, offset, shape and stride). `containers` are the key paths of state dicts
    nested in the file (`("state_dict",)` in a Lightning checkpoint): what lies in them is
    reached as `ckpt["state_dict"]["2.weight"]`, not as a module attribute. `ties=False`: the
    reader knows no two entries share storage (no storage keys are asked). `progress(fraction,
    text)` is told how far the tree is built, every PROGRESS_EVERY entries, as a fraction of
    their `count` (by default their len(), when they have one)."""
    total = count if count is not None else len(entries) if isinstance(entries, Sized) else 0
    nested: dict[str, tuple[int, tuple[str, ...]]] = {}
    for parts in containers:
        if parts:
            nested.setdefault(".".join(parts), (len(nested), parts))
    root_access = CHECKPOINT_NAME if nested else ROOT_NAME  # a file of several dicts
    root = ModuleNode(path="", name="", type_name="", extra_repr="", access=root_access)
    modules: dict[str, ModuleNode] = {"": root}
    identity: dict[str, Hashable] = {}

    # name -> (one string for every use of it, its kind unless the reader says, its access
    # step): names repeat (a million "weight"s are one string, looked up once)
    per_name: dict[str, tuple[str, str, str]] = {}

    def module_at(path: str) -> ModuleNode:
        """The module node at `path`, made with its missing ancestors (iteratively: a
        closure that calls itself would be a reference cycle)."""
        missing: list[tuple[str, str]] = []
        while path not in modules:
            above, _, name = path.rpartition(".")
            missing.append((path, name))
            path = above
        parent = modules[path]
        for module_path, name in reversed(missing):
            known = per_name.get(name)
            if known is None:
                known = per_name[name] = _about_name(name)
            name = known[0]
            access = _item_access(module_path, nested, tensor=False) if nested else ""
            node = ModuleNode(module_path, name, "", "", access or parent.access + known[2], parent)
            if parent.children:
                parent.children.append(node)
            else:  # the first: a list of its own (`_add`, inline)
                parent.children = [node]
            modules[module_path] = node
            parent = node
        return parent

    kinds = kinds or {}
    floating: dict[str, bool] = {}  # dtype -> whether a parameter of it takes gradients
    report = PROGRESS_EVERY if progress is not None else -1
    for done, (key, handle) in enumerate(entries):
        if done == report:
            progress(0.8 * done / total if total else 0.0, f"made {done:,} tensors of the tree")
            report += PROGRESS_EVERY
        owner_path, _, name = key.rpartition(".")
        owner = modules.get(owner_path)
        if owner is None:
            owner = module_at(owner_path)
        known = per_name.get(name)
        if known is None:
            known = per_name[name] = _about_name(name)
        name, kind, step = known
        if kinds:  # the reader knows parameters from buffers
            kind = kinds.get(key) or kind
        access = _item_access(key, nested, tensor=True) if nested else ""
        grad = False
        if kind == "parameter":
            dtype = handle.dtype
            grad = floating.get(dtype)
            if grad is None:
                grad = floating[dtype] = _is_floating(dtype)
        node = TensorNode(key, name, kind, handle, grad, access or owner.access + step, owner)
        if owner.tensors:
            owner.tensors.append(node)
        else:  # the first: a list of its own (`_add`, inline)
            owner.tensors = [node]
        if ties:  # only tensors that could share storage: a million keys of their own
            storage = handle.storage_key()  # each took a tuple to make and to free
            if storage is not None:
                identity[key] = storage

    if progress is not None and total >= PROGRESS_EVERY:
        progress(0.8, f"sorting and counting {total:,} tensors")
    if natural_order:
        sort_naturally(list(modules.values()))
    walked = depth_first(root)
    return ModuleTree(
        root,
        find_tie_groups(list(walked[1]), identity) if identity else [],
        source=source,
        reader=reader,
        metadata=metadata,
        walked=walked,
        new_nodes=True,
    )


PROGRESS_EVERY = 50_000  # entries between two reports while a tree is built
CHECKPOINT_NAME = "ckpt"  # the variable a loaded checkpoint file is held in


def _item_access(path: str, nested: dict[str, tuple[int, tuple[str, ...]]], tensor: bool) -> str:
    """`ckpt["state_dict"]["2.weight"]` for a tensor key inside a state dict nested in a
    checkpoint file (list positions as integers); the nested dict itself for a module path
    inside it (a flat state dict has no entry per module); '' outside every nested one.
    `nested` maps a nested dict's path to (its position, its key parts); when several hold
    the path, the first wins. The path's own prefixes are looked up rather than every nested
    dict tried: a file of thousands of nested state dicts would make that quadratic."""
    if not nested:
        return ""
    prefixes = [path[:i] for i, c in enumerate(path) if c == "."] + [path]
    found = [p for p in prefixes if p in nested]
    if not found:
        return ""
    prefix = min(found, key=lambda p: nested[p][0])
    steps = "".join(f"[{p}]" if p.isdigit() else f"[{p!r}]" for p in nested[prefix][1])
    rest = path[len(prefix) + 1 :]
    return CHECKPOINT_NAME + steps + (f"[{rest!r}]" if tensor and rest else "")


def _about_name(name: str) -> tuple[str, str, str]:
    """A name of a checkpoint's key: itself, its kind (a file does not say parameter or
    buffer: "tensor", but for the names of known buffers) and its access step."""
    return name, "buffer" if name in KNOWN_BUFFER_NAMES else "tensor", access_step(None, name)


def _is_floating(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat", "complex"))


def _owner(key: str, module_nodes: dict[str, ModuleNode]) -> str:
    """The deepest module path that `key` lies under."""
    prefix = key
    while True:
        prefix, dot, _ = prefix.rpartition(".")
        if prefix in module_nodes:
            return prefix
        if not dot:
            return ""


def _safe_extra_repr(module: Any) -> str:
    try:
        return str(module.extra_repr())
    except Exception as exc:  # a third-party extra_repr that raises must not stop the tree
        return f"<extra_repr raised {type(exc).__name__}>"

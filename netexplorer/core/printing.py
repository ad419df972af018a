"""What Python prints: the selection as the notebook shows it.

For a parameter of a live model, `net[2].bias` prints `Parameter containing:` and its
tensor, `net[2].bias.data` the tensor alone, then its type, `requires_grad` and `.grad`; for
a module, the module and its `state_dict()`; for a tensor of a checkpoint, the tensor as
`torch.load` would give it. Everything is PyTorch's own formatting (`repr`, which shortens
big tensors), laid out by IPython's pretty printer when IPython is installed (as the
notebook was) and by `pprint` otherwise. `net_text` is `print(net)`.

These read the live model: the window calls them in a worker that holds the engine's state
lock, so that no pass changes what they print."""

from __future__ import annotations

import pprint
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .tree import ModuleNode, ModuleTree, TensorNode

MAX_STATE_DICT_ENTRIES = 40  # of a module's state_dict printed in full; then "..."


@dataclass
class Printed:
    """The notebook cells of a selection: (expression, what it prints) pairs, and the
    printed values alone (for "Copy values")."""

    cells: list[tuple[str, str]]
    values: str

    def transcript(self) -> str:
        return "\n".join(f">>> {expr}\n{out}" for expr, out in self.cells)


def pretty(obj: Any) -> str:
    """`obj` as the notebook's output cell shows it."""
    try:
        from IPython.lib.pretty import pretty as ipython_pretty
    except ImportError:  # without IPython, the standard library's layout
        return pprint.pformat(obj, width=79, sort_dicts=False)
    return ipython_pretty(obj, max_width=79)


def live_object(module: Any, path: str) -> Any:
    """The module, parameter or buffer at a state_dict-style path of a live model, found
    the way attribute access finds it (TorchScript modules too)."""
    obj = module
    if not path:
        return obj
    for name in path.split("."):
        for table in ("_modules", "_parameters", "_buffers"):
            found = getattr(obj, table, {}).get(name)
            if found is not None:
                obj = found
                break
        else:
            obj = getattr(obj, name)
    return obj


def print_selection(tree: ModuleTree, path: str) -> Printed:
    """The cells the notebook would show for the module or tensor at `path`."""
    node = tree.node(path)
    if tree.module is not None:
        obj = live_object(tree.module, path)
        if isinstance(node, TensorNode):
            return _live_tensor(node.access, obj)
        return _live_module(node.access, obj)
    if isinstance(node, TensorNode):
        if _absent(node):  # a training run's checkpoint without this key: say so
            text = f"# {node.handle.reason}"
            return Printed([(node.access, text)], text)
        tensor = stored_tensor(node)
        text = pretty(tensor)
        return Printed([(node.access, text), (f"{node.access}.dtype", pretty(tensor.dtype))], text)
    return _stored_module(tree, node)


def _live_tensor(access: str, obj: Any) -> Printed:
    cells = [(access, pretty(obj))]
    import torch

    data = obj.data if isinstance(obj, torch.Tensor) else obj
    cells.append((f"{access}.data", pretty(data)))
    cells.append(
        (f"type({access}), {access}.requires_grad", pretty((type(obj), obj.requires_grad)))
    )
    if isinstance(obj, torch.nn.Parameter) or obj.requires_grad:
        cells.append((f"{access}.grad", pretty(obj.grad)))
    return Printed(cells, pretty(data))


def _live_module(access: str, module: Any) -> Printed:
    state = module.state_dict()
    shown: Any = state
    if len(state) > MAX_STATE_DICT_ENTRIES:
        shown = OrderedDict(list(state.items())[:MAX_STATE_DICT_ENTRIES])
    text = pretty(shown)
    if shown is not state:
        text += f"\n# ... {len(state) - MAX_STATE_DICT_ENTRIES} more entries"
    return Printed([(access, repr(module)), (f"{access}.state_dict()", text)], text)


def _stored_module(tree: ModuleTree, node: ModuleNode) -> Printed:
    """A checkpoint has no module: its tensors under this path, as a state dict."""
    prefix = f"{node.path}." if node.path else ""
    tensors = [t for t in tree.tensors.values() if t.path.startswith(prefix) and not _absent(t)]
    state = OrderedDict(
        (t.path[len(prefix) :], stored_tensor(t)) for t in tensors[:MAX_STATE_DICT_ENTRIES]
    )
    text = pretty(state)
    if len(tensors) > MAX_STATE_DICT_ENTRIES:
        text += f"\n# ... {len(tensors) - MAX_STATE_DICT_ENTRIES} more entries"
    label = f"the tensors under {node.path!r}" if node.path else "every tensor of the file"
    return Printed([(f"# {label}, as a state dict", text)], text)


def _absent(node: TensorNode) -> bool:
    """A key of a training run that the checkpoint shown lacks (core/run.py AbsentHandle)."""
    return not node.handle.has_values and bool(getattr(node.handle, "reason", ""))


def stored_tensor(node: TensorNode) -> Any:
    """A checkpoint tensor as torch gives it back: its values in its own dtype (bfloat16
    and float8 are read as float32 and converted back; they round-trip exactly)."""
    import torch

    if not node.handle.has_values:
        return torch.empty(node.shape, dtype=_torch_dtype(node.dtype), device="meta")
    values = torch.from_numpy(node.handle.array().copy())
    dtype = _torch_dtype(node.dtype)
    return values.to(dtype) if dtype is not None and values.dtype != dtype else values


def _torch_dtype(name: str) -> Any:
    import torch

    found = getattr(torch, name, None)
    return found if isinstance(found, torch.dtype) else None


def net_text(tree: ModuleTree) -> str:
    """`print(net)` of a live model; for a checkpoint without code, its summary (what the
    file holds, in the same nesting)."""
    if tree.module is not None:
        return repr(tree.module)
    from .describe import summary_text

    return summary_text(tree)

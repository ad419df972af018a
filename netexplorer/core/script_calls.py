"""The module calls of a TorchScript model, read from its compiled graphs.

Hooks do not reach compiled code, so the calls of a scripted or traced model cannot be
watched while it runs. Its graphs say them instead: every `prim::CallMethod` on a submodule
(reached through `prim::GetAttr` from `self`) is a call of that submodule, in the order the
graph lists them, and the SSA values between them are the data flow. `ScriptCalls` holds the
result in the form the graph builder reads from a recorded pass (calls, which calls contain
others, where each call's inputs and outputs came from), so the Graph tab and the JSON show
a TorchScript model's calls like any other's. A call inside a loop is listed once (the graph
is read, not run); output shapes are not known without running it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .calls import ModuleCall

MODEL_INPUT = -1  # the same codes as graph.py's recorder: output of call i 2i, its input 2i+1


def _output_of(i: int) -> int:
    return 2 * i


def _input_of(i: int) -> int:
    return 2 * i + 1


@dataclass
class ScriptCalls:
    """What graph.py's `_flow_graph` reads from a recorder, read from compiled graphs."""

    calls: list[ModuleCall] = field(default_factory=list)
    containers: set[int] = field(default_factory=set)
    entered: dict[int, frozenset[int]] = field(default_factory=dict)
    returned: dict[int, frozenset[int]] = field(default_factory=dict)
    read: dict[int, set[int]] = field(default_factory=dict)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)

    def output_shapes(self, index: int) -> list[tuple[int, ...]]:
        return []  # the graph is read, not run


def script_calls(module: Any) -> ScriptCalls:
    """The calls of the scripted or traced `module` (its forward and what it calls)."""
    found = ScriptCalls(input_shapes=input_shapes(module))
    per_site: dict[str, int] = {}

    def call(sub: Any, site: str, parent: int | None, depth: int, inputs: list[frozenset]) -> list:
        index = len(found.calls)
        record = ModuleCall(
            index=index,
            site=site,
            call=per_site.get(site, 0),
            type_name=str(getattr(sub, "original_name", type(sub).__name__)),
            parent=parent,
            depth=depth,
            finished=True,
        )
        per_site[site] = record.call + 1
        found.calls.append(record)
        if parent is not None:
            found.containers.add(parent)
        found.entered[index] = frozenset().union(*inputs) if inputs else frozenset()
        mine = frozenset((_input_of(index),))
        graph = _forward_graph(sub)
        outputs: list[frozenset] = []
        if graph is not None:
            values: dict[Any, frozenset] = {}
            graph_inputs = list(graph.inputs())
            for value in graph_inputs[1:]:  # the first is self
                values[_key(value)] = mine
            modules: dict[Any, tuple[Any, str]] = {_key(graph_inputs[0]): (sub, site)}
            _walk(graph.nodes(), values, modules, index, depth, found, call)
            outputs = [values.get(_key(v), frozenset()) for v in graph.outputs()]
        returned = frozenset().union(*outputs) if outputs else frozenset()
        found.returned[index] = returned
        return [frozenset((_output_of(index),))]

    call(module, "", None, 0, [frozenset((MODEL_INPUT,))])
    return found


def _walk(nodes, values, modules, index, depth, found, call) -> None:
    for node in nodes:
        kind = node.kind()
        inputs = list(node.inputs())
        outputs = list(node.outputs())
        if kind == "prim::GetAttr" and _key(inputs[0]) in modules:
            owner, owner_site = modules[_key(inputs[0])]
            name = node.s("name")
            child = getattr(owner, name, None)
            if isinstance(child, _script_module_type()):
                site = f"{owner_site}.{name}" if owner_site else name
                modules[_key(outputs[0])] = (child, site)
                continue
        if kind == "prim::CallMethod" and inputs and _key(inputs[0]) in modules:
            sub, site = modules[_key(inputs[0])]
            argument_origins = [values.get(_key(v), frozenset()) for v in inputs[1:]]
            if node.s("name") == "forward" and site != found.calls[index].site:
                result = call(sub, site, index, depth + 1, argument_origins)
                for value in outputs:
                    values[_key(value)] = result[0]
                continue
        came_from = frozenset().union(*(values.get(_key(v), frozenset()) for v in inputs))
        if came_from:
            found.read.setdefault(index, set()).update(came_from)
            for value in outputs:
                values[_key(value)] = came_from
        for block in node.blocks():  # if / loop bodies: their calls, listed once
            _walk(block.nodes(), values, modules, index, depth, found, call)


def _script_module_type() -> type:
    import torch

    return torch.jit.ScriptModule


def _key(value: Any) -> Any:
    return value.unique()


def _forward_graph(module: Any) -> Any:
    try:
        return module.graph
    except (AttributeError, RuntimeError):
        return None


def input_shapes(module: Any) -> list[tuple[int, ...]]:
    """The shapes the traced example input had, where the archive recorded them."""
    import torch

    graph = _forward_graph(module)
    shapes: list[tuple[int, ...]] = []
    if graph is None:
        return shapes
    for value in list(graph.inputs())[1:]:
        t = value.type()
        if isinstance(t, torch._C.TensorType):
            sizes = t.sizes()
            if sizes is not None:
                shapes.append(tuple(int(s) for s in sizes))
    return shapes

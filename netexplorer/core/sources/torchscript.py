"""TorchScript archives (`torch.jit.save`): a live module, so forward and backward passes work.

PyTorch's security policy treats TorchScript like executable code: loading an archive runs
code stored in it (its `__setstate__` methods), with access to every operator, file I/O
included. So an archive opens only with `options.trust`; without it the reader refuses before
`torch.jit.load` is called. Recognising an archive reads only its zip directory.
"""

from __future__ import annotations

import keyword
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import SourceError, UntrustedPickleError
from ..text import first_line
from ..torch_import import import_torch
from ..tree import ModuleNode, ModuleTree, tree_from_module
from .base import OpenOptions
from .files import check_file, sniff
from .torch_file import untrusted_message


class TorchScriptReader:
    name = "torchscript"
    title = "TorchScript archives"
    file_patterns = ("*.pt", "*.pth", "*.ptl", "*.zip")

    def can_read(self, spec: str) -> bool:
        return sniff(spec) == "torchscript"

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        check_file(spec)
        if not options.trust:
            raise UntrustedPickleError(
                untrusted_message(spec, "is a TorchScript archive (compiled code)"),
                compiled_code=True,
            )
        options.report(0.0, f"loading TorchScript {spec}")
        torch = import_torch()

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its deprecation notice is not the user's concern
                # the shapes a traced archive's example input had come back on its graph
                module = torch.jit.load(spec, map_location="cpu", _restore_shapes=True)
        except Exception as exc:
            detail = first_line(exc)
            raise SourceError(
                f"cannot open {spec}: not a readable TorchScript archive ({detail}); it may be "
                "damaged: save it again"
            ) from None
        original = getattr(module, "original_name", type(module).__name__)
        metadata = {"format": "TorchScript", "original_name": original}
        tree = tree_from_module(module, source=spec, metadata=metadata)
        # a scripted module's parameters are plain tensors, not nn.Parameter objects: ask it
        parameters = {name for name, _ in module.named_parameters()}
        for path, node in tree.tensors.items():
            group = tree.tie_group(path)
            if path in parameters or (group and parameters.intersection(group.paths)):
                node.kind = "parameter"
        # scripted modules are all RecursiveScriptModule: show the class they were made from
        for path, sub in _walk_modules(module, ""):
            node = tree.modules[path]
            node.type_name = str(getattr(sub, "original_name", node.type_name))
            if node.extra_repr.startswith("original_name="):
                node.extra_repr = ""
        from .torchscript_inputs import script_input, traced_input  # torch is loaded now

        script_access(tree.root)
        # built again so parameter counts see the corrected kinds
        refined = ModuleTree(
            tree.root,
            tree.tie_groups,
            source=spec,
            reader=self.name,
            metadata=metadata,
            module=module,
        )
        refined.default_input = script_input(module)
        if refined.default_input is not None:
            refined.metadata["input_from"] = (
                "the traced example input" if traced_input(module) else "the first layer"
            )
        return refined


def script_access(root: ModuleNode) -> None:
    """Access expressions that evaluate on the loaded archive: a ScriptModule has neither
    indexing nor get_submodule, so `net.layer1[0]` is `getattr(net.layer1, '0')`."""
    pending = [root]
    while pending:
        module = pending.pop()
        for t in module.tensors:
            t.access = _attribute_of(module.access, t.name)
        for child in module.children:
            child.access = _attribute_of(module.access, child.name)
            pending.append(child)


def _attribute_of(owner: str, name: str) -> str:
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{owner}.{name}"
    return f"getattr({owner}, {name!r})"


def _walk_modules(module: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, module) for every module path, as tree_from_module visits them (scripted
    modules have no get_submodule)."""
    yield path, module
    for name, child in module._modules.items():
        if child is not None:
            yield from _walk_modules(child, f"{path}.{name}" if path else name)

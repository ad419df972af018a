"""Which tensor objects a live model has, and at which paths: made once per engine and
shared by everything that runs the model (the engine, its call recorder, failure diagnosis).

A tied tensor is one object at several paths: it is listed once in `parameters` and filed
under its first path (`name`), the name its per-use contributions are kept under."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownPathError


class ParameterIndex:
    """The parameters, buffers and modules of `module`, by identity and by path."""

    def __init__(self, module: Any) -> None:
        self.parameters: list[Any] = []  # each tensor once, in state_dict order
        self.paths: dict[int, list[str]] = {}  # id(parameter) -> its paths
        for path, p in module.named_parameters(remove_duplicate=False):
            if id(p) not in self.paths:
                self.paths[id(p)] = []
                self.parameters.append(p)
            self.paths[id(p)].append(path)
        self.name: dict[int, str] = {i: paths[0] for i, paths in self.paths.items()}
        self.by_path: dict[str, Any] = {
            path: p for p in self.parameters for path in self.paths[id(p)]
        }
        self.buffers: dict[str, Any] = dict(module.named_buffers(remove_duplicate=False))
        self.module_paths: dict[int, list[str]] = {}  # id(module) -> its paths, tree order
        for path, m in module.named_modules(remove_duplicate=False):
            self.module_paths.setdefault(id(m), []).append(path)

    def tensor(self, path: str) -> Any:
        """The parameter or buffer at `path`; UnknownPathError if there is none."""
        found = self.by_path.get(path)
        if found is None:
            found = self.buffers.get(path)
        if found is None:
            raise UnknownPathError(f"no parameter or buffer at path {path!r}")
        return found

    def check_paths(self, paths: set[str] | frozenset[str]) -> None:
        unknown = sorted(p for p in paths if p not in self.by_path and p not in self.buffers)
        if unknown:
            raise UnknownPathError(f"no parameter or buffer at path {unknown[0]!r} to watch")

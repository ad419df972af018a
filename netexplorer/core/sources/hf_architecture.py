"""The architecture of a Hugging Face checkpoint, from its config.json: the model class it
names, built by transformers on the meta device (no memory, no values), gives the real module
types and order, parameters told from buffers, and the ties that safetensors had to drop
(it stores a tensor once: GPT-2's `lm_head.weight` is `transformer.wte.weight`), restored and
marked `tie_from="config"`. Values still come lazily from the files: each tensor of the model
takes the handle of the file key that the library's own key conversions map to it (renamed
legacy keys such as ViT's `attention.attention.query` included).

The tree from the headers comes first (no torch, no transformers); this refines it when it
is ready (the window builds it in a worker). Without transformers the header tree stays, with
a one-line note on what installing it adds.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import NetExplorerError, SourceError
from ..handles import TensorHandle
from ..hf_library import (
    WHAT_IT_ADDS,
    architecture_name,
    hf_config,
    model_class,
    quiet_transformers,
    read_config,
    transformers_installed,
)
from ..sharing import TieGroup
from ..text import first_line
from ..tree import ModuleTree, tree_from_module

# readers whose trees are checkpoints a config.json can explain
_CHECKPOINT_READERS = ("huggingface", "safetensors", "torch")


def config_folder(tree: ModuleTree) -> str | None:
    """The folder whose config.json describes this checkpoint (a Hugging Face folder, or the
    folder of a weights file), or None."""
    if tree.is_live or tree.reader not in _CHECKPOINT_READERS or not tree.source:
        return None
    folder = tree.source if os.path.isdir(tree.source) else os.path.dirname(tree.source)
    folder = folder or "."
    return folder if os.path.isfile(os.path.join(folder, "config.json")) else None


def architecture_applies(tree: ModuleTree) -> bool:
    """Whether the tree is a checkpoint whose config.json names an architecture."""
    folder = config_folder(tree)
    if folder is None or tree.structure is not None:
        return False
    config = read_config(folder)
    return config is not None and architecture_name(config) is not None


def refine_with_architecture(tree: ModuleTree) -> ModuleTree:
    """The tree of the architecture config.json names, with the checkpoint's values; the
    header tree with `metadata["architecture"]` saying why when it cannot be built."""
    folder = config_folder(tree)
    if folder is None:
        return tree
    if not transformers_installed():
        tree.metadata["architecture"] = {"note": f"from the file's headers only: {WHAT_IT_ADDS}"}
        return tree
    try:
        model = build_meta_model(folder)
        return architecture_tree(tree, model)
    except NetExplorerError as exc:
        tree.metadata["architecture"] = {"note": f"from the file's headers only: {exc}"}
        return tree


def note_unbuilt_architecture(tree: ModuleTree) -> None:
    """For a tree shown from its headers alone (--summary): a one-line note naming the
    architecture config.json holds and what building it adds."""
    if not architecture_applies(tree):
        return
    folder = config_folder(tree)
    name = architecture_name(read_config(folder or "") or {}) or "a model"
    if transformers_installed():
        note = (
            f"config.json names {name}; --json, --live or the window build it (real module "
            "types, parameters and buffers, the ties the file dropped)"
        )
    else:
        note = f"config.json names {name}; {WHAT_IT_ADDS}"
    tree.metadata["architecture"] = {"note": f"from the file's headers only: {note}"}


def build_meta_model(folder: str) -> Any:
    """The model class config.json names, built on the meta device."""
    import torch

    with quiet_transformers() as transformers:
        config = hf_config(transformers, folder)
        cls = model_class(transformers, folder, read_config(folder) or {})
        try:
            with torch.device("meta"):
                return cls._from_config(config)
        except Exception as exc:
            raise SourceError(
                f"cannot build {cls.__name__} from {folder}/config.json: "
                f"{first_line(exc, with_type=True)}"
            ) from None


def file_keys_by_model_key(model: Any, file_keys: list[str]) -> tuple[dict, dict, list]:
    """How the library's loader maps the file's keys onto the model's: (model key -> file
    key for renamed or unchanged keys, model key -> file keys for tensors it converts from
    several, file keys the model has no place for)."""
    state = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "") or ""
    rename: Any = None  # every key is the model's own: no conversion rules to build (0.3 s)
    renamings: list[Any] = []
    converters: list[Any] = []
    if not all(_plain_target(key, state, prefix) for key in file_keys):
        rename, renamings, converters = _conversion_rules(model)
    direct: dict[str, str] = {}
    converted: dict[str, list[str]] = {}
    unused: list[str] = []
    for key in file_keys:
        target, pattern = key, None
        if rename is not None:
            try:
                target, pattern = rename(key, renamings, converters, prefix, state)
            except Exception:
                target, pattern = key, None
        if target not in state and key in state:
            target, pattern = key, None
        if target not in state and prefix:  # a base model's keys in a head model, or back
            if f"{prefix}.{key}" in state:
                target = f"{prefix}.{key}"
            elif key.startswith(prefix + ".") and key[len(prefix) + 1 :] in state:
                target = key[len(prefix) + 1 :]
        if target not in state:
            unused.append(key)
        elif pattern is not None:
            converted.setdefault(target, []).append(key)
        else:
            direct.setdefault(target, key)
    return direct, converted, unused


def _plain_target(key: str, state: dict, prefix: str) -> bool:
    """Whether a file key is a model key as it is (or with the base model's prefix)."""
    if key in state:
        return True
    return bool(prefix) and (
        f"{prefix}.{key}" in state
        or (key.startswith(prefix + ".") and key[len(prefix) + 1 :] in state)
    )


def _conversion_rules(model: Any) -> tuple[Any, list[Any], list[Any]]:
    """The library's own key conversions (renamed legacy keys, tensors merged from several),
    as its loader applies them; without them (a private API that moved), keys as they are."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            rename_source_key,
        )

        mapping = get_model_conversion_mapping(model)
    except Exception:
        return None, [], []
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    return rename_source_key, renamings, converters


class ConvertedHandle(TensorHandle):
    """A tensor the library's loader makes from several of the file's tensors (Mixtral's
    experts stacked into one): shape and dtype from the model, no values until it is live."""

    def __init__(self, shape: tuple[int, ...], dtype: str, sources: list[str]) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.sources = list(sources)

    @property
    def has_values(self) -> bool:
        return False

    @property
    def no_values_reason(self) -> str:
        return (
            f"transformers makes it from {len(self.sources)} tensors of the file "
            f"({self.sources[0]}, ...) when it loads the model: Make live to see its values"
        )

    def array(self) -> Any:
        raise ValueError(self.no_values_reason)


def architecture_tree(headers: ModuleTree, model: Any) -> ModuleTree:
    """The tree of `model` (on meta) whose tensors read their values from the checkpoint of
    `headers`; ties the file does not hold marked as restored from the config."""
    from ..hf_inputs import model_inputs

    tree = tree_from_module(model, source=headers.source)
    direct, converted, unused = file_keys_by_model_key(model, list(headers.tensors))
    handles: dict[str, TensorHandle] = {}
    for target, key in direct.items():
        handles[target] = headers.tensors[key].handle
    restored: list[dict[str, str]] = []
    groups: list[TieGroup] = []
    for group in tree.tie_groups:
        loaded = [p for p in group.paths if p in handles]
        dropped = [p for p in group.paths if p not in handles]
        if loaded and dropped:
            for path in dropped:
                handles[path] = handles[loaded[0]]
                restored.append({"key": path, "to": loaded[0]})
        from_file = loaded and len({id(handles[p]) for p in loaded}) == 1 and not dropped
        groups.append(TieGroup(group.id, group.paths, "" if from_file else "config"))
    missing = []
    for path, node in tree.tensors.items():
        handle = handles.get(path)
        if handle is not None and tuple(handle.shape) == tuple(node.shape):
            node.handle = handle
        elif path in converted:
            node.handle = ConvertedHandle(node.shape, node.dtype, converted[path])
        else:
            missing.append(path)
    architecture: dict[str, Any] = {
        "class": type(model).__name__,
        "from": "config.json",
        "restored_ties": restored,
    }
    try:
        import transformers

        architecture["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - it built the model
        pass
    if converted:
        architecture["converted"] = converted  # values shown once the model is made live
    if missing:
        architecture["not_in_file"] = missing
    if unused:
        architecture["unused_in_file"] = unused
    metadata = {**headers.metadata, "architecture": architecture}
    refined = ModuleTree(
        tree.root,
        groups,
        source=headers.source,
        reader=headers.reader,
        metadata=metadata,
    )
    refined.structure = model
    refined.optimizer_state = headers.optimizer_state
    try:
        refined.default_input, refined.default_loss = model_inputs(model)
    except Exception:  # inputs are a help for the graph, not a condition of the tree
        refined.default_input = None
    return refined

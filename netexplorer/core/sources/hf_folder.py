"""A Hugging Face model folder: `model.safetensors`, sharded `model.safetensors.index.json`,
`pytorch_model.bin` and its `.index.json`, with `config.json` shown as metadata.

Safetensors shards are read from their headers only (no torch); `.bin` shards go through the
PyTorch reader (without torch too when they hold only tensors), with its refusal of pickles
that would run code.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import SourceError
from ..handles import TensorHandle
from ..text import first_line
from ..tree import ModuleTree, tree_from_entries
from .base import OpenOptions
from .checkpoint import read_checkpoint
from .metadata import json_safe
from .safetensors import handles_of, in_display_order, read_header
from .torch_file import load_checkpoint_object

# In the order transformers prefers them
STANDARD_WEIGHTS = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
_WEIGHT_SUFFIXES = (".safetensors.index.json", ".bin.index.json", ".safetensors", ".bin")


def weight_files(folder: str) -> list[str]:
    """Names of the files in `folder` that look like weights (any recognised suffix)."""
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(_WEIGHT_SUFFIXES))
    except OSError:
        return []


def find_weights(folder: str) -> str | None:
    """The weights file of a model folder: a standard name, else the only weights file of a
    recognisable kind (`diffusion_pytorch_model.safetensors`, ...); None if there is none or
    the choice is ambiguous."""
    for name in STANDARD_WEIGHTS:
        if os.path.isfile(os.path.join(folder, name)):
            return name
    names = weight_files(folder)
    for suffix in _WEIGHT_SUFFIXES:
        found = [n for n in names if n.endswith(suffix)]
        if suffix in (".safetensors", ".bin"):  # shards of an index already seen are not it
            found = [n for n in found if "-of-" not in n]
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


class HuggingFaceFolderReader:
    name = "huggingface"
    title = "Hugging Face model folders"
    file_patterns: tuple[str, ...] = ()  # a folder: opened with File ▸ Open folder

    def can_read(self, spec: str) -> bool:
        return os.path.isdir(spec) and find_weights(spec) is not None

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        weights = find_weights(spec)
        if weights is None:
            raise SourceError(f"cannot open {spec}: the folder holds no weights file")
        metadata: dict[str, Any] = {"format": "Hugging Face folder", "weights": weights}
        options.report(0.0, f"reading {weights}")
        path = os.path.join(spec, weights)
        if weights.endswith(".index.json"):
            handles, shards, index_meta = _sharded(spec, path, options)
            metadata["shards"] = shards
            if index_meta:
                metadata["index"] = index_meta
        else:
            handles, file_meta = _single(path, options)
            metadata.update(file_meta)
        metadata.update(_config(spec))
        return tree_from_entries(handles.items(), source=spec, reader=self.name, metadata=metadata)


def _single(path: str, options: OpenOptions) -> tuple[dict[str, TensorHandle], dict[str, Any]]:
    if path.endswith(".safetensors"):
        header = read_header(path)
        meta = {"safetensors": header.metadata} if header.metadata else {}
        return dict(handles_of(header)), meta
    obj, _ = load_checkpoint_object(path, options.trust)
    contents = read_checkpoint(obj, path)
    if not contents.entries:
        raise SourceError(f"cannot open {path}: it holds no tensors; there is nothing to show")
    return dict(contents.entries), {}


def _sharded(
    folder: str, index_path: str, options: OpenOptions
) -> tuple[dict[str, TensorHandle], list[str], dict[str, Any]]:
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(
            f"cannot open {index_path}: not a valid index ({first_line(exc)}); download it again"
        ) from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise SourceError(
            f"cannot open {index_path}: it has no weight_map of tensor names to shard files; "
            "download it again"
        )
    shards = list(dict.fromkeys(weight_map.values()))
    by_shard: dict[str, dict[str, TensorHandle]] = {}
    for i, shard in enumerate(shards):
        if os.path.isabs(shard) or os.path.normpath(shard).startswith(".."):
            raise SourceError(
                f"cannot open {index_path}: shard {shard!r} lies outside the folder; "
                "the index is damaged or malicious"
            )
        options.report(i / max(1, len(shards)), f"reading shard {shard}")
        shard_path = os.path.join(folder, shard)
        if not os.path.exists(shard_path):
            raise SourceError(
                f"cannot open {folder}: shard {shard} listed in {os.path.basename(index_path)} "
                "is missing; download it"
            )
        by_shard[shard] = _single(shard_path, options)[0]
    handles: dict[str, TensorHandle] = {}
    for name in in_display_order(list(weight_map)):
        shard = weight_map[name]
        handle = by_shard[shard].get(name)
        if handle is None:
            raise SourceError(
                f"cannot open {folder}: tensor {name!r} is listed in "
                f"{os.path.basename(index_path)} but missing from {shard}; download it again"
            )
        handles[name] = handle
    index_meta = json_safe(index.get("metadata") or {})
    return handles, shards, index_meta


def _config(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return {"config": json_safe(json.load(f))}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return {"config": f"unreadable config.json: {first_line(exc)}"}

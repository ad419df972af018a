"""A Hugging Face model folder: `model.safetensors`, sharded `model.safetensors.index.json`,
`pytorch_model.bin` and its `.index.json`, with `config.json` shown as metadata.

Safetensors shards are read from their headers only (no torch); `.bin` shards go through the
PyTorch reader (without torch too when they hold only tensors), with its refusal of pickles
that would run code.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import SourceError
from ..handles import TensorHandle
from ..limits import MAX_CONFIG_BYTES, MAX_INDEX_BYTES, MAX_SHARDS, MAX_TENSORS
from ..tree import ModuleTree, tree_from_entries
from .base import OpenOptions
from .checkpoint import read_checkpoint
from .files import list_folder, sniff
from .json_file import UnreadableJson, read_json
from .metadata import json_safe
from .safetensors import handles_of, in_display_order, natural_key, read_header
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
    """Names of the files in `folder` that look like weights (any recognised suffix). Raises
    SourceError if the folder cannot be listed."""
    return [n for n in list_folder(folder) if n.endswith(_WEIGHT_SUFFIXES)]


def find_weights(folder: str) -> str | None:
    """The weights file of a model folder: a standard name, else the only weights file of a
    recognisable kind (`diffusion_pytorch_model.safetensors`, ...); None if there is none or
    the choice is ambiguous. Raises SourceError if the folder cannot be listed."""
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
        if not os.path.isdir(spec):
            return False
        try:
            return find_weights(spec) is not None
        except SourceError:
            return False  # the last reader says why the folder cannot be listed

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
    """The tensors of one weights file, by its content (a `pytorch_model.bin` that is really
    safetensors is read as safetensors), in the file's order where it keeps one."""
    kind = sniff(path)
    if kind == "safetensors" or (kind is None and path.endswith(".safetensors")):
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
    index = read_json(index_path, MAX_INDEX_BYTES, "the index", "download it again")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise SourceError(
            f"cannot open {index_path}: it has no weight_map of tensor names to shard files; "
            "download it again"
        )
    if len(weight_map) > MAX_TENSORS:
        raise SourceError(
            f"cannot open {folder}: its index lists {len(weight_map):,} tensors, more than the "
            f"{MAX_TENSORS:,} netexplorer opens (each is a tree node, a line and statistics); "
            "open one of its shards"
        )
    shard_of = {name: _shard_name(index_path, shard) for name, shard in weight_map.items()}
    shards = sorted(set(shard_of.values()), key=natural_key)  # numbered in save order
    if len(shards) > MAX_SHARDS:
        raise SourceError(
            f"cannot open {folder}: its index names {len(shards):,} shard files, more than the "
            f"{MAX_SHARDS:,} netexplorer reads; open one of its shards"
        )
    by_shard: dict[str, dict[str, TensorHandle]] = {}
    for i, shard in enumerate(shards):
        options.report(i / max(1, len(shards)), f"reading shard {shard}")
        shard_path = os.path.join(folder, shard)
        if not os.path.lexists(shard_path):
            raise SourceError(
                f"cannot open {folder}: shard {shard} listed in {os.path.basename(index_path)} "
                "is missing; download it"
            )
        by_shard[shard] = _single(shard_path, options)[0]
    for name, shard in shard_of.items():
        if name not in by_shard[shard]:
            raise SourceError(
                f"cannot open {folder}: tensor {name!r} is listed in "
                f"{os.path.basename(index_path)} but missing from {shard}; download it again"
            )
    if index_path.endswith(".safetensors.index.json"):
        # safetensors files keep no order of their own (the library sorts by dtype and name)
        order = in_display_order(list(weight_map))
    else:
        # a torch shard keeps its state dict's order: shard by shard, in each shard's order
        order = [n for s in shards for n in by_shard[s] if shard_of.get(n) == s]
    handles = {name: by_shard[shard_of[name]][name] for name in order}
    index_meta = json_safe(index.get("metadata") or {})
    return handles, shards, index_meta


def _shard_name(index_path: str, shard: str) -> str:
    """The shard file an index names, normalised (`./s.bin` and `s.bin` are one file, read
    once); refused if it lies outside the folder."""
    normal = os.path.normpath(shard)
    if os.path.isabs(shard) or normal == ".." or normal.startswith(".." + os.sep) or not shard:
        raise SourceError(
            f"cannot open {index_path}: shard {shard!r} lies outside the folder; "
            "the index is damaged or malicious"
        )
    return normal


def _config(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "config.json")
    if not os.path.lexists(path):
        return {}
    try:
        return {"config": json_safe(read_json(path, MAX_CONFIG_BYTES, "config.json", ""))}
    except UnreadableJson as error:  # the weights still open: the config is only shown
        return {"config": f"unreadable config.json: {error.reason}"}

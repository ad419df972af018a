"""A Hugging Face folder made live: loaded by transformers' own `from_pretrained` (on the CPU,
with the library's key conversions, so renamed legacy keys load as the library loads them),
with inputs and a loss taken from the model (hf_inputs.py). `--live` and the app's Make live
come here, and so does `--model F --weights W` when F builds a transformers model.

A folder's own code (`auto_map`, trust_remote_code) is never run."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from .errors import SourceError
from .hf_library import (
    INSTALL_HINT,
    hf_config,
    model_class,
    quiet_transformers,
    read_config,
    transformers_installed,
)
from .text import first_line
from .tree import ModuleTree, tree_from_module

_WEIGHT_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")  # fmt: skip


def live_folder(spec: str) -> str:
    """The model folder `spec` names (a folder, or the standard weights file in one);
    SourceError saying what to open instead."""
    folder = spec if os.path.isdir(spec) else os.path.dirname(os.path.abspath(spec))
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise SourceError(
            f"cannot make {spec} live: there is no config.json beside it to build the model "
            "from; use --model pkg.module:factory --weights FILE"
        )
    if not os.path.isdir(spec) and os.path.basename(spec) not in _WEIGHT_NAMES:
        raise SourceError(
            f"cannot make {spec} live: transformers loads a folder's model.safetensors (or "
            f"pytorch_model.bin); open the folder {folder}, or rename the file"
        )
    return folder


def load_live(spec: str, options: Any = None) -> ModuleTree:
    """The live tree of the folder `spec` (see the module doc)."""
    folder = live_folder(spec)
    if not transformers_installed():
        raise SourceError(
            f"cannot make {spec} live: transformers is not installed ({INSTALL_HINT})"
        )
    if options is not None:
        options.report(0.0, f"loading {folder} with transformers")
    config = read_config(folder) or {}
    with quiet_transformers() as transformers:
        cls = model_class(transformers, folder, config)
        model, info = _from_pretrained(cls, folder)
        settle_loss_function(model)
    return live_tree(model, spec, info, folder)


def settle_loss_function(model: Any) -> None:
    """Let the model pick its loss function now, while transformers is quiet: it warns once,
    on the first pass, when a config names no loss type (it means the default)."""
    with contextlib.suppress(Exception):  # a model without one: its passes will say so
        _ = model.loss_function


def _from_pretrained(cls: Any, folder: str, config: Any = None) -> tuple[Any, dict]:
    kwargs: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
    if config is not None:
        kwargs["config"] = config
    try:
        return cls.from_pretrained(folder, **kwargs)
    except Exception as exc:
        raise SourceError(
            f"cannot load {folder} with {cls.__name__}.from_pretrained: "
            f"{first_line(exc, with_type=True)}"
        ) from None


def live_tree(model: Any, source: str, info: dict, folder: str) -> ModuleTree:
    """The tree of a model from_pretrained made, with what loading did and the model's own
    inputs and loss."""
    from .hf_inputs import model_inputs
    from .sources.hf_folder import find_weights

    metadata: dict[str, Any] = {
        "format": "Hugging Face folder",
        "live": f"{type(model).__name__}.from_pretrained",
        "weights": find_weights(folder) or folder,
        "weights_report": loading_report(model, info, folder),
    }
    config = read_config(folder)
    if config is not None:
        metadata["config"] = config
    tree = tree_from_module(model, source=source, metadata=metadata)
    tree.reader = "huggingface-live"
    tree.default_input, tree.default_loss = model_inputs(model)
    return tree


def loading_report(model: Any, info: dict, folder: str) -> dict[str, Any]:
    """from_pretrained's loading info as a `weights_report` (sources/factory.py's fields),
    with the keys that the files do not hold because they are tied to one they do: those are
    loaded through it, not missing."""
    stored = stored_keys(model, folder)
    state = model.state_dict(keep_vars=True)
    by_tensor: dict[int, list[str]] = {}
    for key, value in state.items():
        by_tensor.setdefault(id(value), []).append(key)
    tied = []
    for key in state:
        if key in stored:
            continue
        through = [k for k in by_tensor[id(state[key])] if k in stored]
        if through:
            tied.append({"key": key, "to": through[0]})
    tied_keys = {t["key"] for t in tied}
    missing = sorted(set(info.get("missing_keys", ())) - tied_keys)
    mismatched = [
        {"key": item[0], "model": list(item[2]), "checkpoint": list(item[1])}
        if isinstance(item, tuple) and len(item) == 3
        else {"key": str(item)}
        for item in sorted(info.get("mismatched_keys", ()), key=str)
    ]
    return {
        "prefix": "",
        "loaded": len(state) - len(missing) - len(tied) - len(mismatched),
        "missing": missing,
        "unexpected": sorted(info.get("unexpected_keys", ())),
        "shape_mismatched": mismatched,
        "dtype_changed": [],
        "tied": tied,
        "loader": "transformers from_pretrained",
    }


def stored_keys(model: Any, folder: str) -> set[str]:
    """The model keys the folder's weights hold, after the library's key conversions (the
    keys of the files' headers mapped onto the model as its loader maps them), so that tied
    keys can be told from them."""
    from .sources import open_source
    from .sources.hf_architecture import file_keys_by_model_key

    try:
        headers = open_source(folder)
    except Exception:
        return set()
    direct, converted, _ = file_keys_by_model_key(model, list(headers.tensors))
    return set(direct) | set(converted)


def is_transformers_model(model: Any) -> bool:
    """Whether `model` is a transformers PreTrainedModel (without importing transformers)."""
    import sys

    transformers = sys.modules.get("transformers")
    if transformers is None:
        return False
    base = getattr(transformers, "PreTrainedModel", None)
    return base is not None and isinstance(model, base)


def load_into_factory_model(model: Any, weights: str) -> tuple[Any, dict[str, Any]] | None:
    """`--model F --weights W` where F built a transformers model and W is a Hugging Face
    folder (or its weights file): the same loader as --live, with F's config; None when W is
    not such a folder (the ordinary loading applies)."""
    folder = weights if os.path.isdir(weights) else os.path.dirname(os.path.abspath(weights))
    if not is_transformers_model(model) or not os.path.isfile(os.path.join(folder, "config.json")):
        return None
    if not os.path.isdir(weights) and os.path.basename(weights) not in _WEIGHT_NAMES:
        return None
    with quiet_transformers() as transformers:
        hf_config(transformers, folder)  # a folder transformers cannot read: say so
        loaded, info = _from_pretrained(type(model), folder, config=model.config)
        settle_loss_function(loaded)
    loaded.train(model.training)
    return loaded, loading_report(loaded, info, folder)

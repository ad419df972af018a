"""The optional `transformers` library (`pip install netexplorer[hf]`): whether it is
installed, importing it without its progress bars and warnings on the user's terminal, and
the model class a folder's config.json names.

Nothing here is imported when transformers is not needed: a safetensors header, `--summary`
and the window's first paint never wait for it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import SourceError
from .text import first_line

INSTALL_HINT = "pip install 'netexplorer[hf]'"
WHAT_IT_ADDS = (
    f"install transformers ({INSTALL_HINT}) to see the real module types, parameters and "
    "buffers told apart, the ties the file dropped, and to make the model live"
)


def transformers_installed() -> bool:
    """Whether transformers can be imported (without importing it)."""
    return importlib.util.find_spec("transformers") is not None


def read_config(folder: str) -> dict[str, Any] | None:
    """config.json of `folder` as a dict (None if there is none or it is unreadable)."""
    from .limits import MAX_CONFIG_BYTES
    from .sources.json_file import UnreadableJson, read_json

    path = os.path.join(folder, "config.json")
    if not os.path.lexists(path):
        return None
    try:  # within the limits of any file's JSON: a FIFO, /dev/zero, 5,000-digit numbers
        config = read_json(path, MAX_CONFIG_BYTES, "config.json", "")
    except UnreadableJson:
        return None
    return config if isinstance(config, dict) else None


def architecture_name(config: dict[str, Any]) -> str | None:
    """The model class config.json names (`architectures[0]`), if any."""
    names = config.get("architectures")
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0]
    return None


@contextmanager
def quiet_transformers() -> Iterator[Any]:
    """`import transformers` with its logging at errors only and its progress bars off, for
    the time of the block (what it says about a tiny test model's token ids or a loading
    bar is not the user's concern); yields the module."""
    import transformers
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield transformers
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def model_class(transformers: Any, folder: str, config: dict[str, Any]) -> Any:
    """The class config.json names, from transformers itself (a folder's own code, named
    by `auto_map`, is never run); SourceError saying why not."""
    name = architecture_name(config)
    if name is None:
        raise SourceError(
            f"cannot build the model of {folder}: its config.json names no architecture "
            '("architectures": [...]); open it as a checkpoint'
        )
    cls = getattr(transformers, name, None)
    if cls is None or not isinstance(cls, type):
        custom = " (the folder brings its own code in auto_map, which netexplorer does not run)"
        raise SourceError(
            f"cannot build the model of {folder}: transformers {transformers.__version__} has "
            f"no class {name}{custom if config.get('auto_map') else ''}; open it as a checkpoint"
        )
    return cls


def hf_config(transformers: Any, folder: str) -> Any:
    """The folder's config as transformers reads it (local files only)."""
    try:
        return transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise SourceError(
            f"cannot read {os.path.join(folder, 'config.json')} with transformers: "
            f"{first_line(exc, with_type=True)}"
        ) from None

"""The last reader: anything no other reader claimed gets a message that says what it is
(missing, a folder without weights, an empty file, an unknown format) and what to do."""

from __future__ import annotations

import os

from ..errors import SourceError
from ..tree import ModuleTree
from .base import OpenOptions
from .files import FORMATS, check_file


class UnknownSourceReader:
    name = "unknown"
    title = "Anything else (explains why it cannot be opened)"
    file_patterns: tuple[str, ...] = ()

    def can_read(self, spec: str) -> bool:
        return True

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        if os.path.isdir(spec):
            from .hf_folder import STANDARD_WEIGHTS, weight_files  # the readers' imports: late

            found = weight_files(spec)
            if len(found) > 1:
                raise SourceError(
                    f"cannot open {spec}: the folder holds several weights files "
                    f"({', '.join(found[:4])}{', ...' if len(found) > 4 else ''}); open one "
                    "of them directly"
                )
            raise SourceError(
                f"cannot open {spec}: the folder holds no weights netexplorer reads (looked for "
                f"{', '.join(STANDARD_WEIGHTS)} and other .safetensors/.bin files); open a "
                "weights file directly"
            )
        if not os.path.lexists(spec):
            raise SourceError(
                f"cannot open {spec}: no such file or folder; SOURCE is a checkpoint file or "
                "folder, example:NAME or pkg.module:factory"
            )
        check_file(spec)  # empty, unreadable, not a regular file
        raise SourceError(f"cannot open {spec}: not a format netexplorer reads; it opens {FORMATS}")

"""A training run: the checkpoints of one model in the order they were saved, and one tree for
all of them.

`open_run(specs)` opens every checkpoint with the reader of its format (so a run may mix
formats), names its tensors as the model does (a Lightning `state_dict.` prefix or a
`{"model": ...}` wrapper taken off), orders the checkpoints by step (run_steps.py) and
returns the run's tree: the union of every checkpoint's keys, each tensor's handle that of
the latest checkpoint holding it, and `tree.run`, the `Run` the window's time slider and
`--timeline` use. Opening reads what each reader reads to list its tensors (headers,
pickles), never tensor data.

`Run.place_step(tree, index)` points every tensor of the tree at its handle in checkpoint
`index` (an `AbsentHandle`, which has no values and says why, where that checkpoint lacks the
key), so that whatever reads the tree (heatmap, statistics, optimizer state, values) shows
that step, each reading only its own tensor from one checkpoint's memory map.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import SourceError, UntrustedPickleError
from .handles import TensorHandle
from .run_steps import Ordering, StepInfo, order_checkpoints, step_info
from .tree import ModuleTree, tree_from_entries

FORMAT_NAME = "training run"


class AbsentHandle(TensorHandle):
    """A tensor of the run that this checkpoint does not hold: its shape and dtype where it
    does, no values, and `reason` saying when it appears or vanishes."""

    def __init__(self, shape: tuple[int, ...], dtype: str, reason: str) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.reason = reason

    @property
    def no_values_reason(self) -> str | None:
        return self.reason

    def array(self):
        raise ValueError(self.reason)


@dataclass(eq=False)
class RunCheckpoint:
    """One checkpoint of a run, its tensors named as the model names them."""

    spec: str  # the file or folder it was opened from
    name: str
    info: StepInfo
    reader: str
    handles: dict[str, TensorHandle]
    kinds: dict[str, str] = field(default_factory=dict)  # path -> "parameter" | "buffer"
    optimizer_state: dict[str, dict[str, TensorHandle]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`step 500`, `epoch 3`, or the name: what the time slider says."""
        return self.info.label()

    def release_maps(self) -> None:
        """Let go of the memory maps of this checkpoint's files (see MappedFile.release):
        a run shows one checkpoint at a time, and the pages of those it showed before would
        otherwise stay resident, a tensor's size per checkpoint visited."""
        if self._maps is None:
            files = (getattr(h, "file", None) or _storage_file(h) for h in self.handles.values())
            self._maps = list({id(f): f for f in files if hasattr(f, "release")}.values())
        for mapped in self._maps:
            mapped.release()

    _maps: list[Any] | None = field(default=None, init=False, repr=False)

    def as_dict(self, index: int) -> dict[str, Any]:
        """One entry of the JSON's `timeline.steps`."""
        return {
            "index": index,
            "name": self.name,
            "path": self.spec,
            "reader": self.reader,
            "step": self.info.step,
            "epoch": self.info.epoch,
            "label": self.label,
            "how": self.info.how(),
            "tensors": len(self.handles),
        }


class Run:
    """The checkpoints of one run, in order, and which keys each holds."""

    def __init__(
        self,
        checkpoints: Sequence[RunCheckpoint],
        ordering_key: str,
        note: str,
        *,
        source: str = "",
        skipped: Iterable[tuple[str, str]] = (),
    ) -> None:
        if not checkpoints:
            raise ValueError("a run needs at least one checkpoint")
        self.checkpoints = list(checkpoints)
        self.ordering_key = ordering_key  # "step", "epoch", "number" or "name"
        self.note = note  # how it was ordered, for people
        self.source = source
        self.skipped = list(skipped)  # (name, why) of checkpoints that could not be read
        self.paths = _union_order([c.handles for c in self.checkpoints])
        self.live = False  # snapshots of training in the window (live_run.py), not files

    def __len__(self) -> int:
        return len(self.checkpoints)

    # -- which checkpoint holds what --------------------------------------------------------

    def handle(self, path: str, index: int) -> TensorHandle | None:
        """The tensor at `path` in checkpoint `index`, or None where it lacks the key."""
        return self.checkpoints[index].handles.get(path)

    def presence(self, path: str) -> list[bool]:
        return [path in c.handles for c in self.checkpoints]

    def appearing(self) -> dict[str, int]:
        """Keys missing from the first checkpoint: the index where each first appears."""
        out = {}
        for path in self.paths:
            present = self.presence(path)
            if not present[0]:
                out[path] = present.index(True)
        return out

    def vanishing(self) -> dict[str, int]:
        """Keys missing from the last checkpoint: the first index after their last one."""
        out = {}
        for path in self.paths:
            present = self.presence(path)
            if not present[-1]:
                out[path] = len(present) - present[::-1].index(True)
        return out

    def absent_reason(self, path: str, index: int) -> str:
        """Why checkpoint `index` has no `path`: when the key appears or after when it is
        gone, in the slider's words."""
        present = self.presence(path)
        here = self.checkpoints[index]
        later = [i for i in range(index + 1, len(present)) if present[i]]
        earlier = [i for i in range(index) if present[i]]
        if later and not earlier:
            when = f"it appears at {self.checkpoints[later[0]].label}"
        elif earlier and not later:
            when = f"it is gone after {self.checkpoints[earlier[-1]].label}"
        else:
            when = "it is missing from this checkpoint only" if later else "it is nowhere"
        return f"{path} is not in {here.name} ({here.label}): {when}"

    def shape_dtype(self, path: str, index: int) -> tuple[tuple[int, ...], str]:
        """The shape and dtype of `path` at `index`, or where it is nearest if absent."""
        order = sorted(range(len(self)), key=lambda i: abs(i - index))
        for i in order:
            handle = self.checkpoints[i].handles.get(path)
            if handle is not None:
                return tuple(handle.shape), handle.dtype
        raise KeyError(path)

    # -- the slider -------------------------------------------------------------------------

    @property
    def x_label(self) -> str:
        """What the steps are counted in, for a chart's axis."""
        if self._all_have(self.ordering_key):
            return {"step": "global step", "epoch": "epoch"}.get(self.ordering_key, "checkpoint")
        return "checkpoint"

    def x_values(self) -> list[float]:
        """Where each checkpoint sits on a chart's axis: its step or epoch, else its index."""
        key = self.ordering_key
        if key in ("step", "epoch") and self._all_have(key):
            return [float(getattr(c.info, key)) for c in self.checkpoints]
        return [float(i) for i in range(len(self))]

    def _all_have(self, key: str) -> bool:
        return key in ("step", "epoch", "number") and all(
            getattr(c.info, key) is not None for c in self.checkpoints
        )

    def place_step(self, tree: ModuleTree, index: int) -> None:
        """Point every tensor of the run's tree at checkpoint `index` (absent keys get an
        AbsentHandle saying why), and the optimizer state at that checkpoint's; let go of
        the other checkpoints' memory maps (arrays still shown keep theirs)."""
        for i, other in enumerate(self.checkpoints):
            if i != index:
                other.release_maps()
        checkpoint = self.checkpoints[index]
        for path, node in tree.tensors.items():
            handle = checkpoint.handles.get(path)
            if handle is None:
                shape, dtype = self.shape_dtype(path, index)
                handle = AbsentHandle(shape, dtype, self.absent_reason(path, index))
            node.handle = handle
        tree.optimizer_state = checkpoint.optimizer_state

    # -- descriptions -----------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """What the run's tree says about its source (the details panel, the JSON)."""
        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "checkpoints": len(self),
            "order": self.note,
            "first": f"{self.checkpoints[0].name} ({self.checkpoints[0].label})",
            "last": f"{self.checkpoints[-1].name} ({self.checkpoints[-1].label})",
        }
        appearing, vanishing = self.appearing(), self.vanishing()
        if appearing:
            out["keys_appearing"] = {p: self.checkpoints[i].label for p, i in appearing.items()}
        if vanishing:
            out["keys_vanishing"] = {
                p: f"gone from {self.checkpoints[i].label}" for p, i in vanishing.items()
            }
        if self.skipped:
            out["skipped"] = {name: why for name, why in self.skipped}
        latest = {k: v for k, v in self.checkpoints[-1].metadata.items() if k != "format"}
        if latest:
            out["latest_checkpoint"] = latest
        return out

    def steps_as_dicts(self) -> list[dict[str, Any]]:
        return [c.as_dict(i) for i, c in enumerate(self.checkpoints)]

    def summary_lines(self) -> list[str]:
        """The run in a few lines (`--summary`)."""
        lines = [f"Training run: {len(self)} checkpoints, {self.note}"]
        for i, c in enumerate(self.checkpoints):
            lines.append(f"  {i:>3}  {c.label:<16} {c.name}  [{c.info.how()}]")
        for path, i in self.appearing().items():
            lines.append(f"  {path} appears at {self.checkpoints[i].label}")
        for path, i in self.vanishing().items():
            lines.append(f"  {path} is gone from {self.checkpoints[i].label}")
        for name, why in self.skipped:
            lines.append(f"  skipped {name}: {why}")
        return lines


def _storage_file(handle: TensorHandle) -> Any:
    """The mapped file of a torch zip tensor read without torch, else None."""
    tensor = getattr(handle, "tensor", None)
    storage = getattr(tensor, "storage", None)
    return getattr(storage, "file", None)


def _union_order(handle_maps: Sequence[dict[str, TensorHandle]]) -> list[str]:
    """Every key of the run: the latest checkpoint's in its order, and keys only earlier
    checkpoints hold placed after the key that precedes them there."""
    order = list(handle_maps[-1])
    position = {key: i for i, key in enumerate(order)}
    after: dict[str | None, list[str]] = {}
    for handles in reversed(handle_maps[:-1]):
        previous: str | None = None
        for key in handles:
            if key not in position:
                position[key] = -1
                after.setdefault(previous, []).append(key)
            previous = key
    if not after:
        return order
    out: list[str] = []

    def place(anchor: str | None) -> None:
        pending = list(reversed(after.pop(anchor, [])))
        while pending:
            key = pending.pop()
            out.append(key)
            pending.extend(reversed(after.pop(key, [])))

    place(None)
    for key in order:
        out.append(key)
        place(key)
    for anchor in list(after):  # anchors that never got placed (cannot happen, but be whole)
        place(anchor)
    return out


# -- opening ---------------------------------------------------------------------------------


def model_keys(tree: ModuleTree) -> dict[str, str]:
    """Tree path -> the model's own key: a checkpoint's model state dict prefix taken off
    (`state_dict.0.weight` -> `0.weight`); other paths stay as they are."""
    prefix = tree.metadata.get("model_state_dict")
    prefix = prefix + "." if isinstance(prefix, str) and prefix else ""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for path in tree.tensors:
        key = path[len(prefix) :] if prefix and path.startswith(prefix) else path
        if key in taken:
            key = path
        taken.add(key)
        out[path] = key
    return out


def checkpoint_of(spec: str, name: str, tree: ModuleTree) -> RunCheckpoint:
    """One opened checkpoint as a step of a run."""
    keys = model_keys(tree)
    folder = spec if os.path.isdir(spec) else None
    return RunCheckpoint(
        spec=spec,
        name=name,
        info=step_info(name, tree.metadata, folder),
        reader=tree.reader,
        handles={keys[p]: t.handle for p, t in tree.tensors.items()},
        kinds={keys[p]: t.kind for p, t in tree.tensors.items()},
        optimizer_state={keys.get(p, p): s for p, s in tree.optimizer_state.items()},
        metadata=dict(tree.metadata),
    )


def open_run(
    specs: Sequence[str],
    options: Any = None,
    *,
    source: str = "",
    names: Sequence[str] | None = None,
) -> ModuleTree:
    """Open the checkpoints `specs` (files or folders, any format netexplorer reads) as one
    run and return its tree (`tree.run` is the Run). A checkpoint that cannot be read is
    skipped and listed (a run often ends in a half-written file); a pickle that would run
    code stops the opening (UntrustedPickleError), and so does a run with nothing readable."""
    from .sources import OpenOptions, readers  # the readers import this module's users

    options = options or OpenOptions()
    names = list(names) if names is not None else [_name(s) for s in specs]
    if not specs:
        raise SourceError(f"cannot open {source or 'the run'}: it holds no checkpoints")
    opened: list[RunCheckpoint] = []
    skipped: list[tuple[str, str]] = []
    for i, (spec, name) in enumerate(zip(specs, names, strict=True)):
        options.report(i / len(specs), f"reading {name} ({i + 1} of {len(specs)})")
        try:
            # a checkpoint is never itself a run (a Trainer's output folder is, and holds
            # its final model too: that is read as a model folder)
            reader = next(r for r in readers() if r.name != "run" and r.can_read(spec))
            tree = reader.read(spec, options)
        except UntrustedPickleError:
            raise
        except SourceError as exc:
            skipped.append((name, str(exc)))
            continue
        opened.append(checkpoint_of(spec, name, tree))
    if not opened:
        first = skipped[0][1] if skipped else "nothing to read"
        raise SourceError(
            f"cannot open {source or 'the run'}: no checkpoint could be read ({first})"
        )
    ordering: Ordering = order_checkpoints([c.info for c in opened])
    run = Run(
        [opened[i] for i in ordering.order],
        ordering.key,
        ordering.note,
        source=source,
        skipped=skipped,
    )
    return run_tree(run)


def open_run_folder(folder: str, options: Any = None) -> ModuleTree:
    """The run of every checkpoint in `folder` (run_folder.py says which entries are)."""
    from .run_folder import run_entries

    entries = run_entries(folder)
    if not entries:
        raise SourceError(
            f"cannot open {folder} as a training run: it holds no checkpoints (files such as "
            "epoch_3.pt or epoch=3-step=1000.ckpt, folders such as checkpoint-500/)"
        )
    return open_run(
        [e.path for e in entries], options, source=folder, names=[e.name for e in entries]
    )


def run_tree(run: Run) -> ModuleTree:
    """The tree of a run: every key of every checkpoint, at the latest checkpoint's values
    (keys the latest lacks have an AbsentHandle), with `tree.run` set."""
    last = len(run) - 1
    latest = run.checkpoints[last]
    entries: list[tuple[str, TensorHandle]] = []
    kinds: dict[str, str] = {}
    for path in run.paths:
        handle = latest.handles.get(path)
        if handle is None:
            shape, dtype = run.shape_dtype(path, last)
            handle = AbsentHandle(shape, dtype, run.absent_reason(path, last))
        entries.append((path, handle))
        kind = next((c.kinds[path] for c in reversed(run.checkpoints) if path in c.kinds), None)
        if kind is not None:
            kinds[path] = kind
    tree = tree_from_entries(
        entries,
        source=run.source,
        reader="run",
        metadata=run.metadata(),
        kinds=kinds,
    )
    tree.optimizer_state = latest.optimizer_state
    tree.run = run
    return tree


def _name(spec: str) -> str:
    return os.path.basename(os.path.normpath(spec)) or spec

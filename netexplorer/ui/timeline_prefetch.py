"""The shown tensor at the checkpoints beside the slider's, read ahead in a worker.

Once the shown tensor of a training run is on screen, the same tensor at the next and the
previous checkpoint (the next first, or the one playing goes to) is read and made ready to
draw (`read_tensor`: values from the checkpoint's memory map, the display array) in a
worker, one at a time. A step to one of them then shows at once: the Document takes the
ready data instead of reading (`take`). Nothing else is read: one tensor, at most two
checkpoints ahead, and at most `KEEP` of them kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from ..core.handles import TensorHandle
from ..core.tasks import run_to_end
from .workers import TaskRunner

if TYPE_CHECKING:
    from .document import Document, TensorData

KEEP = 3  # ready checkpoints kept (the one before, the one after, and one more)
Key = tuple[str, int, tuple[int, ...] | None]


def read_neighbours(
    jobs: list[tuple[Key, str, TensorHandle, tuple[int, ...] | None]],
) -> Iterator[tuple[Key, TensorHandle, TensorData]]:
    """Worker task: each neighbour's data, yielded as soon as it is ready."""
    from .document import read_tensor

    for key, path, handle, slice_index in jobs:
        yield key, handle, run_to_end(read_tensor(path, handle, slice_index))


class NeighbourPrefetch(QObject):
    """Reads ahead the shown tensor of a run at the neighbouring checkpoints."""

    def __init__(self, document: Document) -> None:
        super().__init__(document)
        self.document = document
        self._ready: OrderedDict[Key, tuple[TensorHandle, TensorData]] = OrderedDict()
        self._runner = TaskRunner(self)
        self.hits = 0  # steps shown from data read ahead (tests, the benchmark)
        document.tensor_data_changed.connect(self._on_tensor_data_changed)
        document.timeline.run_changed.connect(lambda _run: self.clear())

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def take(
        self, path: str, handle: TensorHandle, slice_index: tuple[int, ...] | None
    ) -> TensorData | None:
        """The data of `path` as `handle` holds it, if it was read ahead."""
        found = self._ready.get((path, id(handle), slice_index))
        if found is None or found[0] is not handle:
            return None
        self.hits += 1
        return found[1]

    def clear(self) -> None:
        self._runner.cancel()
        self._ready.clear()

    def _on_tensor_data_changed(self, data: TensorData | None) -> None:
        timeline = self.document.timeline
        tensor = self.document.shown_tensor()
        if data is None or tensor is None or timeline.run is None or data.path != tensor.path:
            return
        if timeline.live and not timeline.rewound:  # a live model's frames: nothing to step to
            return
        step, last = timeline.step, len(timeline.run) - 1
        order = [step + 1, step - 1] if timeline.playing or step < last else [step - 1]
        slice_index = self.document.slice_index
        jobs = []
        for position in order:
            if not 0 <= position <= last:
                continue
            handle = timeline.handle_at(tensor.path, position)
            if handle is None or not handle.has_values:
                continue
            key = (tensor.path, id(handle), slice_index)
            if key in self._ready and self._ready[key][0] is handle:
                self._ready.move_to_end(key)
                continue
            jobs.append((key, tensor.path, handle, slice_index))
        if not jobs:
            return
        self._runner.run(
            read_neighbours,
            jobs,
            on_result=lambda _r: None,
            on_progress=self._keep,
            on_error=lambda _e: None,  # a step to it reads it again, and says what is wrong
        )

    def _keep(self, item: tuple[Key, TensorHandle, TensorData]) -> None:
        key, handle, data = item
        self._ready[key] = (handle, data)
        self._ready.move_to_end(key)
        while len(self._ready) > KEEP:
            self._ready.popitem(last=False)

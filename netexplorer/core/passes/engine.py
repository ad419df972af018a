"""The pass engine: forward, backward, zero grad, optimizer step and training on a live module.

`PassEngine` runs what the notebook runs by hand (`net(X)`, `loss.backward()`, reading
`net[2].weight.grad`) on a seeded input batch, with a loss and an optimizer, and records the
gradient that arrives through each use of a shared parameter (contributions.py). Every method
returns a `PassResult` of plain data (results.py). Grad mode and the use-tracking mode are
thread-local, so they are entered inside the methods.

Threads. Two locks, held only by the threads that run work (never by the window's GUI
thread): the *run* lock while the module runs (every action, and `exclusive()` for anything
else that runs it, such as the graph's recorded forward pass: module hooks are shared by all
threads), and the *state* lock while values, gradients and contributions change or are read
(`snapshot`). A snapshot therefore never waits for the graph's forward pass, only for an
action. `snapshot_while_idle` takes no lock at all, for a caller that knows no action runs.

Failures raise `PassError` with one line naming the module or value at fault. What stays:
- the forward raised, the output holds no tensor, the loss is not one finite number: nothing
  was run backward, so parameters and gradients are as they were;
- the backward raised or made a non-finite gradient: every `.grad` is put back as it was
  before the pass (and the pass's contributions are dropped), so no half-accumulated
  gradient is left behind;
- the optimizer step raised: parameters may be partly updated (the optimizer's own state);
- a training step failed: it had zeroed the gradients first, so they are None, and the
  parameters are those of the last step that succeeded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..collector import without_cycle_collector
from ..contributions import Contribution, Use, UseTracker
from ..errors import PassError
from ..handles import TorchHandle
from ..inputs import InputBatch, InputSpec, as_batch
from ..text import first_line
from ..tree import ModuleTree
from .config import PassConfig
from .diagnosis import Diagnosis
from .edits import EditHistory
from .input_guess import infer_input_spec
from .losses import LossEvaluator, first_output
from .optimizer import OptimizerStep
from .parameters import ParameterIndex
from .recording import PassCalls, UseBook
from .results import PassResult, WatchedTensor


@without_cycle_collector
def warm_up() -> None:
    """Import what torch imports on the first optimizer step (its compiler stack: about 2 s
    here), so that the first Step or Train press does not wait for it. Touches no model.

    Without the cycle collector, whose full collections over torch's hundreds of thousands
    of new objects held the GIL for up to 115 ms each (the window stopped while a worker
    warmed up; 0.78 s with it, 0.48 s without); the objects are frozen afterwards
    (collector.py), so no collection walks them later."""
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    for kind in (torch.optim.SGD, torch.optim.Adam):
        kind([p], lr=0.1).step()


@dataclass
class _Forward:
    output: torch.Tensor
    output_note: str
    loss: torch.Tensor | None
    loss_note: str
    tracker: UseTracker | None
    activations: dict[Use, np.ndarray] | None


class PassEngine:
    """Forward and backward passes, zero grad, optimizer steps and training on `tree.module`.

    Settings live in a frozen `PassConfig` (`config`), replaced whole by `configure(...)`
    (`engine.configure(loss_name="mse", lr=0.5)`); an action runs with the config it found
    when it began.

    `.grad` accumulates exactly as plain PyTorch: `backward()` twice without `zero_grad()`
    doubles it for a fixed input. One action runs at a time."""

    def __init__(
        self,
        tree: ModuleTree,
        input_spec: InputSpec | InputBatch | None = None,
        seed: int = 0,
    ) -> None:
        if tree.module is None:
            raise PassError(
                "passes need a live model; a checkpoint without code has no forward pass "
                "(pair it with --model pkg.module:factory)"
            )
        self.config = PassConfig(
            input_spec=input_spec, seed=seed, loss_name=tree.default_loss or "sum"
        )
        self.tree = tree
        self.module: nn.Module = tree.module
        self.index = prepare(tree)
        self.diagnosis = Diagnosis(tree, self.index)
        grads_before = any(p.grad is not None for p in self.index.parameters)
        self.uses = UseBook(self.index, grads_before=grads_before)
        self._loss = LossEvaluator(self.diagnosis.non_finite_culprit)
        self._optimizer_step = OptimizerStep(self.index.parameters)
        self.edits = EditHistory(self.index)
        self._run_lock = threading.RLock()
        self._state_lock = threading.RLock()
        # A TorchScript model runs as compiled code, where neither hooks nor modes reach.
        self.can_record = not isinstance(self.module, torch.jit.ScriptModule)

        self.backward_passes = 0
        self.steps_taken = 0
        self.zeroed = False  # the last change to the gradients was a zero grad
        self._default_input: InputSpec | InputBatch | None = None
        self._batch_cache: tuple[tuple, tuple[tuple, dict]] | None = None
        self._norms: dict[int, float] | None = None  # grad norms while the grads are unchanged
        self._norms_by_path: tuple[dict, dict] | None = None  # (the norms above, by path)
        self._calls_recorder: PassCalls | None = None

    # -- settings ---------------------------------------------------------------------------

    def configure(self, **changes: Any) -> PassConfig:
        """Replace the config with one that has `changes` (validated first: a bad value
        raises and leaves the config as it was)."""
        if "watch" in changes:
            changes["watch"] = frozenset(changes["watch"])
            self.index.check_paths(changes["watch"])
        config = replace(self.config, **changes)
        self.config = config  # one reference swap
        return config

    @property
    def input_spec(self) -> InputSpec | InputBatch:
        """The batch passes run on: as set, else the source's default, else inferred."""
        return self._input_of(self.config)

    @input_spec.setter
    def input_spec(self, spec: InputSpec | InputBatch | None) -> None:
        self.configure(input_spec=spec)

    @property
    def effective_lr(self) -> float:
        return self.config.effective_lr

    def _input_of(self, config: PassConfig) -> InputSpec | InputBatch:
        if config.input_spec is not None:
            return config.input_spec
        if self._default_input is None:
            self._default_input = self.tree.default_input or infer_input_spec(self.module)
        return self._default_input

    @property
    def contributions(self) -> dict[str, list[Contribution]]:
        """Parameter path (every path of a tied tensor) -> the gradient through each of its
        uses, for parameters used more than once; empty while they would not add up to
        `.grad` (see `contributions_note`)."""
        with self._state_lock:
            return self.uses.all_contributions()

    @property
    def contributions_note(self) -> str:
        """Why contributions are not shown, if they are not."""
        return self.uses.note(self.can_record)

    # -- actions ----------------------------------------------------------------------------

    @contextmanager
    def _action(self) -> Iterator[PassConfig]:
        """Hold both locks for one action, with the config it runs with."""
        with self._run_lock, self._state_lock:
            yield self.config

    def forward(self) -> PassResult:
        """`net(X)` without building a graph: the output, the loss, the uses of shared
        parameters; gradients untouched. A loss that cannot be computed is told in `note`."""
        with self._action() as config:
            start = time.perf_counter()
            fw = self._forward(config, grad=False, loss_required=False)
            if fw.tracker is not None:
                self.uses.learn(fw.tracker)
            return self._result("forward", config, start, fw, note=fw.loss_note)

    def backward(self) -> PassResult:
        """One forward and backward pass; `.grad` accumulates as in plain PyTorch, and so do
        the per-use contributions (when recording)."""
        with self._action() as config:
            start = time.perf_counter()
            fw = self._forward_backward(config)
            return self._result("backward", config, start, fw, note=self.contributions_note)

    def zero_grad(self) -> PassResult:
        """Gradients back to None, as `optimizer.zero_grad()` does by default; contributions
        cleared."""
        with self._action() as config:
            start = time.perf_counter()
            self._zero_grad()
            return self._result("zero_grad", config, start)

    def step(self) -> PassResult:
        """One optimizer step with the gradients there are (parameters without a gradient do
        not move)."""
        with self._action() as config:
            start = time.perf_counter()
            note = self._step(config)
            return self._result("step", config, start, note=note)

    def train(
        self,
        steps: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        pause: Callable[[], None] | None = None,
    ) -> Iterator[PassResult]:
        """Training on the fixed batch: each step is zero grad, forward, backward, optimizer
        step, and yields its result. Runs `steps` steps (None: until cancelled); `cancelled()`
        is asked before each step, so a cancel stops cleanly between steps. `pause()` is
        called before each step and before every module call of a recorded forward pass (a
        caller that wants the GIL for a moment waits there). A failing step raises PassError
        and ends the training, the model as described in the module doc."""
        done = 0
        while steps is None or done < steps:
            if cancelled is not None and cancelled():
                return
            if pause is not None:
                pause()
            with self._action() as config:
                start = time.perf_counter()
                self._zero_grad()
                self._calls.pause = pause
                try:
                    fw = self._forward_backward(config, pause)
                finally:
                    self._calls.pause = None
                if pause is not None:
                    pause()
                self._step(config)
                if pause is not None:
                    pause()
                result = self._result("train", config, start, fw, note=self.contributions_note)
            done += 1
            yield result

    def edit_value(self, path: str, index: tuple[int, ...], value: float) -> PassResult:
        """`net.….data[index] = value` (every path of a tied tensor changes), then a forward
        pass, so that the output and the loss follow."""
        access = self.tree.tensors[path].access if path in self.tree.tensors else path
        return self._edit("edit", lambda: self.edits.set_value(path, index, value, access))

    def initialise(self, paths: list[str], scheme: str, value: float = 1.0) -> PassResult:
        """An initialisation scheme (edits.SCHEMES) on the tensors at `paths`, seeded by the
        config's seed and the number of edits so far; then a forward pass."""
        seed = self.config.seed * 1000 + self.edits.count
        return self._edit("init", lambda: self.edits.initialise(paths, scheme, value, seed))

    def undo(self) -> PassResult:
        """Put back the tensors of the newest edit; then a forward pass."""
        return self._edit("undo", self.edits.undo)

    def _edit(self, action: str, change: Callable[[], str]) -> PassResult:
        with self._action() as config:
            start = time.perf_counter()
            description = change()
            self._norms = None
            try:
                fw = self._forward(config, grad=False, loss_required=False)
            except PassError as exc:  # the edit stands; the output cannot be shown
                result = self._result(action, config, start, note=str(exc))
            else:
                result = self._result(action, config, start, fw, note=fw.loss_note)
            result.edit = f"undid {description}" if action == "undo" else description
            return result

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run lock: for anything else that runs the module (the graph's recorded
        forward pass), so that no pass starts meanwhile and neither records the other's
        module calls. Snapshots still proceed (they only read)."""
        with self._run_lock:
            yield

    def fingerprint(self, paths: Iterable[str] = ()) -> tuple:
        """Something that changes when the model is changed from outside the engine (a
        notebook cell: an optimizer step, `.data[0, 0] = 100`, a backward pass): every
        parameter's version counter and gradient, and the values of `paths` themselves
        (writes through `.data` leave version counters alone). Cheap enough to ask a few
        times a second; like `snapshot_while_idle`, only while no action runs."""
        parameters = self.index.parameters
        versions = tuple(p._version for p in parameters)
        grads = tuple(None if p.grad is None else (id(p.grad), p.grad._version) for p in parameters)
        values = []
        with torch.no_grad():
            for path in paths:
                t = self.index.tensor(path)
                if t.device.type == "meta" or not t.numel():
                    continue
                flat = t.detach().reshape(-1)
                if flat.numel() <= 1 << 16:
                    values.append(hash(flat.cpu().numpy().tobytes()))
                else:  # a sum and an absolute sum: enough for an edit by hand
                    values.append((float(flat.double().sum()), float(flat.double().abs().sum())))
        return versions, grads, tuple(values)

    def changed_outside(self, grads_changed: bool) -> None:
        """The model was changed from outside (see `fingerprint`): forget what was computed
        from it; gradients not made here do not add up to per-use contributions."""
        self._norms = None
        if grads_changed:
            self.uses.add_unrecorded_backward()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the state lock: for a worker that reads many of the model's tensors (hashing
        them, comparing them with a checkpoint), so that no action changes them meanwhile."""
        with self._state_lock:
            yield

    def snapshot(self, paths: Iterable[str] | None = None) -> PassResult:
        """The current values, gradients and contributions of `paths` (default: the watched
        ones) and every gradient norm, without running anything. Waits for a running action."""
        with self._state_lock:
            return self.snapshot_while_idle(paths)

    def snapshot_while_idle(self, paths: Iterable[str] | None = None) -> PassResult:
        """`snapshot` without taking a lock: only for a caller that knows no action is
        running or can start meanwhile (the window's pass session, on its GUI thread)."""
        config = self.config
        start = time.perf_counter()
        return self._result("snapshot", config, start, paths=paths)

    # -- forward and backward ---------------------------------------------------------------

    @property
    def _calls(self) -> PassCalls:
        if self._calls_recorder is None:  # made once: hooking plans take a moment
            self._calls_recorder = PassCalls(self.tree, self.index)
        return self._calls_recorder

    def _batch(self, config: PassConfig) -> tuple[tuple, dict]:
        """(args, kwargs) of the forward call, made once per input, seed, device and dtype."""
        spec, seed = self._input_of(config), config.seed
        device, dtype = self._device_and_dtype()
        key = (spec, seed, str(device), dtype)
        if self._batch_cache is None or self._batch_cache[0] != key:
            args, kwargs = as_batch(spec).make(seed)
            placed: dict[int, torch.Tensor] = {}  # labels=@input_ids stays one tensor

            def place(x: torch.Tensor) -> torch.Tensor:
                if id(x) not in placed:
                    y = x
                    if y.is_floating_point() and dtype is not None:
                        y = y.to(dtype)  # a float64 or float16 model gets its own dtype
                    placed[id(x)] = y.to(device)
                return placed[id(x)]

            batch = (tuple(place(a) for a in args), {k: place(v) for k, v in kwargs.items()})
            self._batch_cache = (key, batch)
        return self._batch_cache[1]

    def _device_and_dtype(self) -> tuple[torch.device, torch.dtype | None]:
        floating = [p for p in self.index.parameters if p.is_floating_point()]
        if not floating:
            return torch.device("cpu"), None
        return floating[0].device, floating[0].dtype

    def _forward(self, config: PassConfig, *, grad: bool, loss_required: bool) -> _Forward:
        problem = meta_problem(self.tree)
        if problem is not None:
            raise PassError(problem)
        args, kwargs = self._batch(config)
        self._apply_mode(config)
        record = config.record and self.can_record
        capture = config.capture_activations and self.can_record
        calls = None
        if record or capture:
            calls = self._calls
            calls.capture = capture
        tracker = None
        if record:
            tracker = self.uses.tracker(calls, grad=grad)
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.set_grad_enabled(grad))
                if calls is not None:
                    stack.enter_context(calls)
                if tracker is not None:
                    stack.enter_context(tracker)
                raw = self.module(*args, **kwargs)
        except Exception as exc:  # a user's model may raise anything
            text = self._input_text(config)
            raise PassError(self.diagnosis.forward_failure(exc, calls, text)) from exc
        output, output_note = first_output(raw)
        with torch.set_grad_enabled(grad):
            loss, loss_note = self._loss(config, output, loss_required, raw)
        return _Forward(
            output=output,
            output_note=output_note,
            loss=loss,
            loss_note=loss_note,
            tracker=tracker,
            activations=calls.activations if calls is not None and calls.capture else None,
        )

    def _apply_mode(self, config: PassConfig) -> None:
        """Training or eval mode as the config asks (None: as the model is)."""
        if config.eval_mode is not None and self.module.training == config.eval_mode:
            self.module.train(not config.eval_mode)

    def _forward_backward(
        self, config: PassConfig, pause: Callable[[], None] | None = None
    ) -> _Forward:
        """A recorded forward and backward pass; `pause()` (training) between them and
        after, where a worker gives the GUI its turn."""
        parameters = self.index.parameters
        with torch.enable_grad():
            fw = self._forward(config, grad=True, loss_required=True)
            if pause is not None:
                pause()
            saved = {id(p): None if p.grad is None else p.grad.clone() for p in parameters}
            self._norms = None
            try:
                fw.loss.backward()  # type: ignore[union-attr]
                if pause is not None:
                    pause()
                culprit = self._non_finite_grad()
                if culprit:
                    raise PassError(
                        f"backward gave {culprit}; the gradients are left as they were before "
                        "this pass"
                    )
            except Exception as exc:
                for p in parameters:
                    p.grad = saved[id(p)]
                self._norms = None
                if fw.tracker is not None:
                    fw.tracker.release()
                if isinstance(exc, PassError):
                    raise
                raise PassError(
                    f"backward failed: {first_line(exc, with_type=True)}; the gradients are "
                    "left as they were before this pass"
                ) from exc
        if fw.tracker is not None:
            self.uses.add_backward(fw.tracker, saved)
        else:
            self.uses.add_unrecorded_backward()
        self.backward_passes += 1
        self.zeroed = False
        fw.loss = fw.loss.detach()  # type: ignore[union-attr]
        return fw

    def _non_finite_grad(self) -> str:
        if all(math.isfinite(n) for n in self._norms_by_id().values()):
            return ""
        return self.diagnosis.non_finite_grad()  # a norm can overflow while values are finite

    # -- gradients and the optimizer --------------------------------------------------------

    def _zero_grad(self) -> None:
        for p in self.index.parameters:
            p.grad = None
        self._norms = None
        self.uses.clear()
        self.backward_passes = 0
        self.zeroed = True

    def _step(self, config: PassConfig) -> str:
        if not self._optimizer_step(config):
            return "no gradient yet, so the step changed nothing: run Backward first"
        self.steps_taken += 1
        return ""

    # -- results ----------------------------------------------------------------------------

    def _norms_by_id(self) -> dict[int, float]:
        """id(parameter) -> the norm of its .grad, for those with one (computed once per change
        of the gradients)."""
        norms = self._norms
        if norms is None:
            with_grad = [p for p in self.index.parameters if p.grad is not None]
            norms = {}
            if with_grad:
                values = torch._foreach_norm([p.grad for p in with_grad])
                floats = torch.stack([v.float().cpu() for v in values]).tolist()
                norms = {id(p): n for p, n in zip(with_grad, floats, strict=True)}
            self._norms = norms
        return norms

    def _grad_norms(self) -> dict[str, float | None]:
        """Path -> grad norm, made once per change of the gradients (every result carries
        it: a selection's snapshot made it anew for 1,000 parameters, 1.1 ms each time).
        Shared by the results: plain data that nobody changes."""
        norms = self._norms_by_id()
        made = self._norms_by_path
        if made is not None and made[0] is norms:
            return made[1]
        index = self.index
        by_path = {path: norms.get(id(p)) for p in index.parameters for path in index.paths[id(p)]}
        self._norms_by_path = (norms, by_path)
        return by_path

    def _watched(self, paths: Iterable[str]) -> dict[str, WatchedTensor]:
        out: dict[str, WatchedTensor] = {}
        index = self.index
        for path in paths:
            tensor = index.tensor(path)
            handle = TorchHandle(tensor)
            values = handle.array() if handle.has_values else np.empty(0, np.float32)
            if path not in index.by_path:  # a buffer: values only
                out[path] = WatchedTensor(path, values, None, None, kind="buffer")
                continue
            contributions = self.uses.contributions(tensor)
            out[path] = WatchedTensor(path, values, handle.grad_array(), contributions)
        return out

    def _input_text(self, config: PassConfig) -> str:
        try:
            return self._input_of(config).describe()
        except PassError:
            return ""

    def _result(
        self,
        action: str,
        config: PassConfig,
        start: float,
        fw: _Forward | None = None,
        *,
        note: str = "",
        paths: Iterable[str] | None = None,
    ) -> PassResult:
        result = PassResult(
            action=action,
            step=self.steps_taken,
            backward_passes=self.backward_passes,
            loss_name=config.loss_label,
            input=self._input_text(config),
            grad_norms=self._grad_norms(),
            # the paths watched now, not when the action began: the selection may have
            # changed while it ran
            watched=self._watched(self.config.watch if paths is None else paths),
            uses=self.uses.uses_by_path(),
            note=note,
            zeroed=self.zeroed,
            undo=self.edits.last,
        )
        if fw is not None:
            result.output = TorchHandle(fw.output.detach()).array()
            result.output_note = fw.output_note
            result.loss = None if fw.loss is None else float(fw.loss.detach().reshape(()))
            result.activations = fw.activations
        result.seconds = time.perf_counter() - start
        return result


def prepare(tree: ModuleTree) -> ParameterIndex:
    """The live model's parameter index, made once per tree and kept on it: a worker that
    opens a model calls this, so that the pass engine made on the GUI thread finds it made
    (walking a 10,000-module model's parameters, buffers and modules takes 30 ms)."""
    if tree.parameter_index is None:
        tree.parameter_index = ParameterIndex(tree.module)
    return tree.parameter_index


def meta_problem(tree: ModuleTree) -> str | None:
    """Why passes cannot run on a model built on the meta device (None: they can)."""
    module = tree.module
    if module is None:
        return None
    index = tree.parameter_index  # its list when made: 17 ms less for 10,000 modules
    parameters = index.parameters if index is not None else module.parameters()
    if not any(p.device.type == "meta" for p in parameters):
        return None
    advice = (
        "open it without --meta"
        if tree.metadata.get("meta")
        else "its factory builds it there; build it on the CPU to run passes"
    )
    return (
        "the model is on the meta device (structure only): it has no values to run a pass "
        f"with; {advice}"
    )

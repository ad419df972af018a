"""The pass engine: forward, backward, zero grad, optimizer step and training on a live module.

`PassEngine` runs what the notebook runs by hand (`net(X)`, `loss.backward()`, reading
`net[2].weight.grad`) on a seeded input batch, with a loss and an optimizer, and records the
gradient that arrives through each use of a shared parameter (contributions.py). Every method
returns a `PassResult` of plain data (numpy arrays, floats, strings), because the window runs
the engine in a worker thread and shows the results in the GUI thread. Grad mode and the
use-tracking mode are thread-local, so they are entered inside the methods.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .calls import CallRecorder, ModuleCall, iter_tensors
from .contributions import Contribution, ContributionLedger, Use, UseTracker
from .display import sum_mismatch
from .errors import PassError, UnknownPathError
from .handles import TorchHandle
from .inputs import InputSpec
from .text import first_line, shape_text
from .tree import ModuleTree

LOSSES = ("sum", "mse", "cross_entropy")
OPTIMIZERS = ("sgd", "adam")
DEFAULT_LR = {"sgd": 0.1, "adam": 0.01}  # large enough to see a step move a heatmap
BATCH_SIZE = 2  # the notebook's torch.rand(size=(2, 4))
SEQUENCE_LENGTH = 8
SPATIAL_SIZE = {1: (32,), 2: (28, 28), 3: (16, 16, 16)}  # 28x28 as in MNIST-sized examples

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "Contribution",
    "PassEngine",
    "PassResult",
    "WatchedTensor",
    "infer_input_spec",
]


# -- results --------------------------------------------------------------------------------


@dataclass
class WatchedTensor:
    """A watched parameter after a pass: its values, its `.grad` (None before any backward,
    like the notebook's `net[2].weight.grad`) and its contributions (None if used once)."""

    path: str
    values: np.ndarray
    grad: np.ndarray | None
    contributions: list[Contribution] | None

    @property
    def contribution_error(self) -> float | None:
        """The largest |sum of contributions - grad|: float rounding only, if all is well."""
        if self.grad is None or not self.contributions:
            return None
        return sum_mismatch([c.values for c in self.contributions], self.grad)


@dataclass
class PassResult:
    """What one engine action left behind, as plain data that may cross threads."""

    action: str  # "forward" | "backward" | "zero_grad" | "step" | "train" | "snapshot"
    step: int  # optimizer steps taken so far (this one included)
    backward_passes: int  # backward passes accumulated in .grad since the last zero grad
    loss: float | None = None
    loss_name: str = ""
    output: np.ndarray | None = None  # the first output tensor, like the notebook's net(X)
    output_note: str = ""  # how the output was taken from a tuple, dict or model-output object
    input: str = ""  # the input batch as Python, e.g. torch.rand(size=(2, 4))
    grad_norms: dict[str, float | None] = field(default_factory=dict)  # every parameter path
    watched: dict[str, WatchedTensor] = field(default_factory=dict)
    uses: dict[str, list[Use]] = field(default_factory=dict)  # path -> (site, call), 2+ uses
    activations: dict[Use, np.ndarray] | None = None  # (site, call) -> that call's output
    note: str = ""  # what the user should know (no gradient yet, contributions incomplete)
    seconds: float = 0.0


def warm_up() -> None:
    """Import what torch imports on the first optimizer step (its compiler stack: about 2 s
    here), so that the first Step or Train press does not wait for it. Touches no model."""
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    for kind in (torch.optim.SGD, torch.optim.Adam):
        kind([p], lr=0.1).step()


# -- input inference ------------------------------------------------------------------------


def infer_input_spec(module: nn.Module) -> InputSpec:
    """A batch the first input layer of `module` accepts (batch size 2 like the notebook):
    Linear `in_features`, Conv `in_channels` with a default spatial size, Embedding tokens
    below `num_embeddings`, recurrent cells' `input_size`. A fallback for modules whose
    source gives no input; modules are looked at in registration order."""
    n = BATCH_SIZE
    for m in module.modules():
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            return InputSpec((n, SEQUENCE_LENGTH), "tokens", high=m.num_embeddings)
        if isinstance(m, nn.Linear) and not isinstance(m, nn.modules.lazy.LazyModuleMixin):
            return InputSpec((n, m.in_features))
        if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(
            m, nn.modules.lazy.LazyModuleMixin
        ):
            dims = len(m.kernel_size)
            return InputSpec((n, m.in_channels, *SPATIAL_SIZE.get(dims, (16,) * dims)))
        if isinstance(m, nn.RNNCellBase):
            return InputSpec((n, m.input_size))
        if isinstance(m, nn.RNNBase):
            steps = 5
            shape = (n, steps, m.input_size) if m.batch_first else (steps, n, m.input_size)
            return InputSpec(shape)
        if isinstance(m, nn.LayerNorm):
            return InputSpec((n, *m.normalized_shape))
    raise PassError(
        f"cannot tell what input {type(module).__name__} takes (no Linear, Conv, Embedding or "
        "recurrent layer to read it from); set the input shape"
    )


# -- outputs and losses ---------------------------------------------------------------------


def first_output(raw: Any) -> tuple[torch.Tensor, str]:
    """The tensor a loss is computed from: the output itself, its `logits` (Hugging Face
    style objects and dicts) or its first tensor; and a note saying which, if not the output.
    Raises PassError when the output holds no tensor."""
    if isinstance(raw, torch.Tensor):
        return raw, ""
    kind = type(raw).__name__
    logits = raw.get("logits") if isinstance(raw, dict) else getattr(raw, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits, f"the model returned a {kind}; its logits are the output used"
    if isinstance(raw, (tuple, list)):
        for i, item in enumerate(raw):
            tensor = next(iter_tensors(item), None)
            if tensor is not None:
                where = f"element {i}" if isinstance(item, torch.Tensor) else f"inside element {i}"
                return tensor, (
                    f"the model returned a {kind} of {len(raw)}; its first tensor ({where}) "
                    "is the output used"
                )
    elif isinstance(raw, dict):
        for key, item in raw.items():
            tensor = next(iter_tensors(item), None)
            if tensor is not None:
                return tensor, f"the model returned a dict; its first tensor ({key!r}) is used"
    else:
        tensor = next(iter_tensors(raw), None)
        if tensor is not None:
            return tensor, f"the model returned a {kind}; its first tensor is the output used"
    raise PassError(
        f"the model's output (a {kind}) holds no tensor, so there is nothing to show or to "
        "compute a loss from"
    )


def loss_target(loss_name: str, output: torch.Tensor, seed: int) -> torch.Tensor | None:
    """The fixed target of a loss for an output: a seeded random tensor of the output's shape
    for MSE, seeded random class labels for cross-entropy (classes in the last dimension)."""
    gen = torch.Generator().manual_seed(int(seed) + 1)  # a stream apart from the input's
    if loss_name == "mse":
        dtype = output.dtype if output.is_floating_point() else torch.float32
        return torch.randn(tuple(output.shape), generator=gen, dtype=dtype).to(output.device)
    if loss_name == "cross_entropy":
        classes = output.shape[-1]
        return torch.randint(0, classes, tuple(output.shape[:-1]), generator=gen).to(output.device)
    return None


def compute_loss(loss_name: str, output: torch.Tensor, target: torch.Tensor | None) -> Any:
    """The loss of `output` (a tensor; its value is checked by the caller)."""
    if loss_name == "sum":
        return output.sum()
    if not output.is_floating_point():
        raise PassError(
            f"the {loss_name} loss needs a floating-point output; this output is "
            f"{str(output.dtype).removeprefix('torch.')}"
        )
    if loss_name == "mse":
        return F.mse_loss(output, target)
    if output.dim() < 2 or output.shape[-1] < 2:
        shape = shape_text(output.shape) if output.dim() else "a scalar"
        raise PassError(
            "cross-entropy needs a classifier-shaped output (a batch of scores with at least "
            f"2 classes in the last dimension); this output is {shape}: use the sum or MSE loss"
        )
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


# -- the engine -----------------------------------------------------------------------------


class _PassCalls(CallRecorder):
    """The module calls of one pass, and optionally each call's output as numpy.

    Without activation capture only modules that can consume a parameter are hooked: those
    with parameters of their own or with children. A parameter-free leaf (ReLU, Dropout)
    cannot, and leaving it unhooked keeps its calls on PyTorch's fast path; one placed at
    several paths is hooked all the same, so that an error in it names the right path (the
    traceback names a module at one path). TorchScript modules take no hooks: their calls
    are not seen."""

    def __init__(self, tree: ModuleTree, capture: bool) -> None:
        super().__init__(tree)
        self.capture = capture
        self.activations: dict[Use, np.ndarray] = {}
        hookable: dict[int, nn.Module] = {}
        for module in tree.module.modules():
            if not isinstance(module, torch.jit.ScriptModule):
                hookable.setdefault(id(module), module)
        self._all = list(hookable.values())
        self._consumers = [
            m for m in self._all if m._parameters or m._modules or len(self._paths[id(m)]) > 1
        ]

    def __enter__(self) -> _PassCalls:
        self.clear()
        for module in self._all if self.capture else self._consumers:
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))
        return self

    def clear(self) -> None:
        super().clear()
        self.activations = {}

    def call_finished(self, record: ModuleCall, output: Any) -> None:
        if self.capture:
            tensor = next(iter_tensors(output), None)
            if tensor is not None and tensor.device.type != "meta":
                self.activations[(record.site, record.call)] = TorchHandle(tensor.detach()).array()


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

    Settable between actions: `input_spec`, `seed` (of the input batch and the loss target),
    `loss_name` (one of LOSSES) or `loss_fn` (a callable `(output, target) -> loss` that
    replaces it), `optimizer_name` (one of OPTIMIZERS), `lr` (None: the optimizer's default
    here), `record` (per-use contributions on or off), `capture_activations`, and `watch`
    (parameter paths whose values, gradients and contributions every result carries).

    `.grad` accumulates exactly as plain PyTorch: `backward()` twice without `zero_grad()`
    doubles it for a fixed input. One action runs at a time (a lock); the module's hooks are
    shared by all threads, so nothing else should call the module during an action."""

    def __init__(
        self, tree: ModuleTree, input_spec: InputSpec | None = None, seed: int = 0
    ) -> None:
        if tree.module is None:
            raise PassError(
                "passes need a live model; a checkpoint without code has no forward pass "
                "(pair it with --model pkg.module:factory)"
            )
        self.tree = tree
        self.module: nn.Module = tree.module
        self._input_spec = input_spec
        self.seed = int(seed)
        self.loss_name = "sum"
        self.loss_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
        self.optimizer_name = "sgd"
        self.lr: float | None = None
        self.record = True
        self.capture_activations = False
        self._watch: set[str] = set()

        self._lock = threading.RLock()
        self._paths: dict[int, list[str]] = {}  # id(parameter) -> its paths, tree order
        self._parameters: list[nn.Parameter] = []  # each tensor once
        for path, p in self.module.named_parameters(remove_duplicate=False):
            if id(p) not in self._paths:
                self._paths[id(p)] = []
                self._parameters.append(p)
            self._paths[id(p)].append(path)
        self._name: dict[int, str] = {i: paths[0] for i, paths in self._paths.items()}
        self._path_parameter = {path: p for p in self._parameters for path in self._paths[id(p)]}
        # Every parameter is tracked: one frozen now may be unfrozen later (views are made
        # only for those that require grad at the time).
        self._tracked = {id(p): self._name[id(p)] for p in self._parameters}
        # A TorchScript model runs as compiled code, where neither hooks nor modes reach.
        self.can_record = not isinstance(self.module, torch.jit.ScriptModule)
        self._module_paths: dict[int, list[str]] = {}
        for path, m in self.module.named_modules(remove_duplicate=False):
            self._module_paths.setdefault(id(m), []).append(path)

        self._ledger = ContributionLedger()
        self._last_uses: dict[str, list[Use]] = {}
        # Gradients the ledger did not see (a pass without recording, or grads that were
        # there before the engine): contributions would not add up to .grad until zero grad.
        self._grads_unrecorded = any(p.grad is not None for p in self._parameters)
        self.backward_passes = 0
        self.steps_taken = 0
        self._optimizer: torch.optim.Optimizer | None = None
        self._optimizer_made_for = ""
        self._batch_cache: tuple[tuple[InputSpec, int, str, Any], torch.Tensor] | None = None
        self._target_cache: tuple[tuple, torch.Tensor | None] | None = None
        self._norms: dict[int, float] | None = None  # grad norms while the grads are unchanged
        self._multi_use: set[int] = set()  # ids of parameters seen used more than once
        self._use_counts_known = False
        self._calls_recorder: _PassCalls | None = None

    # -- settings ---------------------------------------------------------------------------

    @property
    def input_spec(self) -> InputSpec:
        """The batch passes run on: as set, else the source's default, else inferred."""
        if self._input_spec is None:
            self._input_spec = self.tree.default_input or infer_input_spec(self.module)
        return self._input_spec

    @input_spec.setter
    def input_spec(self, spec: InputSpec | None) -> None:
        self._input_spec = spec

    @property
    def watch(self) -> set[str]:
        return set(self._watch)

    @watch.setter
    def watch(self, paths: Iterable[str]) -> None:
        paths = set(paths)
        unknown = sorted(p for p in paths if p not in self._path_parameter)
        if unknown:
            raise UnknownPathError(f"no parameter at path {unknown[0]!r} to watch")
        self._watch = paths

    @property
    def effective_lr(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.optimizer_name]

    @property
    def contributions(self) -> dict[str, list[Contribution]]:
        """Parameter path (every path of a tied tensor) -> the gradient through each of its
        uses, for parameters used more than once; empty while they would not add up to
        `.grad` (see `contributions_note`)."""
        with self._lock:
            if self._grads_unrecorded:
                return {}
            return {
                path: uses
                for p in self._parameters
                if (uses := self._ledger.contributions(self._name[id(p)])) is not None
                for path in self._paths[id(p)]
            }

    @property
    def contributions_note(self) -> str:
        """Why contributions are not shown, if they are not."""
        if not self.can_record:
            return (
                "per-use contributions cannot be recorded in a TorchScript model: it runs as "
                "compiled code"
            )
        if self._grads_unrecorded:
            return (
                "per-use contributions are not shown: .grad holds gradients from a pass run "
                "without recording (or from before the explorer); press Zero grad"
            )
        return ""

    # -- actions ----------------------------------------------------------------------------

    def forward(self) -> PassResult:
        """`net(X)` without building a graph: the output, the loss, the uses of shared
        parameters; gradients untouched. A loss that cannot be computed is told in `note`."""
        with self._lock:
            start = time.perf_counter()
            fw = self._forward(grad=False, loss_required=False)
            if fw.tracker is not None:
                self._learn_uses(fw.tracker)
            return self._result("forward", start, fw, note=fw.loss_note)

    def backward(self) -> PassResult:
        """One forward and backward pass; `.grad` accumulates as in plain PyTorch, and so do
        the per-use contributions (when recording)."""
        with self._lock:
            start = time.perf_counter()
            fw = self._forward_backward()
            return self._result("backward", start, fw, note=self.contributions_note)

    def zero_grad(self) -> PassResult:
        """Gradients back to None, as `optimizer.zero_grad()` does by default; contributions
        cleared."""
        with self._lock:
            start = time.perf_counter()
            self._zero_grad()
            return self._result("zero_grad", start)

    def step(self) -> PassResult:
        """One optimizer step with the gradients there are (parameters without a gradient do
        not move)."""
        with self._lock:
            start = time.perf_counter()
            note = self._step()
            return self._result("step", start, note=note)

    def train(
        self, steps: int | None = None, cancelled: Callable[[], bool] | None = None
    ) -> Iterator[PassResult]:
        """Training on the fixed batch: each step is zero grad, forward, backward, optimizer
        step, and yields its result. Runs `steps` steps (None: until cancelled); `cancelled()`
        is asked before each step, so a cancel stops cleanly between steps. A failing step
        raises PassError and ends the training, the model as described in the module doc."""
        done = 0
        while steps is None or done < steps:
            if cancelled is not None and cancelled():
                return
            with self._lock:
                start = time.perf_counter()
                self._zero_grad()
                fw = self._forward_backward()
                self._step()
                result = self._result("train", start, fw, note=self.contributions_note)
            done += 1
            yield result

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the engine's lock: for anything else that runs the module (the graph's
        recorded forward pass), so that no pass starts meanwhile and neither records the
        other's module calls."""
        with self._lock:
            yield

    def snapshot(self, paths: Iterable[str] | None = None) -> PassResult:
        """The current values, gradients and contributions of `paths` (default: the watched
        ones) and every gradient norm, without running anything."""
        with self._lock:
            start = time.perf_counter()
            return self._result("snapshot", start, paths=paths)

    # -- forward and backward ---------------------------------------------------------------

    @property
    def _calls(self) -> _PassCalls:
        if self._calls_recorder is None:  # made once: finding every module's paths takes time
            self._calls_recorder = _PassCalls(self.tree, False)
        return self._calls_recorder

    def _batch(self) -> torch.Tensor:
        spec, seed = self.input_spec, self.seed
        device, dtype = self._device_and_dtype()
        key = (spec, seed, str(device), dtype)
        if self._batch_cache is None or self._batch_cache[0] != key:
            x = spec.make(seed)
            if x.is_floating_point() and dtype is not None:
                x = x.to(dtype)  # a float64 or float16 model gets a batch of its own dtype
            self._batch_cache = (key, x.to(device))
        return self._batch_cache[1]

    def _device_and_dtype(self) -> tuple[torch.device, torch.dtype | None]:
        floating = [p for p in self._parameters if p.is_floating_point()]
        if not floating:
            return torch.device("cpu"), None
        return floating[0].device, floating[0].dtype

    def _forward(self, *, grad: bool, loss_required: bool) -> _Forward:
        if any(p.device.type == "meta" for p in self._parameters):
            raise PassError(
                "the model is on the meta device (structure only): it has no values to run "
                "a pass with; open it without --meta"
            )
        x = self._batch()
        record = self.record and self.can_record
        calls = None
        if record or (self.capture_activations and self.can_record):
            calls = self._calls
            calls.capture = self.capture_activations
        tracker = None
        if record:
            # The first recorded pass views every parameter; later ones those used twice.
            viewed = self._multi_use if self._use_counts_known else None
            tracker = UseTracker(calls, self._tracked, make_views=grad, viewed=viewed)
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.set_grad_enabled(grad))
                if calls is not None:
                    stack.enter_context(calls)
                if tracker is not None:
                    stack.enter_context(tracker)
                raw = self.module(x)
        except Exception as exc:  # a user's model may raise anything
            raise PassError(self._forward_failure(exc, calls)) from exc
        output, output_note = first_output(raw)
        with torch.set_grad_enabled(grad):
            loss, loss_note = self._loss(output, required=loss_required)
        return _Forward(
            output=output,
            output_note=output_note,
            loss=loss,
            loss_note=loss_note,
            tracker=tracker,
            activations=calls.activations if calls is not None and calls.capture else None,
        )

    def _loss(self, output: torch.Tensor, required: bool) -> tuple[torch.Tensor | None, str]:
        name = "custom loss" if self.loss_fn is not None else self.loss_name
        try:
            if self.loss_fn is None and self.loss_name not in LOSSES:
                raise PassError(f"unknown loss {self.loss_name!r}; choose {', '.join(LOSSES)}")
            target = self._target(output)
            if self.loss_fn is not None:
                loss = self.loss_fn(output, target)
            else:
                loss = compute_loss(self.loss_name, output, target)
            if not isinstance(loss, torch.Tensor):
                raise PassError(f"the {name} returned a {type(loss).__name__}, not a tensor")
            if loss.numel() != 1:
                raise PassError(
                    f"the loss must be one number, but the {name} is a tensor of shape "
                    f"{shape_text(loss.shape)}; reduce it (for example with .sum() or .mean())"
                )
            if required:
                self._check_loss(loss, output, name)
            elif not math.isfinite(value := float(loss.detach().reshape(()))):
                return loss, f"the loss is {value}; {self._non_finite_culprit(output)}"
        except PassError as exc:
            if required:
                raise
            return None, str(exc)
        except Exception as exc:
            message = f"the {name} failed on an output of shape {shape_text(output.shape)}: "
            message += first_line(exc, with_type=True)
            if required:
                raise PassError(message) from exc
            return None, message
        return loss, ""

    def _target(self, output: torch.Tensor) -> torch.Tensor | None:
        name = "mse" if self.loss_fn is not None else self.loss_name
        key = (name, self.seed, tuple(output.shape), output.dtype, str(output.device))
        if self._target_cache is None or self._target_cache[0] != key:
            self._target_cache = (key, loss_target(name, output, self.seed))
        return self._target_cache[1]

    def _check_loss(self, loss: torch.Tensor, output: torch.Tensor, name: str) -> None:
        value = float(loss.detach().reshape(()))
        if not math.isfinite(value):
            raise PassError(f"the loss is {value} ({name}); {self._non_finite_culprit(output)}")
        if not loss.requires_grad:
            dtype = str(output.dtype).removeprefix("torch.")
            why = (
                f"the output is {dtype}, through which no gradient flows"
                if not output.is_floating_point()
                else "it does not depend on any parameter that requires grad"
            )
            raise PassError(f"cannot run backward from the {name}: {why}")

    def _non_finite_culprit(self, output: torch.Tensor) -> str:
        """Which value made the loss NaN or infinite: a parameter, else the output."""
        with torch.no_grad():
            for p in self._parameters:
                if p.is_floating_point() and not bool(torch.isfinite(p).all()):
                    bad = int((~torch.isfinite(p)).sum())
                    return f"parameter {self._name[id(p)]} holds {bad} NaN or infinite values"
            if output.is_floating_point() and not bool(torch.isfinite(output).all()):
                bad = int((~torch.isfinite(output)).sum())
                return f"the model's output holds {bad} NaN or infinite values"
        return "the output is finite, so the loss itself overflowed"

    def _forward_backward(self) -> _Forward:
        with torch.enable_grad():
            fw = self._forward(grad=True, loss_required=True)
            saved = {id(p): None if p.grad is None else p.grad.clone() for p in self._parameters}
            self._norms = None
            try:
                fw.loss.backward()  # type: ignore[union-attr]
                culprit = self._non_finite_grad()
                if culprit:
                    raise PassError(
                        f"backward gave {culprit}; the gradients are left as they were before "
                        "this pass"
                    )
            except Exception as exc:
                for p in self._parameters:
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
            tracker = fw.tracker
            tracker.release()
            for name, p in tracker.first_use_unviewed.items():
                before = saved[id(p)]
                tracker.fill_first_use(name, p.grad if before is None else p.grad - before)
            self._learn_uses(tracker)
            if not self._grads_unrecorded:
                self._ledger.add(tracker, lambda name: saved[id(self._path_parameter[name])])
        else:
            self._grads_unrecorded = True
            self._ledger.clear()
        self.backward_passes += 1
        fw.loss = fw.loss.detach()  # type: ignore[union-attr]
        return fw

    def _learn_uses(self, tracker: UseTracker) -> None:
        self._last_uses = tracker.uses
        self._multi_use |= {
            id(self._path_parameter[name]) for name, uses in tracker.uses.items() if len(uses) > 1
        }
        self._use_counts_known = True

    def _non_finite_grad(self) -> str:
        if all(math.isfinite(n) for n in self._norms_by_id().values()):
            return ""
        for p in self._parameters:  # a norm can overflow while every value is finite
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return f"a NaN or infinite gradient for {self._name[id(p)]}"
        return ""

    def _forward_failure(self, exc: Exception, calls: CallRecorder | None) -> str:
        if isinstance(exc, PassError):
            return str(exc)
        module, site, where = self._module_at_fault(exc, calls)
        message = f"forward pass failed in {where}: {first_line(exc, with_type=True)}"
        message += f"; the input was {self.input_spec.describe()}"
        node = self.tree.modules.get(site) if site is not None else None
        hint = _expectation(module, node.access if node is not None else "it")
        return message + (f"; {hint}" if hint else "")

    def _module_at_fault(
        self, exc: Exception, calls: CallRecorder | None
    ) -> tuple[nn.Module | None, str | None, str]:
        """The module at fault, its path and how to name it in a message."""
        # The innermost frame of the traceback whose `self` is one of the model's modules;
        # the recorded call (when there is one) tells its site and call apart.
        module = None
        tb = exc.__traceback__
        while tb is not None:
            candidate = tb.tb_frame.f_locals.get("self")
            if isinstance(candidate, nn.Module) and id(candidate) in self._module_paths:
                module = candidate
            tb = tb.tb_next
        call: ModuleCall | None = calls.failed_call() if calls is not None else None
        if call is not None:
            called = self.module.get_submodule(call.site) if call.site else self.module
            if module is None or module is called:
                return called, call.site, self._describe_call(call.site, call.type_name, call.call)
        if module is None:
            return None, None, f"the model ({type(self.module).__name__})"
        paths = self._module_paths[id(module)]
        where = self._describe_call(paths[0], type(module).__name__, 0)
        if len(paths) > 1:
            where += f" (the same module is also at {', '.join(paths[1:])})"
        return module, paths[0], where

    def _describe_call(self, site: str, type_name: str, call: int) -> str:
        node = self.tree.modules.get(site)
        access = node.access if node is not None else site
        label = f"module {site}" if site else "the top module"
        text = f"{label} ({type_name}, {access})"
        return text + (f", call {call}" if call else "")

    # -- gradients and the optimizer --------------------------------------------------------

    def _zero_grad(self) -> None:
        for p in self._parameters:
            p.grad = None
        self._norms = None
        self._ledger.clear()
        self._grads_unrecorded = False
        self.backward_passes = 0

    def _make_optimizer(self) -> torch.optim.Optimizer:
        name = self.optimizer_name
        if name not in OPTIMIZERS:
            raise PassError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS)}")
        if self._optimizer is None or self._optimizer_made_for != name:
            trainable = [p for p in self._parameters if p.requires_grad]
            if not trainable:
                raise PassError("the model has no parameter that requires grad: nothing to step")
            kind = torch.optim.SGD if name == "sgd" else torch.optim.Adam
            self._optimizer = kind(trainable, lr=self.effective_lr)
            self._optimizer_made_for = name
        for group in self._optimizer.param_groups:
            group["lr"] = self.effective_lr
        return self._optimizer

    def _step(self) -> str:
        optimizer = self._make_optimizer()
        if all(p.grad is None for p in self._parameters):
            return "no gradient yet, so the step changed nothing: run Backward first"
        try:
            optimizer.step()
        except Exception as exc:
            raise PassError(
                f"the {self.optimizer_name} step failed: {first_line(exc, with_type=True)}; "
                "parameters may be partly updated"
            ) from exc
        self.steps_taken += 1
        return ""

    # -- results ----------------------------------------------------------------------------

    def _norms_by_id(self) -> dict[int, float]:
        """id(parameter) -> the norm of its .grad, for those with one (computed once per change
        of the gradients)."""
        if self._norms is None:
            with_grad = [p for p in self._parameters if p.grad is not None]
            self._norms = {}
            if with_grad:
                values = torch._foreach_norm([p.grad for p in with_grad])
                floats = torch.stack([v.float().cpu() for v in values]).tolist()
                self._norms = {id(p): n for p, n in zip(with_grad, floats, strict=True)}
        return self._norms

    def _grad_norms(self) -> dict[str, float | None]:
        norms = self._norms_by_id()
        return {path: norms.get(id(p)) for p in self._parameters for path in self._paths[id(p)]}

    def _watched(self, paths: Iterable[str]) -> dict[str, WatchedTensor]:
        paths = list(paths)
        if not paths:
            return {}
        out: dict[str, WatchedTensor] = {}
        for path in paths:
            p = self._path_parameter.get(path)
            if p is None:
                raise UnknownPathError(f"no parameter at path {path!r}")
            handle = TorchHandle(p)
            out[path] = WatchedTensor(
                path=path,
                values=handle.array() if handle.has_values else np.empty(0, np.float32),
                grad=handle.grad_array(),
                contributions=None
                if self._grads_unrecorded
                else self._ledger.contributions(self._name[id(p)]),
            )
        return out

    def _input_text(self) -> str:
        try:
            return self.input_spec.describe()
        except PassError:
            return ""

    def _uses_by_path(self) -> dict[str, list[Use]]:
        return {
            path: list(uses)
            for p in self._parameters
            if len(uses := self._last_uses.get(self._name[id(p)], ())) >= 2
            for path in self._paths[id(p)]
        }

    def _result(
        self,
        action: str,
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
            loss_name="custom" if self.loss_fn is not None else self.loss_name,
            input=self._input_text(),
            grad_norms=self._grad_norms(),
            watched=self._watched(self._watch if paths is None else paths),
            uses=self._uses_by_path(),
            note=note,
        )
        if fw is not None:
            result.output = TorchHandle(fw.output.detach()).array()
            result.output_note = fw.output_note
            result.loss = None if fw.loss is None else float(fw.loss.detach().reshape(()))
            result.activations = fw.activations
        result.seconds = time.perf_counter() - start
        return result


def _expectation(module: nn.Module | None, access: str) -> str:
    """What the module at fault takes, for a wrong-shape input."""
    if isinstance(module, nn.Linear):
        return f"{access} takes inputs whose last dimension is {module.in_features} (in_features)"
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        return f"{access} takes (batch, {module.in_channels} channels, {dims} spatial dimensions)"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return f"{access} takes integer tokens from 0 to {module.num_embeddings - 1}"
    if isinstance(module, (nn.RNNCellBase, nn.RNNBase)):
        return f"{access} takes inputs whose last dimension is {module.input_size} (input_size)"
    return ""

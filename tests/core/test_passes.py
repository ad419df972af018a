"""The pass engine: gradients add up per use, .grad is plain PyTorch's, bad input is a message.

Trees are built with `tree_from_module` as the example reader builds them, so these tests do
not depend on the other readers."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from netexplorer.core.describe import describe
from netexplorer.core.errors import PassError, UnknownPathError
from netexplorer.core.inputs import InputSpec
from netexplorer.core.passes import PassEngine, PassResult, infer_input_spec
from netexplorer.core.tree import tree_from_module
from netexplorer.examples import EXAMPLES

# -- helpers --------------------------------------------------------------------------------


def example_tree(name: str, seed: int = 0):
    example = EXAMPLES[name]
    tree = tree_from_module(example.build(seed), source=f"example:{name}")
    tree.default_input = example.default_input
    return tree


def module_tree(module: nn.Module, default_input: InputSpec | None = None):
    tree = tree_from_module(module)
    tree.default_input = default_input
    return tree


def plain_pytorch_grads(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """What the notebook computes by hand: net(X).sum().backward()."""
    example = EXAMPLES[name]
    net = example.build(seed)
    net(example.default_input.make(seed)).sum().backward()
    return {path: p.grad.numpy().copy() for path, p in net.named_parameters(remove_duplicate=False)}


def grads_of(module: nn.Module) -> dict[str, np.ndarray | None]:
    return {
        path: None if p.grad is None else p.grad.numpy().copy()
        for path, p in module.named_parameters(remove_duplicate=False)
    }


def uses_of(engine: PassEngine, path: str) -> list[tuple[str, int]]:
    return [(c.site, c.call) for c in engine.contributions[path]]


def contribution_sum(engine: PassEngine, path: str) -> np.ndarray:
    return np.sum([c.values for c in engine.contributions[path]], axis=0)


def assert_adds_up(engine: PassEngine, path: str, each_sends: bool = True) -> None:
    grad = engine.module.get_parameter(path).grad.numpy()
    np.testing.assert_allclose(contribution_sum(engine, path), grad, rtol=1e-5, atol=1e-6)
    for c in engine.contributions[path] if each_sends else ():  # each use sent its own part
        assert np.abs(c.values).max() > 0
        assert not np.allclose(c.values, grad)


def assert_no_hooks_left(module: nn.Module) -> None:
    for m in module.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks, type(m).__name__
    assert torch._C._len_torch_function_stack() == 0  # the use-tracking mode is gone


def walk_values(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk_values(getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk_values(k)
            yield from walk_values(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from walk_values(v)
    else:
        yield value


# -- the notebook's tied net ----------------------------------------------------------------


def test_tied_grad_is_the_sum_of_its_two_uses_and_plain_pytorchs():
    engine = PassEngine(example_tree("tied"), seed=0)
    engine.backward()
    assert uses_of(engine, "2.weight") == [("2", 0), ("4", 0)]
    assert uses_of(engine, "4.bias") == [("2", 0), ("4", 0)]
    grad = engine.module.get_parameter("2.weight").grad.numpy()
    np.testing.assert_allclose(contribution_sum(engine, "2.weight"), grad, rtol=1e-6, atol=1e-7)
    assert_adds_up(engine, "2.bias")
    plain = plain_pytorch_grads("tied")
    for path, value in grads_of(engine.module).items():
        np.testing.assert_array_equal(value, plain[path])  # .grad exactly as PyTorch
    assert "0.weight" not in engine.contributions  # used once: no contributions
    assert "6.bias" not in engine.contributions


def test_backward_twice_gives_exactly_twice_once():
    once = PassEngine(example_tree("tied"), seed=0)
    once.backward()
    twice = PassEngine(example_tree("tied"), seed=0)
    twice.backward()
    result = twice.backward()
    assert result.backward_passes == 2
    g1, g2 = grads_of(once.module), grads_of(twice.module)
    for path in g1:
        np.testing.assert_array_equal(g2[path], 2 * g1[path])
    for path, uses in once.contributions.items():
        for a, b in zip(uses, twice.contributions[path], strict=True):
            assert (a.site, a.call) == (b.site, b.call)
            np.testing.assert_array_equal(b.values, 2 * a.values)
    assert result.grad_norms["2.weight"] == pytest.approx(
        2 * once.snapshot().grad_norms["2.weight"]
    )


def test_zero_grad_clears_grads_and_contributions_as_pytorch_does():
    engine = PassEngine(example_tree("tied"), seed=0)
    before = engine.snapshot(["2.weight"])
    assert before.watched["2.weight"].grad is None  # the notebook's NoneType
    assert before.grad_norms["2.weight"] is None
    engine.backward()
    result = engine.zero_grad()
    assert all(p.grad is None for p in engine.module.parameters())
    assert engine.contributions == {}
    assert result.backward_passes == 0 and set(result.grad_norms.values()) == {None}
    engine.backward()  # after zero grad, one pass again equals plain PyTorch
    np.testing.assert_array_equal(
        engine.module.get_parameter("2.weight").grad.numpy(),
        plain_pytorch_grads("tied")["2.weight"],
    )


def test_describe_fills_grad_and_contributions():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    engine.backward()
    out = json.loads(json.dumps(describe(tree, contributions=engine.contributions)))
    by_path = {p["path"]: p for p in out["parameters"]}
    grad = by_path["2.weight"]["grad"]
    assert [(c["site"], c["call"]) for c in grad["contributions"]] == [("2", 0), ("4", 0)]
    total = sum(c["stats"]["sum"] for c in grad["contributions"])
    assert total == pytest.approx(grad["stats"]["sum"], rel=1e-6, abs=1e-7)
    assert by_path["4.weight"]["grad"] == grad  # one tensor, two paths
    assert by_path["0.weight"]["grad"]["contributions"] is None


# -- the other examples ---------------------------------------------------------------------

EXAMPLE_USES = {
    "rnn": {"cell.weight_ih": [("cell", t) for t in range(5)], "cell.bias_hh": None},
    "autoencoder": {
        "encoder.weight": [("encoder", 0), ("decoder", 0)],
        "decoder.weight": [("encoder", 0), ("decoder", 0)],
    },
    "tiny-gpt": {
        "tok_emb.weight": [("tok_emb", 0), ("head", 0)],
        "head.weight": [("tok_emb", 0), ("head", 0)],
    },
    "sharing": {
        "embed.weight": [("embed", 0), ("head", 0)],
        "body.0.weight": [("body.0", 0), ("body.2", 0)],
        "body.2.bias": [("body.0", 0), ("body.2", 0)],
    },
}
SINGLE_USE = {
    "rnn": "head.weight",
    "autoencoder": "decoder.bias",
    "tiny-gpt": "pos_emb.weight",
    "sharing": None,
}


@pytest.mark.parametrize("name", list(EXAMPLE_USES))
def test_examples_contributions_add_up_to_plain_pytorch_grads(name):
    engine = PassEngine(example_tree(name), seed=0)
    engine.backward()
    for path, expected in EXAMPLE_USES[name].items():
        if expected is not None:
            assert uses_of(engine, path) == expected
        assert_adds_up(engine, path)
    if SINGLE_USE[name]:
        assert SINGLE_USE[name] not in engine.contributions
    plain = plain_pytorch_grads(name)
    for path, value in grads_of(engine.module).items():
        np.testing.assert_allclose(value, plain[path], rtol=1e-6, atol=1e-7)


def test_rnn_steps_differ_and_later_passes_view_only_shared_parameters():
    engine = PassEngine(example_tree("rnn"), seed=0)
    engine.backward()
    engine.zero_grad()
    engine.backward()  # the second pass views only the parameters seen used twice
    assert_adds_up(engine, "cell.weight_ih")
    assert_adds_up(engine, "cell.weight_hh", each_sends=False)
    steps = [c.values for c in engine.contributions["cell.weight_hh"]]
    assert len(steps) == 5 and not np.allclose(steps[1], steps[4])
    assert not steps[0].any()  # the first step multiplies the zero initial state


class LayerReuse(nn.Module):
    """ALBERT-style: one layer applied three times in a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.layer = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for _ in range(3):
            x = x + self.layer(x)
        return self.out(x)


def test_a_layer_called_in_a_loop_has_one_site_with_three_calls():
    torch.manual_seed(0)
    net = LayerReuse()
    engine = PassEngine(module_tree(net), seed=3)
    engine.backward()
    assert uses_of(engine, "layer.0.weight") == [("layer.0", 0), ("layer.0", 1), ("layer.0", 2)]
    assert_adds_up(engine, "layer.0.weight")
    assert "embed.weight" not in engine.contributions
    reference = LayerReuse()
    reference.load_state_dict(net.state_dict())
    reference(InputSpec((2, 4)).make(3)).sum().backward()
    np.testing.assert_allclose(
        net.layer[0].weight.grad.numpy(), reference.layer[0].weight.grad.numpy(), rtol=1e-6
    )


class ParentUse(nn.Module):
    """Uses its child's bias again in its own forward, outside the child."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)) * self.lin.bias


def test_a_parameter_consumed_in_its_parents_forward_is_a_use_of_the_parent():
    torch.manual_seed(0)
    engine = PassEngine(module_tree(ParentUse(), InputSpec((2, 3))), seed=0)
    engine.backward()
    assert uses_of(engine, "lin.bias") == [("lin", 0), ("", 0)]
    assert_adds_up(engine, "lin.bias")
    assert "lin.weight" not in engine.contributions


class SometimesTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.twice = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.lin(x))
        return torch.tanh(self.lin(x)) if self.twice else x


def test_a_parameter_used_twice_only_in_a_later_pass_still_adds_up():
    torch.manual_seed(0)
    net = SometimesTwice()
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    engine.backward()  # used once: learned as a parameter that needs no view
    assert engine.contributions == {}
    net.twice = True
    engine.zero_grad()
    engine.backward()  # its first use now goes unviewed and gets what is left
    assert uses_of(engine, "lin.weight") == [("lin", 0), ("lin", 1)]
    assert_adds_up(engine, "lin.weight")
    fresh = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    saved = grads_of(net)
    fresh.zero_grad()
    fresh.backward()  # a first pass views every use directly
    np.testing.assert_array_equal(saved["lin.weight"], grads_of(net)["lin.weight"])
    for a, b in zip(
        engine.contributions["lin.weight"], fresh.contributions["lin.weight"], strict=True
    ):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


def test_a_second_use_appearing_without_zero_grad_keeps_the_sum_equal_to_grad():
    torch.manual_seed(0)
    net = SometimesTwice()
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    engine.backward()
    once = net.lin.weight.grad.clone()
    net.twice = True
    engine.backward()  # the earlier pass's gradient is filed under its one use
    assert uses_of(engine, "lin.weight") == [("lin", 0), ("lin", 1)]
    assert_adds_up(engine, "lin.weight")
    first = engine.contributions["lin.weight"][0].values
    assert not np.allclose(first, once.numpy())  # and this pass's first use added to it


def test_uses_are_counted_in_a_forward_pass_without_touching_grads():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    result = engine.forward()
    assert result.uses["2.weight"] == [("2", 0), ("4", 0)]
    assert "0.weight" not in result.uses
    assert all(p.grad is None for p in tree.module.parameters())
    expected = EXAMPLES["tied"].build(0)(InputSpec((2, 4)).make(0)).detach().numpy()
    np.testing.assert_array_equal(result.output, expected)  # like the notebook's net(X)
    assert result.output.shape == (2, 1)
    assert result.loss == pytest.approx(float(expected.sum()))
    assert result.input == "torch.rand(size=(2, 4))"


def test_without_recording_grads_are_the_same_and_contributions_wait_for_zero_grad():
    on = PassEngine(example_tree("tied"), seed=0)
    on.backward()
    off = PassEngine(example_tree("tied"), seed=0)
    off.configure(record=False)
    result = off.backward()
    for path, value in grads_of(on.module).items():
        np.testing.assert_array_equal(grads_of(off.module)[path], value)
    assert off.contributions == {} and result.uses == {}
    off.configure(record=True)
    result = off.backward()  # .grad holds an unrecorded pass: contributions would not add up
    assert off.contributions == {} and "Zero grad" in result.note
    off.zero_grad()
    off.backward()
    assert_adds_up(off, "2.weight")


def test_gradients_already_there_before_the_engine_are_not_claimed():
    tree = example_tree("tied")
    tree.module(InputSpec((2, 4)).make(1)).sum().backward()  # a notebook's own pass
    engine = PassEngine(tree, seed=0)
    engine.backward()
    assert engine.contributions == {} and engine.contributions_note


# -- outputs and losses ---------------------------------------------------------------------


class Wrapped(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.kind = kind

    def forward(self, x: torch.Tensor):
        y = self.lin(x)
        if self.kind == "tuple":
            return (y, y.sum())
        if self.kind == "nested":
            return ("label", [y])
        if self.kind == "dict":
            return {"logits": y, "hidden": x}
        if self.kind == "hf":
            return OrderedDict(loss=None, logits=y)  # what a ModelOutput subclasses
        if self.kind == "object":
            return type("CausalLMOutput", (), {"logits": y})()
        if self.kind == "none":
            return "no tensor here"
        if self.kind == "ints":
            return {"count": 3}
        if self.kind == "argmax":
            return y.argmax(dim=1)
        return y


@pytest.mark.parametrize(
    ("kind", "note"),
    [
        ("tuple", "tuple of 2; its first tensor (element 0)"),
        ("nested", "tuple of 2; its first tensor (inside element 1)"),
        ("dict", "its logits"),
        ("hf", "its logits"),
        ("object", "CausalLMOutput; its logits"),
    ],
)
def test_the_first_tensor_or_logits_of_a_structured_output_is_used_and_said(kind, note):
    torch.manual_seed(0)
    net = Wrapped(kind)
    engine = PassEngine(module_tree(net), seed=0)
    result = engine.backward()
    assert note in result.output_note
    x = InputSpec((2, 4)).make(0)
    np.testing.assert_allclose(result.output, net.lin(x).detach().numpy(), rtol=1e-6)
    assert result.loss == pytest.approx(float(net.lin(x).detach().sum()), rel=1e-5)


@pytest.mark.parametrize("kind", ["none", "ints"])
def test_an_output_without_a_tensor_is_a_clear_error(kind):
    engine = PassEngine(module_tree(Wrapped(kind)), seed=0)
    for action in (engine.forward, engine.backward):
        with pytest.raises(PassError, match="holds no tensor"):
            action()
    assert all(p.grad is None for p in engine.module.parameters())
    assert_no_hooks_left(engine.module)


def test_an_integer_output_shows_but_cannot_be_run_backward():
    engine = PassEngine(module_tree(Wrapped("argmax")), seed=0)
    assert engine.forward().output.dtype == np.int64
    with pytest.raises(PassError, match="int64, through which no gradient flows"):
        engine.backward()


def test_mse_uses_a_fixed_seeded_target_of_the_output_shape():
    tree = example_tree("mlp")
    engine = PassEngine(tree, seed=5)
    engine.configure(loss_name="mse")
    first = engine.backward().loss
    assert engine.backward().loss == first  # same target every pass
    output = tree.module(InputSpec((2, 4)).make(5)).detach()
    target = torch.randn(2, 1, generator=torch.Generator().manual_seed(6))
    assert first == pytest.approx(float(F.mse_loss(output, target)), rel=1e-6)
    engine.configure(seed=6)
    assert engine.backward().loss != first


def test_cross_entropy_needs_a_classifier_shaped_output():
    engine = PassEngine(example_tree("tiny-gpt"), seed=0)
    engine.configure(loss_name="cross_entropy")
    result = engine.backward()  # (2, 8, 32) scores: 32 classes in the last dimension
    assert 0 < result.loss < 2 * np.log(32) + 10
    mlp = PassEngine(example_tree("mlp"), seed=0)
    mlp.configure(loss_name="cross_entropy")
    with pytest.raises(PassError, match=r"classifier-shaped.*2x1.*sum or MSE"):
        mlp.backward()
    forward = mlp.forward()  # Forward still shows the output and says why there is no loss
    assert forward.loss is None and "classifier-shaped" in forward.note
    assert forward.output.shape == (2, 1)


# -- optimizer and training -----------------------------------------------------------------


def test_sgd_step_moves_each_parameter_by_minus_lr_times_grad():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    engine.configure(lr=0.5)
    no_grad = engine.step()
    assert "no gradient yet" in no_grad.note and no_grad.step == 0
    engine.backward()
    before = {k: v.detach().clone() for k, v in tree.module.state_dict().items()}
    grads = grads_of(tree.module)
    result = engine.step()
    assert result.step == 1
    for path, value in tree.module.state_dict().items():
        expected = before[path].numpy() - 0.5 * grads[path]
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_training_lowers_the_loss_and_stops_cleanly_on_cancel():
    engine = PassEngine(example_tree("mlp"), seed=0)
    engine.configure(loss_name="mse")
    engine.configure(optimizer_name="adam")
    engine.configure(watch={"0.weight"})
    results = list(engine.train(40))
    assert [r.step for r in results] == list(range(1, 41))
    assert results[-1].loss < results[0].loss / 2
    assert results[-1].watched["0.weight"].grad is not None
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3

    assert len(list(engine.train(None, cancelled=cancelled))) == 3
    assert engine.steps_taken == 43


def test_training_gives_way_before_each_step_and_each_module_call(monkeypatch):
    """`pause` is where a training worker waits while the window draws (ui/session.py): it
    is called inside each part of a step, so a long step does not hold the GIL from start
    to end: while hooking and unhooking the modules (every PAUSE_EVERY), before each
    recorded module call, after the forward and the backward pass, around the optimizer's
    step; a pass outside training calls nothing."""
    import sys

    from netexplorer.core import calls

    monkeypatch.setattr(calls, "PAUSE_EVERY", 1)
    engine = PassEngine(example_tree("tied"), seed=0)
    paused: list[str] = []
    list(engine.train(2, pause=lambda: paused.append(sys._getframe(1).f_code.co_name)))
    per_step = Counter(paused)
    # the Sequential, its first Linear, the shared Linear (once: one object), the last
    # Linear are hooked (the ReLUs hold nothing), and called: the shared Linear twice
    assert per_step == Counter(
        {
            "train": 2 * 3,
            "hook": 2 * 4,
            "__exit__": 2 * 4,
            "_pre": 2 * 5,
            "_forward_backward": 2 * 2,
        }
    )
    paused.clear()
    engine.backward()
    assert paused == []


def test_results_are_plain_data():
    engine = PassEngine(example_tree("tied"), seed=0)
    engine.configure(watch={"2.weight", "0.bias"})
    engine.configure(capture_activations=True)
    results = [engine.forward(), engine.backward(), engine.step(), *engine.train(2)]
    results += [engine.zero_grad(), engine.snapshot()]
    for result in results:
        assert isinstance(result, PassResult)
        for value in walk_values(result):
            assert value is None or isinstance(value, (np.ndarray, str, int, float, bool))
    watched = results[1].watched["2.weight"]
    assert [(c.site, c.call) for c in watched.contributions] == [("2", 0), ("4", 0)]
    assert watched.contribution_error < 1e-6
    assert results[1].watched["0.bias"].contributions is None


def test_activations_of_each_module_call_are_captured():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    engine.configure(capture_activations=True)
    result = engine.forward()
    net, x = tree.module, InputSpec((2, 4)).make(0)
    h = net[1](net[0](x))
    np.testing.assert_allclose(result.activations[("1", 0)], h.detach().numpy())
    np.testing.assert_allclose(result.activations[("2", 0)], net[2](h).detach().numpy())
    assert ("4", 0) in result.activations and ("", 0) in result.activations


def test_watching_an_unknown_path_is_refused():
    engine = PassEngine(example_tree("tied"), seed=0)
    with pytest.raises(UnknownPathError, match=r"2\.wieght"):
        engine.configure(watch={"2.wieght"})


def test_the_engine_runs_in_a_worker_thread():
    engine = PassEngine(example_tree("tied"), seed=0)
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(engine.train(3)))
    worker.start()
    worker.join(30)
    assert len(out) == 3 and out[-1].grad_norms["2.weight"] > 0
    assert_no_hooks_left(engine.module)


# -- bad input ------------------------------------------------------------------------------


class Boom(nn.Module):
    def __init__(self, at_call: int = 0) -> None:
        super().__init__()
        self.calls = 0
        self.at_call = at_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.at_call:
            raise ValueError("the boom layer exploded")
        return x


@pytest.mark.parametrize("record", [True, False])
def test_a_forward_that_raises_names_the_module(record):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Boom()))
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    engine.configure(record=record)
    with pytest.raises(PassError) as info:
        engine.backward()
    message = str(info.value)
    assert "module 1.1 (Boom, net[1][1])" in message and "the boom layer exploded" in message
    assert "\n" not in message
    assert all(p.grad is None for p in net.parameters())
    assert_no_hooks_left(net)


@pytest.mark.parametrize("record", [True, False])
def test_an_input_of_the_wrong_shape_names_the_module_and_what_it_takes(record):
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    engine.configure(record=record)
    engine.backward()
    good = grads_of(tree.module)
    engine.configure(input_spec=InputSpec((2, 5)))
    with pytest.raises(PassError) as info:
        engine.backward()
    message = str(info.value)
    assert "module 0 (Linear, net[0])" in message
    assert "torch.rand(size=(2, 5))" in message and "last dimension is 4" in message
    assert_no_hooks_left(tree.module)
    for path, value in grads_of(tree.module).items():
        np.testing.assert_array_equal(value, good[path])  # inspectable, unchanged
    engine.configure(input_spec=InputSpec((2, 4)))
    engine.backward()  # the engine goes on
    np.testing.assert_array_equal(
        tree.module.get_parameter("2.weight").grad.numpy(), 2 * good["2.weight"]
    )


def test_a_shared_module_failing_on_its_second_call_is_named_by_its_second_path():
    boom = Boom(at_call=1)
    net = nn.Sequential(nn.Linear(4, 4), boom, boom)
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    with pytest.raises(PassError, match=r"module 2 \(Boom, net\[2\]\)"):
        engine.forward()


def test_a_loss_that_is_not_one_number_is_refused_before_backward():
    engine = PassEngine(example_tree("tied"), seed=0)
    engine.configure(loss_fn=lambda output, target: output)  # forgot to reduce
    with pytest.raises(PassError, match=r"one number.*2x1"):
        engine.backward()
    assert all(p.grad is None for p in engine.module.parameters())
    assert_no_hooks_left(engine.module)


def test_a_nan_loss_names_the_parameter_and_leaves_grads_alone():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    engine.backward()
    good = grads_of(tree.module)
    with torch.no_grad():
        tree.module[0].bias[1] = float("nan")
    with pytest.raises(PassError, match=r"loss is nan.*parameter 0\.bias holds 1 NaN"):
        engine.backward()
    forward = engine.forward()  # Forward shows the NaN and says where it comes from
    assert np.isnan(forward.loss) and "parameter 0.bias holds 1 NaN" in forward.note
    for path, value in grads_of(tree.module).items():
        np.testing.assert_array_equal(value, good[path])
    assert_adds_up(engine, "2.weight")  # contributions still match the grads


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this backward cannot run")


class BreaksInBackward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = FailingBackward.apply(h) if self.fail else h
        return self.b(h) + self.b(x)  # b's gradient arrives before the failure


def test_a_failed_backward_puts_every_grad_back():
    torch.manual_seed(0)
    net = BreaksInBackward()
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    engine.backward()
    good = grads_of(net)
    net.fail = True
    with pytest.raises(PassError, match=r"backward failed.*this backward cannot run.*as they were"):
        engine.backward()
    for path, value in grads_of(net).items():
        np.testing.assert_array_equal(value, good[path])
    assert engine.backward_passes == 1
    assert_adds_up(engine, "b.weight")
    engine.zero_grad()
    with pytest.raises(PassError):
        engine.backward()
    assert all(p.grad is None for p in net.parameters())  # back to no gradient at all


class InfiniteSlope(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.lin(x) * 0)  # finite output, infinite slope at 0


def test_a_non_finite_gradient_is_refused_and_undone():
    engine = PassEngine(module_tree(InfiniteSlope(), InputSpec((2, 2))), seed=0)
    with pytest.raises(PassError, match="NaN or infinite gradient for lin"):
        engine.backward()
    assert all(p.grad is None for p in engine.module.parameters())


def test_training_stops_cleanly_at_a_failing_step():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), Boom(at_call=2))
    engine = PassEngine(module_tree(net, InputSpec((2, 4))), seed=0)
    done = []
    with pytest.raises(PassError, match="exploded"):
        for result in engine.train(5):
            done.append(result)
    assert len(done) == 2 and engine.steps_taken == 2
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())  # zero grad ran, then the pass failed
    assert_no_hooks_left(net)


def test_a_meta_model_and_a_checkpoint_have_no_passes():
    with torch.device("meta"):
        net = nn.Linear(4, 2)
    with pytest.raises(PassError, match="meta device"):
        PassEngine(module_tree(net), seed=0).forward()
    tree = module_tree(nn.Linear(4, 2))
    tree.module = None
    with pytest.raises(PassError, match="live model"):
        PassEngine(tree)


# -- input inference ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "spec"),
    [
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU()), InputSpec((2, 4))),
        (nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU()), InputSpec((2, 3, 28, 28))),
        (nn.Conv1d(5, 2, 3), InputSpec((2, 5, 32))),
        (nn.Embedding(10, 4), InputSpec((2, 8), "tokens", high=10)),
        (nn.RNNCell(6, 3), InputSpec((2, 6))),
        (nn.LSTM(3, 4, batch_first=True), InputSpec((2, 5, 3))),
    ],
)
def test_input_inference(module, spec):
    assert infer_input_spec(module) == spec
    engine = PassEngine(module_tree(module), seed=0)
    assert engine.input_spec == spec
    engine.forward()  # the inferred batch runs


def test_an_input_that_cannot_be_inferred_is_asked_for():
    engine = PassEngine(module_tree(nn.Sequential(nn.ReLU())), seed=0)
    with pytest.raises(PassError, match="give one with --input"):
        engine.forward()
    engine.configure(input_spec=InputSpec((2, 3), "normal"))
    assert engine.forward().output.shape == (2, 3)


def test_the_sources_default_input_wins_over_inference():
    engine = PassEngine(example_tree("rnn"), seed=0)  # RNNCell alone would say (2, 4)
    assert engine.input_spec == InputSpec((2, 5, 4))


def test_the_tracker_is_thread_local():
    tree = example_tree("tied")
    engine = PassEngine(tree, seed=0)
    tracker = engine.uses.tracker(engine._calls, grad=True)
    seen = []
    with engine._calls, tracker:
        worker = threading.Thread(target=lambda: seen.append(torch._C._len_torch_function_stack()))
        worker.start()
        worker.join()
    assert seen == [0]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_model_runs_but_says_why_it_has_no_contributions():
    tree = module_tree(torch.jit.script(EXAMPLES["tied"].build(0)), InputSpec((2, 4)))
    engine = PassEngine(tree, seed=0)
    engine.configure(capture_activations=True)
    result = engine.backward()
    np.testing.assert_allclose(
        grads_of(tree.module)["2.weight"], plain_pytorch_grads("tied")["2.weight"], rtol=1e-6
    )
    assert engine.contributions == {} and "TorchScript" in result.note


def test_snapshots_share_norms_and_uses_until_a_pass_changes_them():
    """A selection's snapshot carries every gradient norm and every shared parameter's uses;
    they are made once per change, not per snapshot, and never stale."""
    engine = PassEngine(tree_from_module(EXAMPLES["tied"].build(0)), seed=0)
    first, again = engine.snapshot(), engine.snapshot()
    assert first.grad_norms is again.grad_norms and first.uses is again.uses
    assert all(n is None for n in first.grad_norms.values())
    once = engine.backward()
    assert once.grad_norms is not first.grad_norms  # the gradients changed
    assert once.grad_norms["2.weight"] == pytest.approx(
        float(engine.tree.module[2].weight.grad.norm())
    )
    assert len(once.uses["2.weight"]) == 2  # used twice: both uses listed
    assert engine.snapshot().grad_norms is once.grad_norms
    engine.backward()
    twice = engine.snapshot()
    assert twice.grad_norms["2.weight"] == pytest.approx(2 * once.grad_norms["2.weight"])
    assert engine.zero_grad().grad_norms["2.weight"] is None

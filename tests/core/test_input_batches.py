"""--input (and the app's input field): shapes and kinds, several positional arguments,
keyword arguments, another argument's tensor; what the JSON says the passes ran with (input,
loss, training mode and --eval); identical tensors and the optimizer state per parameter."""

from __future__ import annotations

import json

import pytest
import torch

from netexplorer.cli import main
from netexplorer.core.input_parse import InputSyntaxError, parse_input
from netexplorer.core.inputs import InputBatch, InputSpec
from netexplorer.core.passes import PassEngine
from netexplorer.core.sources.factory import build_with_weights


@pytest.mark.parametrize(
    "text",
    [
        "2,3,32,32",
        "normal:2,16",
        "tokens:2,8<1000",
        "2,4 tokens:2,5<10",
        "input_ids=tokens:2,8<50 labels=@input_ids",
        "2,4 tokens:2,5<10 scale=normal:1",
    ],
)
def test_the_syntax_reads_back_what_it_writes(text):
    batch = parse_input(text)
    assert parse_input(batch.spec_text()) == batch
    assert batch.spec_text() == text


def test_shapes_with_x_and_spaces_and_one_tensor_as_an_input_spec():
    batch = parse_input(" 2x3x32x32 ")
    assert batch.single == InputSpec((2, 3, 32, 32))
    (x,), kwargs = batch.make(5)
    assert not kwargs and torch.equal(x, InputSpec((2, 3, 32, 32)).make(5))
    assert InputBatch.of(InputSpec((2, 4))).single == InputSpec((2, 4))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("foo:2,3", "unknown kind 'foo'"),
        ("2,a", "expected a shape such as"),
        ("tokens:2,8", "tokens need an upper bound"),
        ("2,3<5", "an upper bound <N is for tokens"),
        ("labels=@input_ids", "@input_ids names no other argument"),
        ("x=2,3 4,5", "positional inputs come before named ones"),
        ("0,3", "must be positive"),
    ],
)
def test_a_bad_input_says_what_is_wrong_in_one_line(text, says):
    with pytest.raises(InputSyntaxError) as info:
        parse_input(text)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_labels_at_input_ids_are_the_same_tensor():
    _, kwargs = parse_input("input_ids=tokens:2,8<50 labels=@input_ids").make(0)
    assert kwargs["labels"] is kwargs["input_ids"]


def test_positional_and_keyword_arguments_reach_forward():
    tree = build_with_weights("input_models:two_inputs", None)
    engine = PassEngine(tree, input_spec=parse_input("2,4 tokens:2,5<10 scale=normal:1"))
    result = engine.backward()
    (a, b), kwargs = engine.input_spec.make(0)
    expected = tree.module(a, b, scale=kwargs["scale"])
    torch.testing.assert_close(torch.from_numpy(result.output), expected.detach())
    assert result.input == (
        "torch.rand(size=(2, 4)), torch.randint(0, 10, size=(2, 5)), scale=torch.randn(size=(1,))"
    )


def test_cli_input_and_what_the_json_says(capsys):
    argv = ["example:mlp", "--input", "3,4", "--backward", "1", "--json"]
    assert main(argv) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert meta["input"]["shape"] == [3, 4] and meta["input"]["source"] == "given"
    assert meta["input"]["python"] == "torch.rand(size=(3, 4))"
    assert meta["loss"] == {"name": "sum", "text": "the sum of the output"}


def test_cli_input_of_the_wrong_shape_is_one_line(capsys):
    assert main(["example:mlp", "--input", "3,5", "--backward", "1", "--summary"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.rand(size=(3, 5))" in err
    assert main(["example:mlp", "--input", "tokens:3", "--summary"]) == 2
    assert "upper bound" in capsys.readouterr().err


def test_training_mode_says_dropout_and_eval_turns_it_off(capsys):
    assert main(["--model", "input_models:with_dropout", "--json"]) == 0
    mode = json.loads(capsys.readouterr().out)["metadata"]["training_mode"]
    assert mode["training"] and mode["dropout_active"] and mode["dropout_modules"] == ["1"]
    assert "new mask" in mode["note"]
    assert (
        main(["--model", "input_models:with_dropout", "--eval", "--backward", "2", "--json"]) == 0
    )
    mode = json.loads(capsys.readouterr().out)["metadata"]["training_mode"]
    assert not mode["training"] and not mode["dropout_active"]


def test_eval_makes_repeated_passes_equal():
    tree = build_with_weights("input_models:with_dropout", None)
    engine = PassEngine(tree)
    engine.configure(eval_mode=True)
    first, second = engine.forward().output, engine.forward().output
    assert not tree.module.training
    assert (first == second).all()
    engine.configure(eval_mode=False)
    engine.forward()
    assert tree.module.training


def test_json_lists_identical_tensors_and_optimizer_state(tmp_path, capsys):
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    with torch.no_grad():
        net[1].weight.copy_(net[0].weight)  # equal values, two storages
    path = tmp_path / "train.pt"
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, path)
    assert main([str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    weight = next(p for p in out["parameters"] if p["path"] == "model.0.weight")
    assert weight["kind"] == "parameter" and weight["requires_grad"] is True
    state = weight["optimizer_state"]
    assert state["exp_avg"]["shape"] == [3, 3] and "norm" in state["exp_avg"]["stats"]
    assert state["step"]["value"] == 1.0
    groups = [g["paths"] for g in out["identical"]]
    assert ["model.0.weight", "model.1.weight"] in groups

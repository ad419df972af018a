"""The command-line contract of DESIGN.md: --json, --summary, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netexplorer.cli import main
from netexplorer.example_nets import nested, tied

ROOT = Path(__file__).resolve().parents[2]


def run_json(capsys, *args):
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_nested_json_lists_the_notebook_state_dict(capsys):
    out = run_json(capsys, "example:nested")
    assert out["format"] == "netexplorer/1"
    expected = [(k, list(v.shape)) for k, v in nested().state_dict().items()]
    assert [(p["path"], p["shape"]) for p in out["parameters"]] == expected
    bias = next(p for p in out["parameters"] if p["path"] == "0.block 1.0.bias")
    assert bias["access"] == "net[0][1][0].bias"
    assert bias["dtype"] == "float32" and bias["numel"] == 8 and bias["requires_grad"]
    assert set(bias["stats"]) >= {"min", "max", "mean", "std", "norm", "sum"}
    assert bias["grad"] is None  # no backward pass yet: the notebook's NoneType


def test_tied_json_ties_aliases_and_count(capsys):
    out = run_json(capsys, "example:tied")
    assert [set(t["paths"]) for t in out["ties"]] == [
        {"2.weight", "4.weight"},
        {"2.bias", "4.bias"},
    ]
    modules = {m["path"]: m for m in out["modules"]}
    assert modules["4"]["shared_with"] == ["2"] and modules["4"]["access"] == "net[4]"
    assert out["total_parameters"] == sum(p.numel() for p in tied().parameters()) == 121
    by_path = {p["path"]: p for p in out["parameters"]}
    assert by_path["2.weight"]["tie"] == by_path["4.weight"]["tie"] == 0
    assert by_path["0.weight"]["tie"] is None
    assert by_path["2.weight"]["stats"] == by_path["4.weight"]["stats"]


def test_seed_changes_values_reproducibly(capsys):
    a = run_json(capsys, "example:mlp", "--seed", "1")
    b = run_json(capsys, "example:mlp", "--seed", "1")
    c = run_json(capsys, "example:mlp", "--seed", "2")
    stats = lambda out: [p["stats"] for p in out["parameters"]]  # noqa: E731
    assert stats(a) == stats(b) != stats(c)


def test_summary_reads_like_print_net(capsys):
    assert main(["example:nested", "--summary"]) == 0
    summary = capsys.readouterr().out
    lines = iter(summary.splitlines())
    for expected in repr(nested()).splitlines():  # every print(net) line, in order
        assert any(expected.strip() in line for line in lines), expected
    assert "[8, 4]" in summary and "float32" in summary
    assert "Total parameters: 309" in summary
    assert "tied" not in summary  # no tie note where there is no tie


def test_summary_marks_ties_and_shared_modules(capsys):
    assert main(["example:tied", "--summary"]) == 0
    summary = capsys.readouterr().out
    line_4 = next(line for line in summary.splitlines() if line.strip().startswith("(4):"))
    assert line_4.endswith("72  [same module as 2]")
    assert summary.count("<tie 0: 2.weight = 4.weight>") == 2
    assert "Total parameters: 121 (a tied tensor counted once)" in summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["example:nope", "--summary"], "unknown example 'nope'; the examples are: mlp"),
        (["example:tied", "--select", "9.weight", "--json"], "no module or tensor at path"),
        (["example:tied", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--summary"], "need a SOURCE"),
        (["example:tied", "--seed", "x"], "invalid int value"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(capsys, args, message):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err
    assert captured.err.startswith("netexplorer: ")


def test_the_installed_command_exits_2_without_traceback():
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "example:nope", "--summary"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "netexplorer: unknown example 'nope'; the examples are: "
        "mlp, nested, tied, sharing, cnn, rnn, autoencoder, tiny-gpt, deep-gpt"
    ]

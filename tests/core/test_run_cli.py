"""`netexplorer RUN --timeline --json`, `--run A B C`, and their one-line errors."""

from __future__ import annotations

import json

import pytest
import training_runs as tr

from netexplorer.cli import main


@pytest.fixture(scope="module")
def saved():
    return tr.train()


def timeline_json(capsys, *args):
    assert main([*args, "--timeline", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_timeline_json_gives_steps_and_per_tensor_changes(capsys, saved, tmp_path):
    folder = tmp_path / "run"
    tr.write_hf_checkpoints(folder, saved)
    out = timeline_json(capsys, str(folder))
    assert out["format"] == "netexplorer/1"
    assert out["metadata"]["reader"] == "run"
    timeline = out["timeline"]
    assert timeline["ordered_by"] == "step"
    assert timeline["order"] == "ordered by global step, read from trainer_state.json (4)"
    assert [s["step"] for s in timeline["steps"]] == [3, 6, 9, 12]
    assert [s["name"] for s in timeline["steps"]] == [f"checkpoint-{s.step}" for s in saved]
    by_path = {t["path"]: t for t in timeline["tensors"]}
    assert set(by_path) == set(saved[-1].state)
    weight = by_path["body.2.weight"]
    assert weight["present"] == [True] * 4
    assert weight["relative_change"][0] is None
    for t in range(1, 4):
        expected = tr.relative_change(
            saved[t - 1].state["body.2.weight"], saved[t].state["body.2.weight"]
        )
        assert weight["relative_change"][t] == pytest.approx(expected, rel=1e-5)
    assert [s["norm"] for s in weight["stats"]] == pytest.approx(
        [float(s.state["body.2.weight"].double().norm()) for s in saved], rel=1e-6
    )
    head = by_path["head.bias"]  # appears at the second checkpoint
    assert head["present"] == [False, True, True, True]
    assert head["relative_change"][:2] == [None, None] and head["stats"][0] is None
    # the tree itself is the latest checkpoint's
    parameters = {p["path"]: p for p in out["parameters"]}
    assert parameters["head.bias"]["stats"]["norm"] == pytest.approx(
        float(saved[-1].state["head.bias"].double().norm()), rel=1e-6
    )


def test_run_lists_checkpoints_in_any_order(capsys, saved, tmp_path):
    paths = tr.write_torch_per_epoch(tmp_path / "run", saved)
    shuffled = [str(p) for p in (paths[2], paths[0], paths[3], paths[1])]
    out = timeline_json(capsys, "--run", *shuffled)
    assert [s["epoch"] for s in out["timeline"]["steps"]] == [1, 2, 3, 4]
    assert main(["--run", *shuffled, "--summary"]) == 0
    text = capsys.readouterr().out
    assert "Training run: 4 checkpoints, ordered by epoch, read from the file (4)" in text
    assert "head.weight appears at epoch 2" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeline", "--json"], "--timeline needs a SOURCE folder"),
        (["example:tied", "--run", "a.pt"], "not two of them"),
    ],
)
def test_usage_mistakes_get_one_line(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_timeline_of_a_file_says_what_it_needs(capsys, saved, tmp_path):
    path = tr.write_torch_per_epoch(tmp_path / "run", saved)[0]
    assert main([str(path), "--timeline", "--json"]) == 2
    err = capsys.readouterr().err
    assert "--timeline needs a training run: a folder of checkpoints" in err
    assert err.count("\n") == 1

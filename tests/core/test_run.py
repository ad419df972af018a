"""A training run as a source: runs written at test time by a tiny training loop in three
styles (torch.save per epoch, Hugging Face checkpoint folders, Lightning names), their
order, a key that appears mid-run, and relative changes and statistics equal to those
computed directly with torch."""

from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np
import pytest
import torch
import training_runs as tr
from safetensors.torch import save_file

from netexplorer.core.errors import SourceError
from netexplorer.core.movement import difference, iter_movement, movement
from netexplorer.core.run import AbsentHandle, open_run
from netexplorer.core.run_folder import is_run_folder
from netexplorer.core.sources import open_source, reader_for
from netexplorer.core.tasks import run_to_end

WRITERS = {
    "torch.save per epoch": tr.write_torch_per_epoch,
    "Hugging Face checkpoints": tr.write_hf_checkpoints,
    "Lightning": tr.write_lightning,
}


@pytest.fixture(scope="module")
def saved():
    return tr.train()


@pytest.fixture(params=list(WRITERS))
def run_folder(request, saved, tmp_path):
    folder = tmp_path / "run"
    WRITERS[request.param](folder, saved)
    return request.param, folder


def key_of(style: str, path: str) -> str:
    """The model's key as the run names it (a LightningModule keeps its `model.`)."""
    return f"model.{path}" if style == "Lightning" else path


def test_a_run_folder_opens_as_a_run_in_step_order(run_folder, saved):
    style, folder = run_folder
    assert is_run_folder(str(folder))
    assert reader_for(str(folder)).name == "run"
    tree = open_source(str(folder))
    run = tree.run
    assert len(run) == len(saved)
    if style == "torch.save per epoch":
        assert [c.info.epoch for c in run.checkpoints] == [s.epoch for s in saved]
        assert run.note == "ordered by epoch, read from the file (4)"
    else:
        assert [c.info.step for c in run.checkpoints] == [s.step for s in saved]
        where = "trainer_state.json" if style == "Hugging Face checkpoints" else "the file"
        assert run.note == f"ordered by global step, read from {where} (4)"
    assert tree.metadata["format"] == "training run"
    assert tree.metadata["order"] == run.note


def test_a_key_that_appears_mid_run_is_shown_as_such(run_folder):
    style, folder = run_folder
    tree = open_source(str(folder))
    run = tree.run
    head = key_of(style, "head.weight")
    assert run.presence(head) == [False, True, True, True]
    assert run.appearing() == {head: 1, key_of(style, "head.bias"): 1}
    assert run.vanishing() == {}
    assert head in tree.metadata["keys_appearing"]
    run.place_step(tree, 0)
    handle = tree.tensors[head].handle
    assert isinstance(handle, AbsentHandle) and not handle.has_values
    assert handle.reason.endswith(f"it appears at {run.checkpoints[1].label}")
    assert tree.tensors[head].shape == (2, 3)  # the shape where it is, for the tree
    run.place_step(tree, 2)
    np.testing.assert_array_equal(tree.tensors[head].handle.array(), run.handle(head, 2).array())


def test_relative_changes_and_statistics_equal_torch(run_folder, saved):
    style, folder = run_folder
    run = open_source(str(folder)).run
    table = movement(run)
    for path in saved[-1].state:
        row = table.tensors[key_of(style, path)]
        for t in range(1, len(saved)):
            if path not in saved[t - 1].state:
                assert row.relative_change[t] is None
                continue
            expected = tr.relative_change(saved[t - 1].state[path], saved[t].state[path])
            assert row.relative_change[t] == pytest.approx(expected, rel=1e-5)
        for t, s in enumerate(saved):
            if path not in s.state:
                assert row.stats[t] is None
                continue
            w = s.state[path].double()
            stats = row.stats[t]
            assert stats.norm == pytest.approx(float(torch.linalg.vector_norm(w)), rel=1e-6)
            assert stats.max_abs == pytest.approx(float(w.abs().max()), rel=1e-7)
            assert (stats.min, stats.max) == (float(w.min()), float(w.max()))
            assert stats.nan == 0
        assert row.total == pytest.approx(sum(r for r in row.relative_change if r is not None))


def test_every_checkpoint_tensor_is_read_as_saved(run_folder, saved):
    style, folder = run_folder
    run = open_source(str(folder)).run
    for t, s in enumerate(saved):
        for path, value in s.state.items():
            np.testing.assert_array_equal(run.handle(key_of(style, path), t).array(), value.numpy())


def test_training_checkpoints_bring_their_optimizer_state_per_step(saved, tmp_path):
    tree = open_source(str(tr.write_torch_per_epoch(tmp_path / "run", saved)[0].parent))
    run = tree.run
    for t in (0, 3):
        run.place_step(tree, t)
        state = tree.optimizer_state["body.0.weight"]
        expected = saved[t].optimizer["state"][0]["exp_avg"]
        np.testing.assert_array_equal(state["exp_avg"].array(), expected.numpy())


def test_a_list_of_files_in_any_order_and_mixed_formats(saved, tmp_path):
    hf = tr.write_hf_checkpoints(tmp_path / "hf", saved[:2])
    lightning = tr.write_lightning(tmp_path / "pl", saved[2:3], prefix="")
    late = tmp_path / "late.pt"
    torch.save({"model": saved[3].state, "step": saved[3].step}, late)
    specs = [str(late), str(lightning[0]), str(hf[1]), str(hf[0])]
    tree = open_run(specs, source=" ".join(specs))
    run = tree.run
    assert [c.info.step for c in run.checkpoints] == [3, 6, 9, 12]
    assert [c.reader for c in run.checkpoints] == ["huggingface", "huggingface", "torch", "torch"]
    assert run.note == ("ordered by global step, read from trainer_state.json (2) and the file (2)")
    assert set(tree.tensors) == set(saved[-1].state)  # the same keys whatever the format
    table = movement(run)
    expected = tr.relative_change(saved[2].state["body.0.weight"], saved[3].state["body.0.weight"])
    assert table.tensors["body.0.weight"].relative_change[3] == pytest.approx(expected, rel=1e-5)


def test_checkpoints_without_steps_are_placed_last_and_the_note_says_so(saved, tmp_path):
    folder = tmp_path / "run"
    tr.write_lightning(folder, saved[:3])
    torch.save({"state_dict": saved[3].state}, folder / "last.ckpt")  # no step inside
    tree = open_source(str(folder))
    assert [c.name for c in tree.run.checkpoints][-1] == "last.ckpt"
    assert tree.run.note.endswith("; last.ckpt has none and comes last")


def test_a_damaged_checkpoint_is_skipped_and_listed(saved, tmp_path):
    paths = tr.write_torch_per_epoch(tmp_path / "run", saved)
    paths[-1].write_bytes(paths[-1].read_bytes()[:100])  # a save cut short
    tree = open_source(str(tmp_path / "run"))
    assert len(tree.run) == 3
    assert tree.run.skipped[0][0] == "epoch_4.pt"
    assert "epoch_4.pt" in tree.metadata["skipped"]


def test_a_run_with_nothing_readable_says_so(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("epoch_1.pt", "epoch_2.pt"):
        (folder / name).write_bytes(b"garbage" * 20)
    with pytest.raises(SourceError, match="no checkpoint could be read"):
        open_source(str(folder))


def test_folders_that_are_not_runs_keep_opening_as_before(saved, tmp_path):
    hf = tr.write_hf_checkpoints(tmp_path / "hf", saved[:1])
    assert reader_for(str(hf[0])).name == "huggingface"  # one checkpoint folder
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("a.safetensors", "b.safetensors"):  # no numbers: not a run
        save_file({"w": torch.zeros(2)}, plain / name)
    assert not is_run_folder(str(plain))
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        save_file({name: torch.zeros(2)}, shards / name)
    assert not is_run_folder(str(shards))


def test_a_trainer_output_folder_with_its_final_weights(saved, tmp_path):
    folder = tmp_path / "output"
    tr.write_hf_checkpoints(folder, saved[:3])
    save_file(saved[3].state, folder / "model.safetensors")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": saved[3].step}))
    tree = open_source(str(folder))
    assert [c.info.step for c in tree.run.checkpoints] == [3, 6, 9, 12]
    assert tree.run.checkpoints[-1].name == "model.safetensors"


def test_chunks_and_arrays_give_the_same_movement(saved, tmp_path):
    """A tiny chunk crosses many chunk borders (file ranges); the legacy format has no byte
    ranges and goes through the handles."""
    ranged = open_source(str(tr.write_hf_checkpoints(tmp_path / "hf", saved)[0].parent)).run
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for s in saved:
        torch.save(s.state, legacy / f"epoch_{s.epoch}.pt", _use_new_zipfile_serialization=False)
    through_handles = open_source(str(legacy)).run
    a = run_to_end(iter_movement(ranged, chunk=5))
    b = run_to_end(iter_movement(through_handles, chunk=7))
    for path in ranged.paths:
        for x, y in zip(
            a.tensors[path].relative_change, b.tensors[path].relative_change, strict=True
        ):
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-6)


def test_nan_and_bfloat16_in_a_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    w0 = torch.randn(6, 5).to(torch.bfloat16)
    w1 = (w0.float() * 1.5).to(torch.bfloat16)
    w2 = w1.clone()
    w2[1, 2] = float("nan")
    w2[0, 0] = float("inf")
    for i, w in enumerate((w0, w1, w2)):
        save_file({"w": w}, folder / f"step_{i}.safetensors")
    table = movement(open_source(str(folder)).run)
    row = table.tensors["w"]
    assert row.relative_change[1] == pytest.approx(
        tr.relative_change(w0.float(), w1.float()), rel=1e-6
    )
    assert row.relative_change[2] is None  # not finite: unknown, never a number
    assert (row.stats[2].nan, row.stats[2].inf) == (1, 1)
    finite = w2.float()[torch.isfinite(w2.float())].double()
    assert row.stats[2].norm == pytest.approx(float(finite.norm()), rel=1e-6)


def test_zero_before_is_an_infinite_change(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i, value in enumerate((0.0, 0.0, 0.5)):
        save_file({"bias": torch.full((3,), value)}, folder / f"step_{i}.safetensors")
    row = movement(open_source(str(folder)).run).tensors["bias"]
    assert row.relative_change == [None, 0.0, math.inf]
    assert row.as_dict()["relative_change"] == [None, 0.0, "inf"]
    assert row.total == 0.0  # infinite steps are not added up


def test_the_difference_between_two_steps(run_folder, saved):
    style, folder = run_folder
    run = open_source(str(folder)).run
    path = key_of(style, "body.2.weight")
    diff = difference(run.handle(path, 3), run.handle(path, 1))
    expected = saved[3].state["body.2.weight"] - saved[1].state["body.2.weight"]
    np.testing.assert_allclose(diff, expected.numpy(), rtol=1e-6, atol=1e-7)
    assert diff.dtype == np.float32


def open_files_under(folder) -> list[str]:
    """Files of `folder` this process holds open (Linux /proc)."""
    links = (os.path.join("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd"))
    targets = []
    for link in links:
        with contextlib.suppress(OSError):
            targets.append(os.readlink(link))
    return [t for t in targets if t.startswith(str(folder))]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_cancelling_stops_between_chunks_and_closes_files(saved, tmp_path):
    run = open_source(str(tr.write_hf_checkpoints(tmp_path / "hf", saved)[0].parent)).run
    work = iter_movement(run, chunk=2)
    fractions = [next(work) for _ in range(3)]
    assert open_files_under(tmp_path / "hf")  # reading: the checkpoints are open
    work.close()  # what a worker does when cancelled
    assert all(0 < f < 1 for f, _ in fractions)
    assert open_files_under(tmp_path / "hf") == []


def test_distributed_checkpoint_step_folders(saved, tmp_path):
    import warnings

    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "run"
    for s in saved:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
            dcp.save({"model": dict(s.state)}, checkpoint_id=str(folder / f"step_{s.step}"))
    tree = open_source(str(folder))
    run = tree.run
    assert [c.reader for c in run.checkpoints] == ["dcp"] * 4
    assert [c.info.step for c in run.checkpoints] == [3, 6, 9, 12]
    assert run.note == "ordered by global step, read from the name (4)"
    assert run.appearing() == {"model.head.weight": 1, "model.head.bias": 1}
    row = movement(run).tensors["model.body.0.weight"]
    expected = tr.relative_change(saved[0].state["body.0.weight"], saved[1].state["body.0.weight"])
    assert row.relative_change[1] == pytest.approx(expected, rel=1e-5)


def test_a_step_lets_go_of_the_maps_of_the_checkpoints_it_leaves(saved, tmp_path):
    """Pages of checkpoints shown before leave the process (else stepping through a run
    keeps a tensor's size resident per checkpoint); arrays still shown stay readable."""
    tree = open_source(str(tr.write_hf_checkpoints(tmp_path / "hf", saved)[0].parent))
    run = tree.run
    run.place_step(tree, 0)
    shown = tree.tensors["body.0.weight"].handle.array()
    first_file = run.checkpoints[0].handles["body.0.weight"].file
    assert first_file.is_mapped
    run.place_step(tree, 1)
    assert not first_file.is_mapped
    np.testing.assert_array_equal(shown, saved[0].state["body.0.weight"].numpy())  # still valid
    np.testing.assert_array_equal(  # and the file maps again when read again
        run.handle("body.0.weight", 0).array(), saved[0].state["body.0.weight"].numpy()
    )


def test_a_key_that_vanishes_says_when_it_went(saved, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for s in saved:
        state = {k: v for k, v in s.state.items() if not (s.epoch == 4 and k == "body.0.bias")}
        save_file(state, folder / f"epoch_{s.epoch}.safetensors")
    tree = open_source(str(folder))
    run = tree.run
    assert run.vanishing() == {"body.0.bias": 3}
    assert tree.metadata["keys_vanishing"] == {"body.0.bias": "gone from epoch 4"}
    assert not tree.tensors["body.0.bias"].handle.has_values  # the tree opens at the latest
    assert tree.tensors["body.0.bias"].handle.reason.endswith("it is gone after epoch 3")
    row = movement(run).tensors["body.0.bias"]
    assert row.present == [True, True, True, False] and row.stats[3] is None
    assert row.relative_change[3] is None

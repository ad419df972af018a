"""A live model's history: snapshots taken while it trains, kept in a buffer bounded in
bytes and in number, offered as a run for the time slider."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netexplorer.core.live_run import SnapshotBuffer, take_snapshot
from netexplorer.core.movement import movement
from netexplorer.core.tree import tree_from_module


def tied_net() -> nn.Module:
    torch.manual_seed(0)
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), shared, nn.ReLU(), shared, nn.Linear(8, 2))


def test_a_snapshot_copies_every_tensor_once_and_read_only():
    net = tied_net()
    tree = tree_from_module(net)
    snapshot = take_snapshot(tree, 7)
    assert set(snapshot.values) == set(net.state_dict())
    assert snapshot.values["1.weight"] is snapshot.values["3.weight"]  # a tie, copied once
    assert snapshot.nbytes == sum(p.numel() * 4 for p in net.parameters())
    with torch.no_grad():
        net[0].weight += 1  # the model moves on; the snapshot does not
    assert not np.array_equal(snapshot.values["0.weight"], net[0].weight.detach().numpy())
    with pytest.raises(ValueError):
        snapshot.values["0.weight"][0, 0] = 5


def test_a_snapshot_of_many_tensors_gives_way_every_few_tensors():
    """Taken by the training worker: it pauses every PAUSE_EVERY tensors (the GUI's turn on
    the GIL while 2,000 tensors are copied), and copies the same as without pauses."""
    from torch import nn

    from netexplorer.core import live_run

    net = nn.Sequential(*(nn.Linear(2, 2) for _ in range(100)))  # 200 tensors
    tree = tree_from_module(net)
    paused: list[int] = []
    snapshot = take_snapshot(tree, 1, pause=lambda: paused.append(1))
    assert len(paused) == 200 // live_run.PAUSE_EVERY
    plain = take_snapshot(tree, 1)
    assert snapshot.values.keys() == plain.values.keys()
    assert all(np.array_equal(snapshot.values[k], plain.values[k]) for k in plain.values)


def train_with_history(buffer: SnapshotBuffer, steps: int) -> list[int]:
    """Train the tied net, snapshotting when the buffer asks; the steps snapshotted."""
    net = tied_net()
    tree = tree_from_module(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(5, 4), torch.randn(5, 2)
    taken = []
    for step in range(steps + 1):
        if buffer.due(step):
            buffer.add(take_snapshot(tree, step))
            taken.append(step)
            assert buffer.nbytes <= buffer.max_bytes  # bounded at every moment
            assert len(buffer.snapshots) <= buffer.max_snapshots
        optimizer.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    return taken


def test_the_history_stays_bounded_in_bytes_and_keeps_its_whole_span():
    one = take_snapshot(tree_from_module(tied_net()), 0).nbytes
    buffer = SnapshotBuffer(every=2, max_bytes=5 * one, max_snapshots=100)
    taken = train_with_history(buffer, 400)
    steps = [s.step for s in buffer.snapshots]
    assert buffer.nbytes <= 5 * one and len(steps) <= 5
    assert steps[0] == 0 and steps[-1] == taken[-1]  # the first and the newest are kept
    assert steps == sorted(steps)
    assert buffer.every > 2  # thinned out: the interval doubled
    assert len(taken) < 400 // 2  # and fewer snapshots were taken as it grew


def test_the_history_is_bounded_in_number_too():
    buffer = SnapshotBuffer(every=1, max_bytes=1 << 30, max_snapshots=8)
    train_with_history(buffer, 300)
    assert 2 <= len(buffer.snapshots) <= 8


def test_a_model_larger_than_the_history_is_not_kept():
    buffer = SnapshotBuffer(every=1, max_bytes=100)
    buffer.add(take_snapshot(tree_from_module(tied_net()), 0))
    assert buffer.snapshots == [] and "exceed the history's" in buffer.refused
    assert buffer.as_run() is None


def test_the_history_as_a_run_moves_as_the_model_did():
    buffer = SnapshotBuffer(every=5)
    train_with_history(buffer, 20)
    run = buffer.as_run()
    assert run.live and [c.info.step for c in run.checkpoints] == [0, 5, 10, 15, 20]
    assert run.x_label == "global step"
    a, b = (run.handle("0.weight", i).array() for i in (1, 2))
    table = movement(run)
    expected = np.linalg.norm((b - a).astype(np.float64)) / np.linalg.norm(a.astype(np.float64))
    assert table.tensors["0.weight"].relative_change[2] == pytest.approx(expected, rel=1e-6)
    assert buffer.as_run().checkpoints[0] is run.checkpoints[0]  # made once per snapshot

"""The pass engine's settings and locks, as the window's session uses them from two threads:
settings swapped whole between actions, snapshots that never wait for the graph's forward
pass, buffers watched like parameters."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from torch import nn

from netexplorer.core.errors import PassError, UnknownPathError
from netexplorer.core.passes import PassEngine
from netexplorer.core.sources import open_source
from netexplorer.core.tree import tree_from_module


def test_configure_swaps_the_whole_config_and_refuses_bad_values():
    engine = PassEngine(open_source("example:tied"))
    before = engine.config
    after = engine.configure(loss_name="mse", lr=0.5)
    assert engine.config is after and before.loss_name == "sum"  # the old one is unchanged
    assert (after.loss_name, after.lr, after.effective_lr) == ("mse", 0.5, 0.5)
    for bad in ({"loss_name": "hinge"}, {"optimizer_name": "lbfgs"}, {"lr": -1.0}):
        with pytest.raises(PassError):
            engine.configure(**bad)
        assert engine.config is after
    with pytest.raises(UnknownPathError):
        engine.configure(watch={"2.wieght"})


def test_an_action_runs_with_the_config_it_started_with():
    engine = PassEngine(open_source("example:tied"))
    engine.configure(loss_name="mse")
    started = threading.Event()
    go_on = threading.Event()
    original = engine.module.forward

    def slow_forward(x):
        started.set()
        go_on.wait(5)
        return original(x)

    engine.module.forward = slow_forward
    results = []
    worker = threading.Thread(target=lambda: results.append(engine.backward()))
    worker.start()
    started.wait(5)
    engine.configure(loss_name="sum")  # meanwhile, on another thread
    go_on.set()
    worker.join(10)
    assert results[0].loss_name == "mse"
    assert engine.forward().loss_name == "sum"  # the next action takes the new one


def test_a_snapshot_does_not_wait_for_the_graphs_forward_pass():
    engine = PassEngine(open_source("example:tied"))
    engine.configure(watch={"2.weight"})
    held = threading.Event()
    release = threading.Event()

    def graph_forward() -> None:
        with engine.exclusive():  # as the graph's build holds it
            held.set()
            release.wait(5)

    worker = threading.Thread(target=graph_forward)
    worker.start()
    held.wait(5)
    try:
        snapshot = engine.snapshot()  # returns while exclusive() is held
        assert not release.is_set()
        np.testing.assert_array_equal(
            snapshot.watched["2.weight"].values, engine.module[2].weight.detach().numpy()
        )
    finally:
        release.set()
        worker.join(10)


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x):
        return self.bn(self.fc(x))


def test_buffers_are_watched_with_values_and_no_gradient():
    net = WithBatchNorm()
    engine = PassEngine(tree_from_module(net))
    engine.configure(watch={"bn.running_mean", "fc.weight"})
    result = engine.backward()
    buffer = result.watched["bn.running_mean"]
    assert buffer.kind == "buffer" and buffer.grad is None and buffer.contributions is None
    np.testing.assert_array_equal(buffer.values, net.bn.running_mean.numpy())
    assert np.abs(buffer.values).sum() > 0  # the training-mode forward moved it
    assert result.watched["fc.weight"].grad is not None


def test_zero_grad_is_told_apart_from_never_computed():
    engine = PassEngine(open_source("example:tied"))
    assert engine.snapshot().zeroed is False
    engine.backward()
    assert engine.zero_grad().zeroed is True
    assert engine.backward().zeroed is False

"""Editing a live model's values and initialising them, with Undo: the chapter's
`net[2].weight.data[0, 0] = 100` moment and its custom initialisations."""

from __future__ import annotations

import math

import pytest
import torch

from netexplorer.core.errors import PassError
from netexplorer.core.passes import PassEngine
from netexplorer.core.passes.edits import SCHEMES
from netexplorer.core.sources import open_source


def engine_of(name: str) -> PassEngine:
    return PassEngine(open_source(f"example:{name}"), seed=0)


def test_editing_a_tied_weight_changes_it_at_both_places_and_undo_restores():
    engine = engine_of("tied")
    net = engine.module
    before = net[2].weight.detach().clone()
    result = engine.edit_value("2.weight", (0, 0), 100.0)
    assert net[2].weight[0, 0].item() == 100.0 and net[4].weight[0, 0].item() == 100.0
    assert result.edit == "net[2].weight.data[0, 0] = 100" and result.undo == result.edit
    x = engine.input_spec.make(0)
    torch.testing.assert_close(torch.from_numpy(result.output), net(x).detach())  # it follows
    assert result.loss is not None
    undone = engine.undo()
    torch.testing.assert_close(net[2].weight.detach(), before)
    assert undone.edit.startswith("undid ") and undone.undo == ""
    with pytest.raises(PassError, match="nothing to undo"):
        engine.undo()


def test_an_edit_outside_the_tensor_or_of_the_wrong_kind_is_refused():
    engine = engine_of("tied")
    with pytest.raises(PassError, match=r"no element \[8, 0\]"):
        engine.edit_value("2.weight", (8, 0), 1.0)
    with pytest.raises(PassError, match="no element"):
        engine.edit_value("2.bias", (0, 0), 1.0)
    assert engine.edits.count == 0


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_each_init_scheme_on_a_module(scheme):
    engine = engine_of("mlp")
    net = engine.module
    bias_before = net[0].bias.detach().clone()
    engine.initialise(["0.weight", "0.bias"], scheme, value=1.0)
    weight, bias = net[0].weight.detach(), net[0].bias.detach()
    if scheme == "normal":
        assert weight.abs().max() < 0.05 and bias.abs().sum() == 0
    elif scheme == "zeros":
        assert weight.abs().sum() == 0 and bias.abs().sum() == 0
    elif scheme == "constant":
        assert torch.all(weight == 1.0) and bias.abs().sum() == 0
    elif scheme == "xavier_uniform":
        bound = math.sqrt(6 / (weight.shape[0] + weight.shape[1]))
        assert weight.abs().max() <= bound and torch.equal(bias, bias_before)
    elif scheme == "chapter":
        nonzero = weight[weight != 0].abs()
        assert (
            torch.all(nonzero >= 5) and torch.all(nonzero <= 10) and torch.equal(bias, bias_before)
        )
    engine.undo()
    assert torch.equal(net[0].bias.detach(), bias_before)


def test_inits_are_seeded_and_xavier_refuses_a_bias():
    a, b = engine_of("mlp"), engine_of("mlp")
    a.initialise(["0.weight"], "normal")
    b.initialise(["0.weight"], "normal")
    assert torch.equal(a.module[0].weight, b.module[0].weight)
    with pytest.raises(PassError, match="at least 2 dimensions"):
        a.initialise(["0.bias"], "xavier_uniform")

"""Opening a source and running passes leave no reference cycles behind.

The window freezes the garbage collector's view of everything alive once a tree is shown
(ui/document.py), so full collections never walk torch's and the model's objects again.
That is only safe if what it replaces is freed by reference counting: a cycle left by a
reader or the engine would keep a whole model in memory until exit."""

from __future__ import annotations

import gc

import pytest
import torch
from safetensors.torch import save_file

from netexplorer.core.passes import PassEngine
from netexplorer.core.sources import open_source
from netexplorer.examples import EXAMPLES


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cycles")
    state = {k: v.detach().clone() for k, v in EXAMPLES["tied"].build(0).state_dict().items()}
    save_file(state, str(folder / "tied.safetensors"))
    torch.save(state, folder / "tied.pt")
    hf = folder / "hf"
    hf.mkdir()
    save_file(state, str(hf / "model.safetensors"))
    return {"safetensors": folder / "tied.safetensors", "torch zip": folder / "tied.pt", "hf": hf}


def cyclic_garbage(make) -> list[str]:
    """Types of the objects that only the cycle collector could free after `make()`."""
    make()  # imports and caches first
    gc.collect()
    gc.freeze()  # what exists now is not looked at again: quick collections below
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        make()
        gc.collect()
        return sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()


@pytest.mark.parametrize("kind", ["safetensors", "torch zip", "hf"])
def test_opening_a_checkpoint_leaves_no_cycles(files, kind):
    assert cyclic_garbage(lambda: open_source(str(files[kind]))) == []


@pytest.mark.parametrize("name", ["tied", "nested", "tiny-gpt", "rnn"])
def test_a_live_model_and_its_passes_leave_no_cycles(name):
    def open_and_run() -> None:
        tree = open_source(f"example:{name}")
        engine = PassEngine(tree)
        engine.configure(watch={next(iter(tree.tensors))}, capture_activations=True)
        engine.backward()
        engine.snapshot()
        list(engine.train(2))
        engine.zero_grad()

    assert cyclic_garbage(open_and_run) == []

"""Writes the distributed checkpoints of test_dcp.py: `python dcp_writers.py OUT`.

Three processes in a gloo group (initialised through a file, on CPU) save into OUT:
- `fsdp/`: a small MLP sharded with FSDP2 (`fully_shard`) after one Adam step, saved as
  `{"model": ..., "optim": ..., "epoch": 3}` from `get_state_dict`;
- `dtensor/`: DTensors sharded on dimension 1 and on dimension 0 (3 ranks over 2 rows: the
  last rank's piece is empty), a replicated one, a plain tensor and two plain objects.
Then this process, with no process group, saves `single/` (a transposed view, a slice, a
scalar, integers, a conjugated complex view). Beside each folder, `<name>_expected.pt`
holds what was saved: every full tensor, and for sharded tensors each rank's piece as
(rank, offsets, sizes).
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch import nn

WORLD = 3


def _pieces(tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """This rank's (offsets, sizes) of a DTensor."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    sizes, offsets = compute_local_shape_and_global_offset(
        tensor.shape, tensor.device_mesh, tensor.placements
    )
    return tuple(offsets), tuple(sizes)


def _expected(rank: int, tensors: dict, objects: dict, path: str) -> None:
    """Gather full tensors and every rank's pieces; rank 0 writes them to `path`."""
    from torch.distributed.tensor import DTensor, Shard

    full, layout = {}, {}
    for key, t in tensors.items():
        if isinstance(t, DTensor):
            full[key] = t.full_tensor()
            if any(isinstance(p, Shard) for p in t.placements):
                pieces = [None] * WORLD
                dist.all_gather_object(pieces, (rank, *_pieces(t)))
                layout[key] = sorted(pieces)
        else:
            full[key] = t
    if rank == 0:
        torch.save({"tensors": full, "layout": layout, "objects": objects}, path)


def _write_rank(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (WORLD,))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save(
        {"model": model_state, "optim": optimizer_state, "epoch": 3},
        checkpoint_id=os.path.join(out, "fsdp"),
    )
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    for name, state in optimizer_state["state"].items():
        tensors.update({f"optim.state.{name}.{k}": v for k, v in state.items()})
    _expected(rank, tensors, {"epoch": 3}, os.path.join(out, "fsdp_expected.pt"))

    g = torch.Generator().manual_seed(1)
    state = {
        "a": distribute_tensor(torch.randn(7, 10, generator=g), mesh, [Shard(1)]),
        "b": distribute_tensor(torch.arange(24.0).reshape(2, 3, 4).bfloat16(), mesh, [Shard(0)]),
        "r": distribute_tensor(torch.ones(3), mesh, [Replicate()]),
        "plain": torch.full((2,), 5.0),
        "note": "hi",
        "n": 5,
    }
    dcp.save(state, checkpoint_id=os.path.join(out, "dtensor"))
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    objects = {"note": "hi", "n": 5}
    _expected(rank, tensors, objects, os.path.join(out, "dtensor_expected.pt"))
    dist.barrier()  # no rank leaves while another still talks to it
    dist.destroy_process_group()
    # Leave without the interpreter's teardown. Under load a rank now and then aborted with
    # "terminate called without an active exception" (a C++ thread destroyed unjoined), most
    # likely while objects still holding the group (mesh, FSDP state, DTensors) were torn
    # down at exit; everything is written and closed by now.
    os._exit(0)


def write_single(out: str) -> None:
    """A checkpoint saved by one process without a process group."""
    import warnings

    g = torch.Generator().manual_seed(2)
    base = torch.randn(6, 8, generator=g)
    state = {"t": base.t(), "s": base[2:4], "x": torch.tensor(3.0), "i": torch.arange(5)}
    # a conjugated view: the zip reader leaves it to torch.load(weights_only=True)
    state["c"] = torch.randn(3, dtype=torch.complex64, generator=g).conj()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save(state, checkpoint_id=os.path.join(out, "single"))
    tensors = {k: v.resolve_conj().clone() for k, v in state.items()}
    torch.save({"tensors": tensors, "layout": {}, "objects": {}}, f"{out}/single_expected.pt")


if __name__ == "__main__":
    target = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="dcp-init-") as rendezvous:
        mp.spawn(_write_rank, args=(os.path.join(rendezvous, "file"), target), nprocs=WORLD)
    write_single(target)

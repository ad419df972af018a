"""Regenerate the tiny checkpoints shipped beside this script (a few KB each):

- `tied.safetensors`: the notebook's tied net. safetensors cannot store aliases, so the shared
  layer is stored twice; "find identical tensors" shows them as a probable tie.
- `tied-training.ckpt`: the same net as a Lightning-style training checkpoint (`state_dict`
  with the tie kept, Adam `optimizer_states`, `epoch`, `global_step`, `hyper_parameters`).

Run: `python resources/examples/make_examples.py [FOLDER]` (default: this script's folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from netexplorer.examples import EXAMPLES  # noqa: E402

SEED = 0


def tied_net() -> torch.nn.Module:
    return EXAMPLES["tied"].build(SEED)


def write_tied_safetensors(path: Path) -> Path:
    net = tied_net()
    tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    metadata = {
        "format": "pt",
        "example": "tied",
        "note": "2.* and 4.* are one tied layer, stored twice (safetensors has no aliases)",
    }
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_tied_training_checkpoint(path: Path) -> Path:
    net = tied_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(SEED)
    inputs = torch.rand(16, 4, generator=generator)
    targets = inputs.sum(dim=1, keepdim=True)
    steps = 20
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(inputs), targets).backward()
        optimizer.step()
    checkpoint = {
        "epoch": 4,
        "global_step": steps,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": net.state_dict(),  # 2.* and 4.* share storage: a tie in the file
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"example": "tied", "lr": 1e-2, "batch_size": 16},
    }
    torch.save(checkpoint, str(path))
    return path


def main(folder: Path = HERE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_tied_safetensors(folder / "tied.safetensors"),
        write_tied_training_checkpoint(folder / "tied-training.ckpt"),
    ]


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"{written} ({written.stat().st_size:,} bytes)")

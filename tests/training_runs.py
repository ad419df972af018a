"""Training runs written at test time by a tiny training loop, saved the ways libraries and
scripts save them:

- `torch.save` per epoch: `epoch_3.pt` holding {"model", "optimizer", "epoch"};
- Hugging Face Trainer: `checkpoint-12/` folders with `model.safetensors` and a
  `trainer_state.json` (global_step, epoch);
- Lightning: `epoch=2-step=12.ckpt`, a torch.save of {"state_dict", "epoch", "global_step",
  "optimizer_states", ...}.

The model gains a head (`head.weight`, `head.bias`) from epoch `grow_at` on: a key that
appears mid-run. `states` keeps every checkpoint's tensors, to compare with what netexplorer
computes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn


@dataclass
class SavedStep:
    epoch: int
    step: int
    state: dict[str, torch.Tensor]  # the model's state dict, copied
    optimizer: dict = field(repr=False, default_factory=dict)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        self.head: nn.Linear | None = None

    def grow(self) -> None:
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        y = self.body(x)
        return self.head(y) if self.head is not None else y[:, :2]


def train(
    epochs: int = 4, steps_per_epoch: int = 3, grow_at: int = 2, seed: int = 0
) -> list[SavedStep]:
    """Train a tiny net on random data with Adam, saving after every epoch (1-based)."""
    torch.manual_seed(seed)
    net = Net()
    x, target = torch.randn(16, 4), torch.randn(16, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    saved: list[SavedStep] = []
    step = 0
    for epoch in range(1, epochs + 1):
        if epoch == grow_at:
            net.grow()
            optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(steps_per_epoch):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(net(x), target)
            loss.backward()
            optimizer.step()
            step += 1
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        # the optimizer's state dict holds its live tensors: a copy, as torch.save makes one
        saved.append(SavedStep(epoch, step, state, copy.deepcopy(optimizer.state_dict())))
    return saved


def write_torch_per_epoch(folder: Path, run: list[SavedStep]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in run:
        path = folder / f"epoch_{s.epoch}.pt"
        torch.save({"model": s.state, "optimizer": s.optimizer, "epoch": s.epoch}, path)
        paths.append(path)
    return paths


def write_hf_checkpoints(
    folder: Path, run: list[SavedStep], steps_per_epoch: int = 3
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in run:
        checkpoint = folder / f"checkpoint-{s.step}"
        checkpoint.mkdir()
        save_file({k: v.contiguous() for k, v in s.state.items()}, checkpoint / "model.safetensors")
        state = {"global_step": s.step, "epoch": s.step / steps_per_epoch, "log_history": []}
        (checkpoint / "trainer_state.json").write_text(json.dumps(state))
        torch.save(s.optimizer, checkpoint / "optimizer.pt")
        paths.append(checkpoint)
    return paths


def write_lightning(folder: Path, run: list[SavedStep], prefix: str = "model.") -> list[Path]:
    """`prefix`: the LightningModule attribute that holds the net (`self.model`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in run:
        path = folder / f"epoch={s.epoch - 1}-step={s.step}.ckpt"
        torch.save(
            {
                "epoch": s.epoch - 1,
                "global_step": s.step,
                "pytorch-lightning_version": "2.4.0",
                "state_dict": {f"{prefix}{k}": v for k, v in s.state.items()},
                "optimizer_states": [s.optimizer],
                "hyper_parameters": {"lr": 0.05},
            },
            path,
        )
        paths.append(path)
    return paths


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖b − a‖ / ‖a‖, computed directly with torch in float64."""
    a, b = a.double(), b.double()
    return float(torch.linalg.vector_norm(b - a) / torch.linalg.vector_norm(a))

"""Builders of tiny checkpoints of every format, made at test time in tmp_path.

Imported by name (`from checkpoint_builders import ...`): pytest puts this folder on sys.path.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from netexplorer.examples import EXAMPLES


def mixed_state_dict() -> dict[str, torch.Tensor]:
    """Every dtype the issue names, plus a conv weight, a scalar and an empty tensor."""
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 2, 3, 3, generator=g),
        "conv.bias": torch.randn(4, generator=g),
        "layers.0.weight": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "layers.0.bias": torch.randn(3, generator=g).to(torch.float16),
        "layers.1.weight": torch.randint(-128, 127, (2, 3), generator=g).to(torch.int8),
        "layers.10.weight": torch.randn(2, 2, generator=g).double(),
        "mask": torch.tensor([True, False, True]),
        "norm.num_batches_tracked": torch.tensor(7),
        "empty": torch.zeros(0, 3),
    }


def example_net(name: str = "tied") -> nn.Module:
    return EXAMPLES[name].build(0)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], **metadata: str) -> Path:
    # safetensors refuses shared memory; clone so tied example nets can be written
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(path),
              metadata=metadata or None)  # fmt: skip
    return path


def write_torch(path: Path, obj: object, legacy: bool = False) -> Path:
    torch.save(obj, str(path), _use_new_zipfile_serialization=not legacy)
    return path


def trained(net: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 2) -> None:
    """A few optimizer steps so every parameter has state."""
    inputs = example_input(net)
    for _ in range(steps):
        optimizer.zero_grad()
        net(inputs).float().pow(2).mean().backward()
        optimizer.step()


def example_input(net: nn.Module) -> torch.Tensor:
    first = next(m for m in net.modules() if isinstance(m, nn.Linear))
    return torch.randn(2, first.in_features, generator=torch.Generator().manual_seed(1))


def lightning_checkpoint(net: nn.Module | None = None) -> dict:
    """What Lightning's Trainer.save_checkpoint writes, for a LightningModule holding `net`
    as `self.model`."""
    net = net or example_net("tied")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    trained(net, optimizer)
    return {
        "epoch": 7,
        "global_step": 140,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 7}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss'}": {
                "best_model_score": torch.tensor(0.25),
                "best_model_path": "/ckpts/epoch=6.ckpt",
            }
        },
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"hidden": 8, "lr": 1e-3, "layers": [4, 8, 8, 1], "name": "tied"},
    }


def training_dict(net: nn.Module | None = None, optimizer_cls=torch.optim.SGD) -> dict:
    """The common hand-written {"model": ..., "optimizer": ..., "epoch": ...} checkpoint."""
    net = net or example_net("mlp")
    kwargs = {"lr": 0.1, "momentum": 0.9} if optimizer_cls is torch.optim.SGD else {}
    optimizer = optimizer_cls(net.parameters(), **kwargs)
    trained(net, optimizer)
    return {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}


# -- pickles whose loading runs code (security tests) ----------------------------------------


class SystemCall:
    """Unpickling calls os.system, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecCall:
    """Unpickling calls builtins.exec on Python source that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


class EvalCall:
    """Unpickling calls builtins.eval on an expression that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.eval, (f"open({self.marker!r}, 'w').write('ran')",))


PAYLOADS: dict[str, Callable[[Path], object]] = {
    "os.system": SystemCall,
    "exec": ExecCall,
    "eval": EvalCall,
}


def evil_file(folder: Path, payload: str, container: str, marker: Path) -> Path:
    """A file whose loading would run `payload`: a zip or legacy state dict, or a
    Lightning-style .ckpt with the payload nested in its hyper-parameters."""
    evil = PAYLOADS[payload](marker)
    weights = {"w": torch.ones(2, 2)}
    if container == "zip":
        return write_torch(folder / "evil.pt", {**weights, "x": evil})
    if container == "legacy":
        return write_torch(folder / "evil_legacy.pth", {**weights, "x": evil}, legacy=True)
    ckpt = lightning_checkpoint()
    ckpt["hyper_parameters"]["callback"] = evil
    return write_torch(folder / "evil.ckpt", ckpt)


# -- every format, for the bad-file and never-write tests -------------------------------------


def build_every_format(folder: Path) -> dict[str, Path]:
    """One small file (or folder) per format netexplorer reads."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = mixed_state_dict()
    net = example_net("tied")
    out = {
        "safetensors": write_safetensors(folder / "mixed.safetensors", sd, format="pt"),
        "torch-zip": write_torch(folder / "mixed.pt", sd),
        "torch-legacy": write_torch(folder / "mixed_legacy.pth", sd, legacy=True),
        "lightning": write_torch(folder / "run.ckpt", lightning_checkpoint(net)),
        "torchscript": folder / "scripted.pt",
    }
    save_scripted(example_net("mlp"), out["torchscript"])
    out["hf-sharded"] = hf_folder(folder / "hf", sharded=True)
    return out


def save_scripted(net: nn.Module, path: Path) -> Path:
    """torch.jit.save of the scripted net (its deprecation warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    return path


def hf_folder(folder: Path, sharded: bool = False, fmt: str = "safetensors") -> Path:
    """A Hugging Face model folder with config.json, in one file or two shards."""
    folder.mkdir(parents=True, exist_ok=True)
    net = example_net("mlp")
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    (folder / "config.json").write_text(
        json.dumps({"model_type": "mlp", "hidden_size": 8, "architectures": ["MLP"]})
    )
    stem, ext = ("model", ".safetensors") if fmt == "safetensors" else ("pytorch_model", ".bin")

    def write(path: Path, part: dict) -> None:
        if fmt == "safetensors":
            write_safetensors(path, part, format="pt")
        else:
            write_torch(path, part)

    if not sharded:
        write(folder / f"{stem}{ext}", sd)
        return folder
    keys = list(sd)
    shards = {
        f"{stem}-00001-of-00002{ext}": keys[:2],
        f"{stem}-00002-of-00002{ext}": keys[2:],
    }
    weight_map = {}
    for name, part in shards.items():
        write(folder / name, {k: sd[k] for k in part})
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 4 * sum(v.numel() for v in sd.values())}}
    index["weight_map"] = weight_map
    (folder / f"{stem}{ext}.index.json").write_text(json.dumps(index))
    return folder


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root` (or of `root` itself)."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

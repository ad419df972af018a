"""--live: a Hugging Face folder loaded by transformers' from_pretrained, with inputs and a loss
from the model itself; passes give the gradients a plain PyTorch run gives, per-use
contributions add up to .grad, and --backward 2 doubles them. `--model F --weights W` reports
tied keys as loaded through their partner (issue 11, point 1)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")
import torch
from tiny_models import build, tied_lm

from netexplorer.cli import main
from netexplorer.core.hf_library import quiet_transformers
from netexplorer.core.inputs import as_batch
from netexplorer.core.launch import LaunchRequest, open_requested, run_backward
from netexplorer.core.sources.factory import build_with_weights

LIVE = ("gpt2", "bert", "t5", "albert", "vit")


def live_engine(folder, backward: int, **changes):
    request = LaunchRequest(source=str(folder), live=True, backward=backward, **changes)
    tree = open_requested(request)
    return tree, run_backward(tree, request)


def plain_gradients(name: str, folder, kwargs: dict) -> dict[str, torch.Tensor]:
    """What PyTorch alone gives: the same folder loaded the same way, the same input, the
    model's own loss, one backward."""
    with quiet_transformers():
        model = type(build(name)).from_pretrained(folder)
    model(**kwargs).loss.backward()
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", LIVE)
def test_backward_gives_the_gradients_of_plain_pytorch(hf_folders, name):
    folder = hf_folders(name)
    tree, engine = live_engine(folder, backward=1)
    assert tree.is_live and engine.config.loss_name == "model"
    _, kwargs = as_batch(engine.input_spec).make(0)
    expected = plain_gradients(name, folder, kwargs)
    assert expected
    got = dict(tree.module.named_parameters())
    for path, grad in expected.items():
        torch.testing.assert_close(got[path].grad, grad, rtol=1e-5, atol=1e-7, msg=path)


def test_the_input_is_the_models_own(hf_folders):
    _, engine = live_engine(hf_folders("gpt2"), backward=0)
    _, kwargs = as_batch(engine.input_spec).make(0)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(kwargs["input_ids"], torch.randint(0, 50, (2, 8), generator=generator))
    assert kwargs["labels"] is kwargs["input_ids"]
    _, engine = live_engine(hf_folders("vit"), backward=0)
    _, kwargs = as_batch(engine.input_spec).make(0)
    assert kwargs["pixel_values"].shape == (2, 3, 32, 32)  # the configured size, not 28
    assert kwargs["labels"].shape == (2,) and int(kwargs["labels"].max()) < 3
    _, engine = live_engine(hf_folders("t5"), backward=0)
    names = [a.name for a in as_batch(engine.input_spec).arguments]
    assert names == ["input_ids", "decoder_input_ids", "labels"]


@pytest.mark.parametrize(
    ("name", "path", "sites"),
    [
        ("gpt2", "transformer.wte.weight", [("transformer.wte", 0), ("lm_head", 0)]),
        (
            "t5",
            "shared.weight",
            [("encoder.embed_tokens", 0), ("decoder.embed_tokens", 0), ("lm_head", 0)],
        ),
        (
            "bert",
            "bert.embeddings.word_embeddings.weight",
            [("bert.embeddings.word_embeddings", 0), ("cls.predictions.decoder", 0)],
        ),
        (
            "albert",
            "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight",
            [("albert.encoder.albert_layer_groups.0.albert_layers.0.ffn", k) for k in range(4)],
        ),
    ],
)
def test_contributions_per_use_add_up_to_grad(hf_folders, name, path, sites):
    tree, engine = live_engine(hf_folders(name), backward=1)
    uses = engine.contributions[path]
    assert [(u.site, u.call) for u in uses] == sites
    grad = tree.module.get_parameter(path).grad
    total = sum(torch.from_numpy(u.values) for u in uses)
    torch.testing.assert_close(total, grad, rtol=1e-4, atol=1e-6)
    assert all(float(abs(torch.from_numpy(u.values)).sum()) > 0 for u in uses)


@pytest.mark.parametrize("name", LIVE)
def test_backward_twice_doubles_the_gradient_exactly(hf_folders, name):
    once, _ = live_engine(hf_folders(name), backward=1)
    twice, _ = live_engine(hf_folders(name), backward=2)
    second = dict(twice.module.named_parameters())
    for path, p in once.module.named_parameters():
        if p.grad is not None:
            assert torch.equal(second[path].grad, 2 * p.grad), path


def test_json_says_what_the_passes_ran_with(hf_folders, capsys):
    assert main([str(hf_folders("gpt2")), "--live", "--backward", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    meta = out["metadata"]
    assert meta["input"]["spec"] == "input_ids=tokens:2,8<50 labels=@input_ids"
    assert meta["input"]["source"] == "the model's own"
    assert meta["loss"]["name"] == "model" and "GPT2LMHeadModel" in meta["loss"]["text"]
    assert meta["training_mode"]["training"] is False  # from_pretrained leaves eval mode
    assert meta["weights_report"]["tied"] == [
        {"key": "lm_head.weight", "to": "transformer.wte.weight"}
    ]
    wte = next(p for p in out["parameters"] if p["path"] == "transformer.wte.weight")
    assert [c["site"] for c in wte["grad"]["contributions"]] == ["transformer.wte", "lm_head"]


def test_input_option_replaces_the_models_own(hf_folders, capsys):
    argv = [str(hf_folders("gpt2")), "--live", "--backward", "1", "--json"]
    argv += ["--input", "input_ids=tokens:3,5<50", "--input", "labels=@input_ids"]
    assert main(argv) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert meta["input"]["arguments"][0]["shape"] == [3, 5]
    assert meta["input"]["source"] == "given"


def test_live_without_a_config_is_one_line(tmp_path, capsys):
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert main([str(tmp_path), "--live", "--summary"]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and err.count("\n") == 1 and "Traceback" not in err


def test_model_factory_with_a_folder_reports_tied_keys(hf_folders, capsys):
    """Issue 11, point 1: lm_head.weight is tied to the embedding that was loaded."""
    folder = hf_folders("gpt2")
    assert main(["--model", "tiny_models:factory_gpt2", "--weights", str(folder), "--summary"]) == 0
    text = capsys.readouterr().out
    assert "lm_head.weight: tied to transformer.wte.weight, loaded through it" in text
    assert "missing" not in text
    tree = build_with_weights("tiny_models:factory_gpt2", str(folder))
    report = tree.metadata["weights_report"]
    assert report["missing"] == []
    assert report["tied"] == [{"key": "lm_head.weight", "to": "transformer.wte.weight"}]
    saved = build("gpt2")  # seed 0, as saved; the factory's own model has seed 1
    torch.testing.assert_close(
        tree.module.lm_head.weight, saved.transformer.wte.weight, rtol=0, atol=0
    )


def test_plain_factory_with_a_safetensors_file_reports_tied_keys(tmp_path):
    """The ordinary loader (no transformers): safetensors stored the tied head once."""
    from safetensors.torch import save_model

    path = tmp_path / "tied.safetensors"
    save_model(tied_lm(), str(path))
    tree = build_with_weights("tiny_models:tied_lm", str(path))
    report = tree.metadata["weights_report"]
    assert report["missing"] == []
    [tied] = report["tied"]
    assert {tied["key"], tied["to"]} == {"embed.weight", "head.weight"}

"""A Hugging Face folder -> the architecture its config.json names, built on the meta device:
real module types in the model's order, parameters and buffers told apart, the ties that
safetensors dropped restored (tie_from "config"), values read lazily from the file under the
library's key conversions (ViT's legacy keys)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
from tiny_models import build

from netexplorer.cli import main
from netexplorer.core import hf_library
from netexplorer.core.launch import with_architecture
from netexplorer.core.sources import hf_architecture, open_source

MODELS = ("gpt2", "bert", "t5", "albert", "vit", "bart")
DROPPED = {  # keys save_pretrained leaves out of the file because they are tied
    "gpt2": {"lm_head.weight": "transformer.wte.weight"},
    "bert": {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    },
    "t5": {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
        "lm_head.weight": "shared.weight",
    },
    "albert": {
        "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
        "predictions.decoder.bias": "predictions.bias",
    },
    "vit": {},
    "bart": {
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
        "lm_head.weight": "model.shared.weight",
    },
}


@pytest.mark.parametrize("name", MODELS)
def test_folder_opens_as_its_architecture(hf_folders, name):
    folder = hf_folders(name)
    reference = build(name)  # the same seed: the very model that was saved
    tree = with_architecture(open_source(str(folder)))
    assert tree.structure is not None and not tree.is_live
    assert tree.root.type_name == type(reference).__name__
    # every module, in the model's order, with its real type
    expected = [(p, type(m).__name__) for p, m in reference.named_modules()]
    assert [(m.path, m.type_name) for m in tree.root.walk()] == expected
    # parameters and buffers as the model has them, in state_dict order
    state = reference.state_dict()
    assert list(tree.tensors) == list(state)
    buffers = {n for n, _ in reference.named_buffers() if n in state}
    assert {t.path for t in tree.buffers} == buffers
    assert {t.path for t in tree.parameters} == set(state) - buffers
    # the ties the file dropped are back, marked as restored from the config
    for key, partner in DROPPED[name].items():
        group = tree.tie_group(key)
        assert group is not None and partner in group.paths and group.tie_from == "config"
    restored = {r["key"]: r["to"] for r in tree.metadata["architecture"]["restored_ties"]}
    assert restored == DROPPED[name]
    assert "not_in_file" not in tree.metadata["architecture"]
    # values from the file, under the model's own names (ViT's keys renamed on load)
    for path, node in tree.tensors.items():
        assert node.handle.has_values, path
        np.testing.assert_array_equal(node.handle.array(), state[path].numpy(), err_msg=path)
    total = sum(p.numel() for p in reference.parameters())  # a tied tensor once
    assert tree.total_parameters == total


def test_bart_logits_bias_is_a_buffer_once_the_architecture_is_known(hf_folders):
    tree = with_architecture(open_source(str(hf_folders("bart"))))
    node = tree.tensors["final_logits_bias"]
    assert node.kind == "buffer" and not node.requires_grad


def test_json_marks_restored_ties(hf_folders, capsys):
    assert main([str(hf_folders("gpt2")), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modules"][0]["type"] == "GPT2LMHeadModel"
    [tie] = out["ties"]
    assert tie["paths"] == ["transformer.wte.weight", "lm_head.weight"]
    assert tie["tie_from"] == "config"
    assert out["metadata"]["architecture"]["class"] == "GPT2LMHeadModel"
    assert out["graph"]["has_data_flow"]  # the meta model runs: calls, no values


def test_a_safetensors_file_beside_its_config_gets_the_architecture(hf_folders):
    tree = with_architecture(open_source(str(hf_folders("bert") / "model.safetensors")))
    assert tree.root.type_name == "BertForMaskedLM"
    assert tree.tie_group("cls.predictions.decoder.weight") is not None


def test_without_transformers_the_headers_stay_with_a_note(hf_folders, monkeypatch):
    monkeypatch.setattr(hf_architecture, "transformers_installed", lambda: False)
    tree = with_architecture(open_source(str(hf_folders("gpt2"))))
    assert tree.structure is None
    assert "lm_head.weight" not in tree.tensors
    note = tree.metadata["architecture"]["note"]
    assert "install transformers" in note and "\n" not in note
    assert hf_library.INSTALL_HINT in note


def test_a_config_naming_no_known_class_says_so(hf_folders, tmp_path):
    import shutil

    folder = tmp_path / "odd"
    shutil.copytree(hf_folders("gpt2"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForAnything"]
    (folder / "config.json").write_text(json.dumps(config))
    tree = with_architecture(open_source(str(folder)))
    assert tree.structure is None
    assert "no class NoSuchModelForAnything" in tree.metadata["architecture"]["note"]


def test_without_the_architecture_a_file_claims_no_kinds(hf_folders, monkeypatch, capsys):
    """Issue 11, point 2: BART's final_logits_bias is a buffer; a file alone cannot say so,
    so no tensor of it is called a parameter or said to require grad."""
    monkeypatch.setattr(hf_architecture, "transformers_installed", lambda: False)
    assert main([str(hf_folders("bart")), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    bias = next(p for p in out["parameters"] if p["path"] == "final_logits_bias")
    assert bias["kind"] == "tensor" and bias["requires_grad"] is None
    assert all(p["kind"] == "tensor" for p in out["parameters"])
    assert out["total_parameters"] == 0
    unknown = out["total_tensors"]
    assert unknown["tensors"] == len(out["parameters"])
    assert unknown["elements"] == sum(p["numel"] for p in out["parameters"])


def test_with_the_architecture_kinds_are_known(hf_folders, capsys):
    assert main([str(hf_folders("bart")), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [bias] = [b for b in out["buffers"] if b["path"] == "final_logits_bias"]
    assert bias["kind"] == "buffer" and bias["requires_grad"] is False
    assert all(p["kind"] == "parameter" and p["requires_grad"] for p in out["parameters"])
    assert "final_logits_bias" not in {p["path"] for p in out["parameters"]}
    assert "total_tensors" not in out


def test_a_tensor_the_loader_makes_from_several_says_so(tmp_path):
    """Mixtral's experts are stored one by one and stacked by the loader: the architecture
    shows the stacked tensor, without values, saying where they come from."""
    import torch
    import transformers as tf

    from netexplorer.core.hf_library import quiet_transformers

    torch.manual_seed(0)
    config = tf.MixtralConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, num_local_experts=2, num_experts_per_tok=1, vocab_size=50,
        max_position_embeddings=32,
    )  # fmt: skip
    with quiet_transformers():
        tf.MixtralForCausalLM(config).save_pretrained(tmp_path / "mixtral")
    tree = with_architecture(open_source(str(tmp_path / "mixtral")))
    converted = tree.metadata["architecture"]["converted"]
    node = tree.tensors["model.layers.0.mlp.experts.down_proj"]
    assert len(converted[node.path]) == 2 and not node.handle.has_values
    assert "Make live" in node.handle.no_values_reason
    assert "not_in_file" not in tree.metadata["architecture"]


def test_summary_reads_headers_only_and_names_the_architecture(hf_folders):
    """--summary stays as fast as reading the headers: no torch, no transformers."""
    import subprocess
    import sys

    code = (
        "import sys; from netexplorer.cli import main; rc = main([sys.argv[1], '--summary']); "
        "print('IMPORTED', 'torch' in sys.modules, 'transformers' in sys.modules); "
        "sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(hf_folders("gpt2"))], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "IMPORTED False False" in out.stdout
    assert "config.json names GPT2LMHeadModel; --json, --live or the window build it" in (
        out.stdout
    )

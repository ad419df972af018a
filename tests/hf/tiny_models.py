"""Tiny seeded transformers models, saved with save_pretrained into a folder at test time (no
network): the folders the Hugging Face tests open. Each is a few thousand parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAMES = ("gpt2", "bert", "t5", "albert", "vit", "bart")


def build(name: str, seed: int = 0) -> Any:
    """The tiny model `name`, initialised from `seed`."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    if name == "gpt2":
        config = tf.GPT2Config(
            n_embd=16, n_layer=2, n_head=2, vocab_size=50, n_positions=16,
            bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
        return tf.GPT2LMHeadModel(config)
    if name == "bert":
        config = tf.BertConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            vocab_size=50, max_position_embeddings=16,
        )  # fmt: skip
        return tf.BertForMaskedLM(config)
    if name == "t5":
        config = tf.T5Config(
            d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8, vocab_size=50,
            decoder_start_token_id=0,
        )  # fmt: skip
        return tf.T5ForConditionalGeneration(config)
    if name == "albert":
        config = tf.AlbertConfig(
            embedding_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
            intermediate_size=32, vocab_size=50, max_position_embeddings=16,
        )  # fmt: skip
        return tf.AlbertForMaskedLM(config)
    if name == "vit":
        config = tf.ViTConfig(
            image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=32, num_labels=3,
        )  # fmt: skip
        return tf.ViTForImageClassification(config)
    if name == "bart":
        config = tf.BartConfig(
            d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=50,
            max_position_embeddings=32,
        )  # fmt: skip
        return tf.BartForConditionalGeneration(config)
    raise ValueError(name)


def save(name: str, folder: Path, seed: int = 0) -> Path:
    """`build(name)` saved into `folder/name` with save_pretrained; the folder."""
    from netexplorer.core.hf_library import quiet_transformers

    target = folder / name
    with quiet_transformers():
        build(name, seed).save_pretrained(target)
    return target


def factory_gpt2() -> Any:
    """A `--model` factory that returns a transformers model (tiny_models:factory_gpt2)."""
    return build("gpt2", seed=1)


def tied_lm() -> Any:
    """A plain PyTorch model (no transformers) whose output head is its embedding, as a
    `--model` factory (tiny_models:tied_lm)."""
    import torch
    from torch import nn

    class TiedLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 6)
            self.head = nn.Linear(6, 20, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, x: Any) -> Any:
            return self.head(self.embed(x))

    torch.manual_seed(3)
    return TiedLM()

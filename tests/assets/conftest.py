"""Fixtures for the Azure ML asset tests: a tiny Phi-3 model built here (nothing is downloaded) and data files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # asset_runner.py, asset_data.py

from asset_data import CHAT_ROWS, PHI3_CHAT_TEMPLATE, SPECIAL, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chat_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    return {
        "train": write_jsonl(d / "train.jsonl", CHAT_ROWS * 3),
        "validation": write_jsonl(d / "validation.jsonl", CHAT_ROWS),
    }


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """A Phi-3 model scaled down to a few thousand parameters, with a BPE tokenizer trained on a few sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Phi3Config, Phi3ForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-phi3")
    corpus = [m["content"] for r in CHAT_ROWS for m in r["messages"]] * 4
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL, show_progress=False))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    Phi3ForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base_model, tmp_path_factory) -> Path:
    """A LoRA adapter for the tiny model, saved the way the fine-tune step saves one (adapter + tokenizer)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj", "o_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_base_model).save_pretrained(out)
    return out

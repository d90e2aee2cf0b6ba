"""Fixtures for the data checks: a small tokenizer built here (nothing is downloaded) and a file writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azft.data.tokens import PHI3_CHAT_TEMPLATE

SPECIALS = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Fine-tuning adapts a language model to your data.",
    "Bonjour, ça va? Très bien, merci. Grüße aus München!",
    "東京は日本の首都です。 数据 检查 在 上传 之前。",
    "Return the answer as JSON with fields name and value.",
] * 20


def build_tokenizer_dir(path: Path, *, with_template: bool = True) -> Path:
    """A byte-level BPE tokenizer with the Phi-3 special tokens, saved the way save_pretrained lays it out."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<unk>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 4096,
    }
    if with_template:
        cfg["chat_template"] = PHI3_CHAT_TEMPLATE
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer_dir(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def write(tmp_path):
    """write(lines, name=...) → path; str lines are UTF-8 encoded, dict lines JSON-dumped, bytes written as-is."""

    def _write(lines, name: str = "data.jsonl", newline: bytes = b"\n", trailing: bool = True) -> Path:
        raw = []
        for line in lines:
            if isinstance(line, (dict, list)):
                line = json.dumps(line, ensure_ascii=False)
            raw.append(line.encode("utf-8") if isinstance(line, str) else line)
        p = tmp_path / name
        p.write_bytes(newline.join(raw) + (newline if trailing and raw else b""))
        return p

    return _write


def chat(*turns, **extra) -> dict:
    """chat(("user", "hi"), ("assistant", "hello")) → a chat row."""
    return {"messages": [{"role": r, "content": c} for r, c in turns], **extra}


GOOD = chat(("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"))

"""Tiny chat rows and a Phi-3 chat template shared by the asset tests."""

from __future__ import annotations

import json
from pathlib import Path

PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

CHAT_ROWS = [
    {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
        ]
    },
    {"messages": [{"role": "user", "content": "Add two and three."}, {"role": "assistant", "content": "Five."}]},
    {
        "messages": [
            {"role": "user", "content": "Name a colour of the sky."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "And at night?"},
            {"role": "assistant", "content": "Black, with stars."},
        ]
    },
    {"messages": [{"role": "user", "content": "Say hello in French."}, {"role": "assistant", "content": "Bonjour."}]},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path

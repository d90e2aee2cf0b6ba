"""Data for the fine-tune recipe: JSONL rows → Phi-3 chat text → token ids with loss labels; batch collators.

Every task becomes a conversation in the Phi-3 chat format::

    <|system|>\\n{system}<|end|>\\n<|user|>\\n{user}<|end|>\\n<|assistant|>\\n{reply}<|end|>\\n...<|endoftext|>

and the loss is computed on the assistant replies only: the label of a token is its id when the token lies inside
an assistant message's content or is that message's closing ``<|end|>`` — every assistant turn, the final one
included — and -100 everywhere else (role headers, system and user text, newlines, padding, the final eos).

Standalone: imports only the standard library at module top (torch lazily), and nothing from azft.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

IGNORE_INDEX = -100

TASKS = (
    "chat-completion",
    "text-generation",
    "text-classification",
    "token-classification",
    "translation",
    "question-answering",
    "summarization",
)


class DataFormatError(ValueError):
    """A row that cannot be used, with the file, line and field that are wrong."""

    def __init__(self, file: str, line: int, field: str | None, message: str):
        self.file, self.line, self.field = file, line, field
        where = f"{file}:{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


# --------------------------------------------------------------------------------------------- task → conversation


def _text(row: dict, keys: tuple[str, ...], file: str, line: int) -> str:
    for k in keys:
        if k in row:
            v = row[k]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            if not isinstance(v, str) or not v.strip():
                raise DataFormatError(file, line, k, "must be a non-empty string")
            return v
    raise DataFormatError(file, line, keys[0], f"missing (expected one of: {', '.join(keys)})")


def row_to_messages(row: Any, task: str, file: str, line: int) -> list[dict]:
    """Map one JSONL row of ``task`` to chat messages ({role, content, train})."""
    if not isinstance(row, dict):
        raise DataFormatError(file, line, None, "each line must be a JSON object")
    if task == "chat-completion":
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise DataFormatError(file, line, "messages", "must be a non-empty list of {role, content}")
        out = []
        for i, m in enumerate(msgs):
            field = f"messages[{i}]"
            if not isinstance(m, dict):
                raise DataFormatError(file, line, field, "must be an object with role and content")
            role, content = m.get("role"), m.get("content")
            if role not in ("system", "user", "assistant"):
                raise DataFormatError(file, line, f"{field}.role", f"must be system, user or assistant, not {role!r}")
            if not isinstance(content, str) or (role != "system" and not content.strip()):
                raise DataFormatError(file, line, f"{field}.content", "must be a non-empty string")
            weight = m.get("weight", 1)
            out.append({"role": role, "content": content, "train": role == "assistant" and weight != 0})
        if not any(m["role"] == "assistant" for m in out):
            raise DataFormatError(file, line, "messages", "needs at least one assistant message to learn from")
        return out
    if task == "text-generation":
        prompt = _text(row, ("prompt",), file, line)
        completion = _text(row, ("completion",), file, line)
        return _pair(prompt, completion)
    if task == "text-classification":
        text = _text(row, ("text", "sentence"), file, line)
        label = _text(row, ("label", "label_string"), file, line)
        return _pair(f"Classify the following text. Answer with the label only.\n\n{text}", label)
    if task == "token-classification":
        tokens, tags = row.get("tokens"), row.get("tags", row.get("ner_tags", row.get("labels")))
        if not isinstance(tokens, list) or not tokens:
            raise DataFormatError(file, line, "tokens", "must be a non-empty list of strings")
        if not isinstance(tags, list) or len(tags) != len(tokens):
            raise DataFormatError(file, line, "tags", f"must be a list as long as tokens ({len(tokens)})")
        prompt = "Tag each token. Answer with one 'token<TAB>tag' line per token.\n\n" + " ".join(map(str, tokens))
        answer = "\n".join(f"{t}\t{g}" for t, g in zip(tokens, tags))
        return _pair(prompt, answer)
    if task == "translation":
        src = _text(row, ("source", "src"), file, line)
        tgt = _text(row, ("target", "tgt"), file, line)
        lang = row.get("target_lang") or row.get("target_language")
        prefix = f"Translate to {lang}:" if isinstance(lang, str) and lang else "Translate:"
        return _pair(f"{prefix}\n\n{src}", tgt)
    if task == "question-answering":
        question = _text(row, ("question",), file, line)
        context = _text(row, ("context",), file, line)
        answer = row.get("answer", row.get("answers"))
        if isinstance(answer, dict):  # SQuAD style {"text": [...], "answer_start": [...]}
            texts = answer.get("text")
            answer = texts[0] if isinstance(texts, list) and texts else texts
        if isinstance(answer, list):
            answer = answer[0] if answer else None
        if not isinstance(answer, str) or not answer.strip():
            raise DataFormatError(file, line, "answer", "must be a non-empty string")
        return _pair(f"Answer the question using the context.\n\nContext: {context}\n\nQuestion: {question}", answer)
    if task == "summarization":
        doc = _text(row, ("document", "text", "article"), file, line)
        summary = _text(row, ("summary", "highlights"), file, line)
        return _pair(f"Summarize the following text.\n\n{doc}", summary)
    raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


def _pair(user: str, assistant: str) -> list[dict]:
    return [
        {"role": "user", "content": user, "train": False},
        {"role": "assistant", "content": assistant, "train": True},
    ]


# --------------------------------------------------------------------------------------------- encoding


def render_phi3(messages: list[dict], eos_token: str) -> tuple[str, list[tuple[int, int]]]:
    """The Phi-3 chat text and the character spans [start, end) that carry loss (reply + its ``<|end|>``)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in messages:
        if m["role"] == "system" and not m["content"]:
            continue
        header = f"<|{m['role']}|>\n"
        body = m["content"] + "<|end|>"
        if m.get("train"):
            spans.append((pos + len(header), pos + len(header) + len(body)))
        chunk = header + body + "\n"
        parts.append(chunk)
        pos += len(chunk)
    parts.append(eos_token or "")
    return "".join(parts), spans


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_messages(tokenizer, messages: list[dict], max_seq_length: int) -> Encoded:
    """Token ids and labels (-100 outside assistant content and its ``<|end|>``) for one conversation."""
    text, spans = render_phi3(messages, tokenizer.eos_token or "")
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    si = 0
    for i, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:  # tokens added by the post-processor (bos/eos) have empty spans
            continue
        while si < len(spans) and spans[si][1] <= start:
            si += 1
        if si < len(spans) and start < spans[si][1] and end > spans[si][0]:
            labels[i] = ids[i]
    truncated = len(ids) > max_seq_length
    if truncated:
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
    if labels:
        labels[0] = IGNORE_INDEX  # never a target: nothing precedes it within its own example
    return Encoded(ids, labels, truncated)


def read_jsonl(path: str | Path) -> Iterable[tuple[int, Any]]:
    p = Path(path)
    if p.is_dir():  # an Azure ML uri_folder mount: take its single .jsonl file
        files = sorted(p.glob("*.jsonl")) or sorted(p.glob("*.json"))
        if len(files) != 1:
            raise DataFormatError(str(p), 0, None, "expected exactly one .jsonl file in the folder")
        p = files[0]
    if not p.exists():
        raise DataFormatError(str(p), 0, None, "file not found")
    with p.open("r", encoding="utf-8-sig") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataFormatError(str(p), n, None, f"not valid JSON ({e.msg}, column {e.colno})") from None


@dataclass
class EncodedSet:
    examples: list[dict]
    truncated: int
    dropped: int

    @property
    def tokens(self) -> int:
        return sum(len(e["input_ids"]) for e in self.examples)


def encode_file(path: str | Path, task: str, tokenizer, max_seq_length: int) -> EncodedSet:
    examples, truncated, dropped = [], 0, 0
    for line, row in read_jsonl(path):
        enc = encode_messages(tokenizer, row_to_messages(row, task, str(path), line), max_seq_length)
        if not any(x != IGNORE_INDEX for x in enc.labels):
            dropped += 1  # truncation removed every reply token: nothing to learn from this row
            continue
        truncated += enc.truncated
        examples.append({"input_ids": enc.input_ids, "labels": enc.labels})
    if not examples:
        raise DataFormatError(str(path), 0, None, "no usable examples (empty file, or every reply truncated away)")
    return EncodedSet(examples, truncated, dropped)


def split(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/validation split (``fraction`` of the rows, at least one, go to validation)."""
    if not 0 < fraction < 1:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(round(len(examples) * fraction)))
    if n_val >= len(examples):
        return examples, []
    val = set(order[:n_val])
    return [e for i, e in enumerate(examples) if i not in val], [examples[i] for i in sorted(val)]


# --------------------------------------------------------------------------------------------- batching


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bin-pack example indices into as few rows of at most ``capacity`` tokens as possible, balancing the rows.

    Longest example first, each into the least-filled row that fits (a new row when none does). Balanced rows
    mean the row padding, the only padding left, is a few tokens at most.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    n_rows = max(1, math.ceil(sum(lengths) / capacity))
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    fill = [0] * n_rows
    for i in order:
        best = None
        for r in range(len(rows)):
            if fill[r] + lengths[i] <= capacity and (best is None or fill[r] < fill[best]):
                best = r
        if best is None:
            rows.append([])
            fill.append(0)
            best = len(rows) - 1
        rows[best].append(i)
        fill[best] += lengths[i]
    return [sorted(r) for r in rows if r]


class PackingCollator:
    """Packs a batch's examples into full rows with per-example position ids and no attention mask.

    The model sees each example's positions restart at 0, and transformers turns position-id restarts into a
    block-diagonal causal mask (no attention across examples). A batch holds the same examples as without
    packing — packing changes the layout, not which examples make an optimizer step — so learning rate, steps
    and the loss (mean over reply tokens) are unchanged, while the compute on padding disappears.
    """

    def __init__(self, pad_token_id: int, max_seq_length: int):
        self.pad_token_id = pad_token_id
        self.max_seq_length = max_seq_length

    def __call__(self, features: list[dict]) -> dict:
        import torch

        lengths = [len(f["input_ids"]) for f in features]
        rows = pack_rows(lengths, self.max_seq_length)
        width = max(sum(lengths[i] for i in r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        real = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, members in enumerate(rows):
            c = 0
            for i in members:
                n = lengths[i]
                ids[r, c : c + n] = torch.tensor(features[i]["input_ids"])
                lab = torch.tensor(features[i]["labels"])
                lab[0] = IGNORE_INDEX
                labels[r, c : c + n] = lab
                pos[r, c : c + n] = torch.arange(n)
                c += n
            real[r, :c] = True
            if c < width:  # the few padding tokens form their own segment: nothing attends to them
                pos[r, c:] = torch.arange(width - c)
        return {
            "input_ids": ids,
            "labels": labels,
            "position_ids": pos,
            "real_positions": real,  # laid end to end, the rows need no padding at all
            "real_tokens": torch.tensor(sum(lengths)),
            "example_lengths": torch.tensor(lengths),
        }


class PaddingCollator:
    """Pads a batch to its longest example (right padding, attention mask) — used when packing is off."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n] = torch.tensor(f["input_ids"])
            labels[r, :n] = torch.tensor(f["labels"])
            mask[r, :n] = 1
        return {
            "input_ids": ids,
            "labels": labels,
            "attention_mask": mask,
            "real_tokens": mask.sum(),
            "example_lengths": mask.sum(dim=1),
        }

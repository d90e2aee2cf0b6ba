"""Prompts in the recipe's chat format, and greedy generation: batched with the KV cache, or one prompt at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from azft.trained.job import recipe_module


@dataclass
class Prompt:
    """One prompt: the conversation so far (the assistant's turn is next) and, if the row had one, the reference."""

    messages: list[dict]
    reference: Optional[str] = None
    line: int = 0


def prompt_from_row(row: Any, task: str, file: str, line: int) -> Prompt:
    """A JSONL row as a prompt. Chat rows ending with an assistant turn keep that turn as the reference; rows of
    the other tasks (and ``{"prompt": ...}`` alone) become one user turn through the recipe's own task mapping."""
    ft_data = recipe_module("ft_data")
    if isinstance(row, dict) and task == "chat-completion" and isinstance(row.get("messages"), list):
        msgs = row["messages"]
        has_reply = bool(msgs) and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant"
        checked = row if has_reply else {"messages": [*msgs, {"role": "assistant", "content": "-"}]}
        full = ft_data.row_to_messages(checked, task, file, line)  # every message checked, line and field named
        if has_reply:
            return Prompt(full[:-1], full[-1]["content"], line)
        if full[-2]["role"] != "user":
            raise ft_data.DataFormatError(file, line, "messages", "must end with a user (or assistant) message")
        return Prompt(full[:-1], None, line)
    if isinstance(row, dict) and "prompt" in row and "completion" not in row:
        row = {**row, "completion": "-"}
        msgs = ft_data.row_to_messages(row, "text-generation", file, line)
        return Prompt(msgs[:-1], None, line)
    msgs = ft_data.row_to_messages(row, task, file, line)
    return Prompt(msgs[:-1], msgs[-1]["content"], line)


def read_prompts(path: str, task: str) -> list[Prompt]:
    ft_data = recipe_module("ft_data")
    prompts = [prompt_from_row(row, task, str(path), n) for n, row in ft_data.read_jsonl(path)]
    if not prompts:
        raise ft_data.DataFormatError(str(path), 0, None, "no rows")
    return prompts


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation rendered as in training (the recipe's Phi-3 rendering), then the assistant
    header the model answers after."""
    ft_data = recipe_module("ft_data")
    text, _ = ft_data.render_phi3([{**m, "train": False} for m in messages], "")
    return list(tokenizer(text + "<|assistant|>\n", add_special_tokens=True)["input_ids"])


def stop_ids(tokenizer) -> list[int]:
    ids = [tokenizer.eos_token_id]
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    if isinstance(end, int) and end != tokenizer.unk_token_id:
        ids.append(end)
    return [i for i in ids if i is not None]


def _cut(tokens: list[int], stops: list[int]) -> tuple[list[int], str]:
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[:i], "stop"
    return tokens, "length"


@dataclass
class Generation:
    text: str
    tokens: int
    finish_reason: str  # stop | length


def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    max_length: Optional[int] = None,
) -> list[Generation]:
    """Greedy continuations of token-id prompts, batched (left padding, attention mask, KV cache), longest first so
    a batch holds prompts of similar length. Deterministic: greedy decoding on CPU in fp32."""
    import torch

    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    if max_length:
        prompts = [p[-max(1, max_length - max_new_tokens) :] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    out: list[Optional[Generation]] = [None] * len(prompts)
    device = next(model.parameters()).device
    for b in range(0, len(order), max(1, batch_size)):
        idx = order[b : b + max(1, batch_size)]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            n = len(prompts[i])
            ids[r, width - n :] = torch.tensor(prompts[i])
            mask[r, width - n :] = 1
        with torch.inference_mode():
            seq = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=pad,
                use_cache=True,
            )
        for r, i in enumerate(idx):
            toks, reason = _cut(seq[r, width:].tolist(), stops)
            out[i] = Generation(tokenizer.decode(toks, skip_special_tokens=True).strip(), len(toks), reason)
    return [g for g in out if g is not None]


def generate_one_by_one(
    model, tokenizer, prompts: Iterable[list[int]], *, max_new_tokens: int = 64
) -> list[Generation]:
    """The plain way: ``model.generate`` on one prompt at a time (the baseline of bench/eval_throughput.py)."""
    import torch

    stops = stop_ids(tokenizer)
    out = []
    for p in prompts:
        ids = torch.tensor([p])
        with torch.inference_mode():
            seq = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
            )
        toks, reason = _cut(seq[0, len(p) :].tolist(), stops)
        out.append(Generation(tokenizer.decode(toks, skip_special_tokens=True).strip(), len(toks), reason))
    return out

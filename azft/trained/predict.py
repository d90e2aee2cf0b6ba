"""``azft predict``: JSONL prompts in, JSONL responses out (batched greedy decoding with the KV cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from azft.errors import DataError
from azft.trained.generate import generate, prompt_ids, read_prompts
from azft.trained.job import TrainedModel, recipe_module


def predict(
    tm: TrainedModel, data: str, out: str, *, base: bool = False, max_new_tokens: int = 64, batch_size: int = 16
) -> dict:
    if not Path(data).is_file():
        raise DataError(f"{data}: no such file")
    ft_data = recipe_module("ft_data")
    try:
        prompts = read_prompts(data, tm.task)
    except ft_data.DataFormatError as e:
        raise DataError(
            str(e), hint='each line: {"messages": [...]} ending with a user turn, or {"prompt": "..."}'
        ) from None
    tokenizer = tm.tokenizer()
    model = tm.load(base=base)
    ids = [prompt_ids(tokenizer, p.messages) for p in prompts]
    gens = generate(
        model, tokenizer, ids, max_new_tokens=max_new_tokens, batch_size=batch_size, max_length=tm.max_seq_length
    )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for p, g in zip(prompts, gens):
            row = {
                "line": p.line,
                "messages": p.messages,
                "response": g.text,
                "finish_reason": g.finish_reason,
                "completion_tokens": g.tokens,
            }
            if p.reference is not None:
                row["reference"] = p.reference
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    return {
        "rows": len(prompts),
        "out": str(out_path),
        "model": "base" if base else "fine-tuned",
        "completion_tokens": sum(g.tokens for g in gens),
    }

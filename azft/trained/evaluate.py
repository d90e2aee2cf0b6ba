"""``azft eval``: assistant-token loss and perplexity of the fine-tuned model (and its base), greedy samples side by
side, a JSON result and a Markdown report, logged to the job's MLflow run."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from azft.errors import DataError
from azft.trained.generate import generate, prompt_ids, read_prompts
from azft.trained.job import TrainedModel, recipe_module


def _data_error(e: Exception) -> DataError:
    return DataError(str(e), hint='one JSON object per line, in the job\'s task format (chat: {"messages": [...]})')


def target_loss(model, tokenizer, data: str, task: str, max_seq_length: int, batch_size: int = 8) -> dict:
    """Mean cross-entropy over the tokens the recipe trains on (assistant replies and their ``<|end|>``), encoded
    with the recipe's own masks; perplexity is its exponential."""
    import torch
    import torch.nn.functional as F

    ft_data = recipe_module("ft_data")
    try:
        encoded = ft_data.encode_file(data, task, tokenizer, max_seq_length)
    except ft_data.DataFormatError as e:
        raise _data_error(e) from None
    examples = sorted(encoded.examples, key=lambda e: len(e["input_ids"]))
    collate = ft_data.PaddingCollator(tokenizer.pad_token_id)
    nll, tokens = 0.0, 0
    with torch.inference_mode():
        for b in range(0, len(examples), batch_size):
            batch = collate(examples[b : b + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            labels = batch["labels"][:, 1:].reshape(-1)
            nll += F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels, ignore_index=-100, reduction="sum"
            ).item()
            tokens += int((labels != -100).sum())
    loss = nll / max(tokens, 1)
    return {
        "loss": loss,
        "perplexity": math.exp(loss) if loss < 700 else float("inf"),
        "rows": len(examples),
        "target_tokens": tokens,
        "truncated_rows": encoded.truncated,
        "dropped_rows": encoded.dropped,
    }


def evaluate(
    tm: TrainedModel,
    *,
    data: Optional[str] = None,
    base: bool = False,
    samples: int = 4,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    seed: int = 0,
) -> dict:
    import torch

    torch.manual_seed(seed)
    split = "validation"
    if data is None:
        data = tm.validation_data or tm.train_data
        split = "validation" if tm.validation_data else "train"
        if data is None:
            raise DataError(f"job {tm.job!r} recorded no data file; pass --data FILE")
    if not Path(data).is_file():
        raise DataError(f"{data}: no such file")
    if split == "train":
        print(
            "warning: the job had no validation file; evaluating on its training rows (an optimistic loss)",
            file=sys.stderr,
        )
    tokenizer = tm.tokenizer()
    try:
        prompts = read_prompts(data, tm.task)[: max(samples, 0)]
    except recipe_module("ft_data").DataFormatError as e:
        raise _data_error(e) from None
    ids = [prompt_ids(tokenizer, p.messages) for p in prompts]
    result: dict[str, Any] = {
        "job": tm.job,
        "data": str(data),
        "split": split,
        "task": tm.task,
        "max_seq_length": tm.max_seq_length,
        "decoding": "greedy",
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "models": {},
    }
    texts: dict[str, list[str]] = {}
    for kind in (["base"] if base else []) + ["fine-tuned"]:
        model = tm.load(base=kind == "base")
        result["models"][kind] = target_loss(model, tokenizer, data, tm.task, tm.max_seq_length, batch_size)
        gens = generate(
            model, tokenizer, ids, max_new_tokens=max_new_tokens, batch_size=batch_size, max_length=tm.max_seq_length
        )
        texts[kind] = [g.text for g in gens]
        del model
    result["samples"] = [
        {
            "line": p.line,
            "prompt": _prompt_text(p.messages),
            "reference": p.reference,
            **{kind: texts[kind][i] for kind in texts},
        }
        for i, p in enumerate(prompts)
    ]
    if base:
        result["loss_change"] = result["models"]["fine-tuned"]["loss"] - result["models"]["base"]["loss"]
    return result


def evaluate_generations(
    data: str,
    task: str,
    generate_fn: Callable[[list[list[dict]]], list[str]],
    *,
    job: str,
    samples: int = 4,
    label: str = "fine-tuned",
) -> dict:
    """Side-by-side samples from a model that only answers prompts (a deployed endpoint): ``generate_fn`` takes the
    conversations (each ending with a user turn) and returns one reply text each. The result has the shape of
    ``evaluate``'s, for ``markdown_report`` and ``save_and_log``, without a loss: an endpoint returns no
    log-probabilities of the reference replies."""
    if not Path(data).is_file():
        raise DataError(f"{data}: no such file")
    try:
        prompts = read_prompts(data, task)[: max(samples, 0)]
    except recipe_module("ft_data").DataFormatError as e:
        raise _data_error(e) from None
    texts = list(generate_fn([p.messages for p in prompts]))
    if len(texts) != len(prompts):
        raise DataError(f"{len(texts)} replies for {len(prompts)} prompts from {label}")
    return {
        "job": job,
        "data": str(data),
        "split": "given",
        "task": task,
        "decoding": "the endpoint's",
        "max_new_tokens": None,
        "models": {},
        "samples": [
            {"line": p.line, "prompt": _prompt_text(p.messages), "reference": p.reference, label: texts[i]}
            for i, p in enumerate(prompts)
        ],
    }


def _prompt_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _cell(text: Optional[str], limit: int = 160) -> str:
    if text is None:
        return "—"
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|") or "(empty)"


def markdown_report(result: dict) -> str:
    kinds = list(result["models"]) or [
        k for k in (result["samples"][0] if result["samples"] else {}) if k not in ("line", "prompt", "reference")
    ]
    lines = [
        f"# Evaluation of {result['job']}",
        "",
        f"Data: `{result['data']}` ({result['split']}, task {result['task']}); loss over assistant tokens; "
        f"{result['decoding']} decoding"
        + (f", at most {result['max_new_tokens']} new tokens." if result["max_new_tokens"] else "."),
        "",
        "| model | loss | perplexity | rows | target tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for k in result["models"]:
        m = result["models"][k]
        lines.append(f"| {k} | {m['loss']:.4f} | {m['perplexity']:.2f} | {m['rows']} | {m['target_tokens']} |")
    if "loss_change" in result:
        lines += ["", f"Fine-tuning changed the loss by {result['loss_change']:+.4f}."]
    if result["samples"]:
        lines += [
            "",
            "## Samples",
            "",
            "| line | prompt | reference | " + " | ".join(kinds) + " |",
            "|---|---|---|" + "---|" * len(kinds),
        ]
        for s in result["samples"]:
            lines.append(
                f"| {s['line']} | {_cell(s['prompt'])} | {_cell(s['reference'])} | "
                + " | ".join(_cell(s[k]) for k in kinds)
                + " |"
            )
    return "\n".join(lines) + "\n"


def save_and_log(tm: TrainedModel, result: dict, out_dir: Path) -> dict:
    """eval.json and report.md into ``out_dir``; metrics and both files into the job's MLflow run."""
    return save_and_log_run(
        result, out_dir, run_id=tm.mlflow_run_id, tracking_uri=tm.tracking_uri, experiment=tm.experiment
    )


def save_and_log_run(
    result: dict, out_dir: Path, *, run_id: Optional[str], tracking_uri: Optional[str], experiment: Optional[str]
) -> dict:
    """``save_and_log`` for any job's MLflow run (a remote job's, whose model is not here)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    (out_dir / "report.md").write_text(markdown_report(result))
    logged = None
    if run_id:
        from azft.tracking import Tracker

        tracker = Tracker(tracking_uri, experiment or "azft", quiet=True)
        metrics = {}
        for kind, m in result["models"].items():
            prefix = "eval_tuned" if kind == "fine-tuned" else "eval_base"  # the recipe's own eval_loss stays
            metrics[f"{prefix}_loss"] = [(0, m["loss"])]
            metrics[f"{prefix}_perplexity"] = [(0, m["perplexity"])]
        if metrics:
            tracker.log_metrics(run_id, metrics)
        for name in ("eval.json", "report.md"):
            tracker.log_artifact(run_id, out_dir / name, "evaluation")
        logged = run_id
    return {"dir": str(out_dir), "mlflow_run_id": logged}

"""Pipeline step: evaluate a fine-tuned model on held-out data.

Loads the fine-tune step's output (a PEFT adapter on top of its base model, or full weights) with transformers and
peft, then writes to ``--output``:

- ``eval.json``: validation loss and perplexity over the target tokens (assistant turns for chat data, the
  completion/summary/answer/... for the other tasks), with row and token counts;
- ``samples.csv``: a few greedy generations next to their references.

When ``MLFLOW_RUN_ID`` or ``MLFLOW_TRACKING_URI`` is set (Azure ML sets both for every step) the metrics, the
samples table and eval.json are logged to that MLflow run as well; an MLflow failure is reported and never fails
the evaluation.

Exit status: 0 on success, 2 for invalid inputs (unreadable data, no model found in the folder), 1 when the model
cannot be loaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

EXIT_FAILED = 1
EXIT_INVALID = 2

# How rows of the non-chat tasks become a conversation: (prompt template over the row's fields, target field).
# Field names follow Azure's documented dataset formats.
TASK_PROMPTS: dict[str, tuple[str, str]] = {
    "text-generation": ("{prompt}", "completion"),
    "summarization": ("Summarize the following text.\n\n{document}", "summary"),
    "translation": ("Translate the following text.\n\n{source}", "target"),
    "question-answering": ("{context}\n\nQuestion: {question}", "answer"),
    "text-classification": ("Classify the following text.\n\n{text}", "label"),
}

PHI3_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class StepError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        self.exit_code = exit_code


def _positive(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained-model", required=True, type=Path, help="fine-tune output: adapter or full model")
    p.add_argument("--model", help="base model (hub id, local dir or tiny-phi3) an adapter applies to")
    p.add_argument("--model-path", type=Path, help="base model folder mounted by Azure ML; wins over --model")
    p.add_argument("--validation-data", type=Path)
    p.add_argument("--train-data", type=Path, help="used only when no validation file is given")
    p.add_argument("--task", default="chat-completion")
    p.add_argument("--max-seq-length", type=_positive, default=2048)
    p.add_argument("--batch-size", type=_positive, default=4)
    p.add_argument("--max-rows", type=_positive, default=0, help="evaluate at most this many rows (0 = all)")
    p.add_argument("--num-samples", type=_positive, default=5)
    p.add_argument("--max-new-tokens", type=_positive, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", required=True, type=Path)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------
# data


def row_to_messages(row: dict, task: str, where: str) -> list[dict]:
    """The conversation a row stands for; its last message is the target the loss is measured on."""
    if task == "chat-completion":
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise StepError(f"{where}: field 'messages': expected a non-empty list")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
                raise StepError(f"{where}: field 'messages[{i}]': expected an object with string role and content")
            out.append({"role": m["role"], "content": m["content"]})
        if not any(m["role"] == "assistant" for m in out):
            raise StepError(f"{where}: field 'messages': no assistant turn to evaluate")
        return out
    if task == "token-classification":
        tokens, tags = row.get("tokens"), row.get("tags")
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise StepError(f"{where}: fields 'tokens' and 'tags': expected lists")
        prompt = "Tag each token.\n\n" + " ".join(map(str, tokens))
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": " ".join(map(str, tags))}]
    if task not in TASK_PROMPTS:
        raise StepError(
            f"unknown task {task!r}; expected chat-completion, token-classification or one of {', '.join(TASK_PROMPTS)}"
        )
    template, target = TASK_PROMPTS[task]
    try:
        prompt = template.format(**{k: str(v) for k, v in row.items()})
    except KeyError as exc:
        raise StepError(f"{where}: field {exc.args[0]!r} is missing (task {task})") from None
    if target not in row:
        raise StepError(f"{where}: field {target!r} is missing (task {task})")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(row[target])}]


def read_rows(path: Path, task: str, max_rows: int) -> list[list[dict]]:
    if not path.is_file():
        raise StepError(f"{path}: no such file")
    rows: list[list[dict]] = []
    with path.open("r", encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StepError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise StepError(f"{where}: expected a JSON object")
            rows.append(row_to_messages(row, task, where))
            if max_rows and len(rows) >= max_rows:
                break
    if not rows:
        raise StepError(f"{path}: no rows to evaluate")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# model


def find_model_dir(root: Path) -> Path:
    """The folder holding the weights: ``root`` itself, or the one folder below it that has them."""
    if not root.is_dir():
        raise StepError(f"{root}: trained model folder not found")

    def has_model(d: Path) -> bool:
        return (d / "adapter_config.json").is_file() or (d / "config.json").is_file()

    if has_model(root):
        return root
    found = sorted(
        d
        for d in root.rglob("*")
        if d.is_dir() and has_model(d) and not any(part.startswith("checkpoint-") for part in d.relative_to(root).parts)
    )
    if not found:
        raise StepError(f"{root}: no adapter_config.json or config.json found (is this the fine-tune output?)")
    return min(found, key=lambda d: len(d.relative_to(root).parts))


def resolve_base(model: str | None, model_path: Path | None, adapter_cfg: dict) -> str:
    if model_path is not None:
        return str(model_path)
    if model == "tiny-phi3":
        try:
            from azft.tiny_phi3 import ensure_tiny_phi3
        except ImportError:
            raise StepError(
                "tiny-phi3 is azft's local test model and needs azft installed; "
                "pass its folder with --model-path instead"
            ) from None
        return str(ensure_tiny_phi3())
    if model:
        return model
    recorded = adapter_cfg.get("base_model_name_or_path")
    if recorded:
        return str(recorded)
    raise StepError("the trained model is an adapter but no base model was given (--model or --model-path)")


def load_model(trained: Path, model: str | None, model_path: Path | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = find_model_dir(trained)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    adapter_file = model_dir / "adapter_config.json"
    info: dict = {"trained_model": str(model_dir), "device": device, "dtype": str(dtype).replace("torch.", "")}
    try:
        if adapter_file.is_file():
            from peft import PeftModel

            adapter_cfg = json.loads(adapter_file.read_text(encoding="utf-8"))
            base = resolve_base(model, model_path, adapter_cfg)
            base_model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
            net = PeftModel.from_pretrained(base_model, str(model_dir))
            info.update(kind="adapter", base_model=base, peft_type=adapter_cfg.get("peft_type"))
        else:
            net = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
            info.update(kind="full")
        has_tokenizer = any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        tok_source = str(model_dir) if has_tokenizer else info.get("base_model", str(model_dir))
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
    except StepError:
        raise
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepError(f"could not load the model: {first}", EXIT_FAILED) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PHI3_TEMPLATE
    net.to(device).eval()
    return net, tokenizer, device, info


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def _encode(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def build_example(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; labels are -100 everywhere except the assistant turns (their end token included)."""
    ids = _encode(tokenizer, messages, add_generation_prompt=False)
    labels = [-100] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_encode(tokenizer, messages[:i], add_generation_prompt=True)) if i else 0
        end = len(_encode(tokenizer, messages[: i + 1], add_generation_prompt=False))
        labels[start:end] = ids[start:end]
    return ids[:max_len], labels[:max_len]


def compute_loss(net, tokenizer, rows, device: str, batch_size: int, max_len: int) -> dict:
    import torch
    import torch.nn.functional as F

    examples = [build_example(tokenizer, msgs, max_len) for msgs in rows]
    examples = [e for e in examples if any(lbl != -100 for lbl in e[1][1:])]
    if not examples:
        raise StepError(f"no target tokens left within max_seq_length={max_len}")
    examples.sort(key=lambda e: len(e[0]))  # similar lengths together: little padding
    pad = tokenizer.pad_token_id
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(examples), max(1, batch_size)):
            batch = examples[b : b + max(1, batch_size)]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (ids, lbl) in enumerate(batch):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                labels[r, : len(lbl)] = torch.tensor(lbl)
                mask[r, : len(ids)] = 1
            logits = net(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
            shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))
            shift_labels = labels[:, 1:].reshape(-1).to(device)
            total_nll += F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum").item()
            total_tokens += int((shift_labels != -100).sum().item())
    loss = total_nll / total_tokens
    return {
        "eval_loss": loss,
        "perplexity": math.exp(loss) if loss < 700 else float("inf"),
        "rows": len(examples),
        "target_tokens": total_tokens,
    }


def generate_samples(net, tokenizer, rows, device: str, n: int, max_new_tokens: int, max_len: int) -> list[dict]:
    import torch

    samples = []
    for idx, msgs in enumerate(rows[:n]):
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prompt_msgs, reference = msgs[:last], msgs[last]["content"]
        ids = _encode(tokenizer, prompt_msgs, add_generation_prompt=True)[-max(1, max_len - max_new_tokens) :]
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = net.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in prompt_msgs)
        samples.append({"index": idx, "prompt": prompt, "reference": reference, "generated": generated})
    return samples


# ---------------------------------------------------------------------------------------------------------------
# outputs


def write_outputs(out: Path, result: dict, samples: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    with (out / "samples.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["index", "prompt", "reference", "generated"])
        writer.writeheader()
        writer.writerows(samples)


def log_to_mlflow(out: Path, result: dict, samples: list[dict]) -> None:
    if not (os.environ.get("MLFLOW_RUN_ID") or os.environ.get("MLFLOW_TRACKING_URI")):
        return
    try:
        import mlflow

        active = mlflow.active_run()
        ctx = mlflow.start_run(run_id=os.environ.get("MLFLOW_RUN_ID")) if active is None else None
        try:
            mlflow.log_metrics({"eval_loss": result["eval_loss"], "perplexity": result["perplexity"]})
            if samples:
                table = {k: [s[k] for s in samples] for k in ("index", "prompt", "reference", "generated")}
                mlflow.log_table(data=table, artifact_file="evaluation/samples.json")
            mlflow.log_artifact(str(out / "eval.json"), artifact_path="evaluation")
            mlflow.log_artifact(str(out / "samples.csv"), artifact_path="evaluation")
        finally:
            if ctx is not None:
                mlflow.end_run()
    except Exception as exc:
        print(
            f"warning: could not log the evaluation to MLflow ({type(exc).__name__}); "
            "eval.json and samples.csv are in the output folder",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        data = args.validation_data
        split = "validation"
        if data is None:
            if args.train_data is None:
                raise StepError("give --validation-data (or --train-data when there is no validation file)")
            data, split = args.train_data, "train"
            print(
                "warning: no validation file; evaluating on training rows, so the loss is optimistic", file=sys.stderr
            )
        rows = read_rows(data, args.task, args.max_rows)
        import torch

        torch.manual_seed(args.seed)
        net, tokenizer, device, info = load_model(args.trained_model, args.model, args.model_path)
        metrics = compute_loss(net, tokenizer, rows, device, args.batch_size, args.max_seq_length)
        samples = generate_samples(
            net, tokenizer, rows, device, args.num_samples, args.max_new_tokens, args.max_seq_length
        )
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    result = {
        **metrics,
        "split": split,
        "data": str(data),
        "task": args.task,
        "samples": len(samples),
        "max_seq_length": args.max_seq_length,
        "model": info,
    }
    write_outputs(args.output, result, samples)
    log_to_mlflow(args.output, result, samples)
    print(
        f"eval_loss={result['eval_loss']:.4f} perplexity={result['perplexity']:.3f} "
        f"rows={result['rows']} target_tokens={result['target_tokens']} -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

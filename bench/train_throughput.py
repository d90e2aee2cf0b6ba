"""Training throughput: azft's fine-tune recipe next to a stock Hugging Face Trainer baseline, same run.

Both train the same model (tiny-phi3 by default) with the same LoRA hyperparameters on the same examples — the
same token ids and the same reply-only labels, the same seed and therefore the same batches in the same order:

* baseline: ``transformers.Trainer`` + PEFT LoRA + ``DataCollatorForSeq2Seq`` (pad each batch to its longest
  example), the way most tutorials write it;
* azft: ``components/finetune/src/train.py`` as the component runs it (packed rows, per-example position ids).

Reported per side: real (non-padding) training tokens per second (median over ``--repeats``), the validation loss of
the trained adapter (same evaluation code for both: mean cross-entropy over reply tokens), and peak RSS. Timing
covers the training loop only (model loading and evaluation are excluded for both).

The data: synthetic chat in the length mix of instruction-tuning sets — mostly short question/answer pairs and a
minority of long-form replies (the long tail is what makes padding expensive). Deterministic from ``--seed``.

    python bench/train_throughput.py                 # ~5 minutes on 2 CPU cores
    python bench/train_throughput.py --repeats 1 --train 128   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "components" / "finetune" / "src"

WORDS = ("the a model data train loss token reply user system answer question water sky blue code list paris "
         "france light day night small large fast slow first second learn write read explain because which "
         "number value function return example step result method table field line file error check").split()


# ------------------------------------------------------------------------------------------------ data


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n))).capitalize() + "."


def text_of_words(rng: random.Random, n_words: int) -> str:
    out, left = [], n_words
    while left > 0:
        k = min(left, rng.randint(6, 18))
        out.append(sentence(rng, k))
        left -= k
    return " ".join(out)


def make_chat(rng: random.Random) -> dict:
    long_form = rng.random() < 0.3  # 30% long-form answers (essays, code, explanations)
    user = text_of_words(rng, int(rng.lognormvariate(3.0, 0.6)))  # median ~20 words
    reply_median = 5.6 if long_form else 3.4  # ~270 vs ~30 words
    reply = text_of_words(rng, int(rng.lognormvariate(reply_median, 0.5)))
    msgs = [{"role": "system", "content": "You are a concise, helpful expert."}] if rng.random() < 0.5 else []
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"messages": msgs}


def write_data(directory: Path, n_train: int, n_val: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    train, val = directory / "train.jsonl", directory / "val.jsonl"
    for path, n in ((train, n_train), (val, n_val)):
        with path.open("w") as f:
            for _ in range(n):
                f.write(json.dumps(make_chat(rng)) + "\n")
    return train, val


# ------------------------------------------------------------------------------------------------ workers


def _run_measured(cmd: list[str], env: dict | None = None) -> tuple[int, float, str]:
    """Run a child; return (exit code, its peak RSS in MB, combined output)."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read()
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return proc.returncode, rss_mb, out


def run_recipe(a, model: str, train: Path, out: Path) -> dict:
    cmd = [sys.executable, str(RECIPE / "train.py"), "--model", model, "--train_data", str(train),
           "--method", "lora", "--epochs", "1", "--learning_rate", str(a.learning_rate),
           "--batch_size", str(a.batch_size), "--max_seq_length", str(a.max_seq_length), "--seed", str(a.seed),
           "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", str(a.lora_dropout),
           "--lora_target_modules", "all-linear",
           "--packing", "true", "--save_steps", "1000000", "--logging_steps", "10",
           "--model_output", str(out / "model"), "--metrics", str(out / "metrics"), "--resume", "never"]
    env = {k: "" for k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}  # no tracking in a throughput measurement
    code, rss, log = _run_measured(cmd, env)
    if code != 0:
        raise SystemExit(f"azft recipe failed:\n{log[-3000:]}")
    m = json.loads((out / "metrics" / "metrics.json").read_text())
    return {"tokens": m["train_tokens"], "seconds": m["train_runtime_seconds"], "rss_mb": rss,
            "adapter": str(out / "model"), "steps": m["global_step"]}


def run_baseline(a, model: str, train: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "baseline", "--model", model, "--train-file", str(train),
           "--out", str(out), "--learning-rate", str(a.learning_rate), "--batch-size", str(a.batch_size),
           "--max-seq-length", str(a.max_seq_length), "--seed", str(a.seed), "--lora-dropout", str(a.lora_dropout)]
    code, rss, log = _run_measured(cmd)
    if code != 0:
        raise SystemExit(f"baseline failed:\n{log[-3000:]}")
    r = json.loads((out / "baseline.json").read_text())
    r["rss_mb"] = rss
    return r


def baseline_worker(a) -> None:
    """Hugging Face Trainer + PEFT LoRA + DataCollatorForSeq2Seq (pads each batch to its longest example)."""
    import datasets
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    sys.path.insert(0, str(RECIPE))
    import ft_data  # the same token ids and reply-only labels as the recipe

    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    examples = ft_data.encode_file(a.train_file, "chat-completion", tok, a.max_seq_length).examples
    ds = datasets.Dataset.from_list(examples)
    model = AutoModelForCausalLM.from_pretrained(a.model)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=a.lora_dropout, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    args = TrainingArguments(
        output_dir=str(Path(a.out) / "ckpt"), per_device_train_batch_size=a.batch_size, num_train_epochs=1,
        learning_rate=a.learning_rate, lr_scheduler_type="linear", seed=a.seed, data_seed=a.seed,
        logging_steps=10, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      data_collator=DataCollatorForSeq2Seq(tok, model=model, padding=True, label_pad_token_id=-100))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    trainer.save_model(str(Path(a.out) / "model"))
    tokens = sum(len(e["input_ids"]) for e in examples)
    padded = 0
    loader = trainer.get_train_dataloader()
    for batch in loader:
        padded += batch["input_ids"].numel()
    (Path(a.out) / "baseline.json").write_text(json.dumps({
        "tokens": tokens, "seconds": seconds, "adapter": str(Path(a.out) / "model"),
        "steps": trainer.state.global_step, "padded_tokens": padded,
    }))


# ------------------------------------------------------------------------------------------------ evaluation


def validation_loss(model_dir: str, adapter: str, val: Path, max_seq_length: int) -> float:
    """Mean cross-entropy over reply tokens of the validation set (padded batches, no packing: plain and fair)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(RECIPE))
    import ft_data

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    base.config.use_cache = False
    model = PeftModel.from_pretrained(base, adapter).eval()
    examples = ft_data.encode_file(val, "chat-completion", tok, max_seq_length).examples
    collate = ft_data.PaddingCollator(tok.pad_token_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            b = collate(examples[i : i + 8])
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            labels = b["labels"][:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                                       labels.reshape(-1), ignore_index=-100, reduction="sum").item()
            count += int((labels != -100).sum())
    return total / count


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", choices=["baseline"], help=argparse.SUPPRESS)
    p.add_argument("--model", default="tiny-phi3", help="tiny-phi3 or a local Hugging Face model directory")
    p.add_argument("--train", type=int, default=384, help="training examples")
    p.add_argument("--val", type=int, default=64, help="validation examples")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=8)
    p.add_argument("--max-seq-length", dest="max_seq_length", type=int, default=1024)
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lora-dropout", dest="lora_dropout", type=float, default=0.0,
                   help="default 0: with dropout the two runs draw different masks (different tensor layouts), so "
                        "their validation losses would differ by sampling noise rather than by method")
    p.add_argument("--train-file", dest="train_file", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    a = p.parse_args()
    if a.worker == "baseline":
        baseline_worker(a)
        return 0

    sys.path.insert(0, str(REPO))
    model = a.model
    if model == "tiny-phi3":
        from azft.tiny_phi3 import ensure_tiny_phi3

        model = str(ensure_tiny_phi3())
    with tempfile.TemporaryDirectory(prefix="azft-bench-") as tmp:
        tmp_path = Path(tmp)
        train, val = write_data(tmp_path, a.train, a.val, a.seed)
        runs: dict[str, list[dict]] = {"baseline": [], "azft": []}
        for r in range(a.repeats):
            for side, fn in (("baseline", run_baseline), ("azft", run_recipe)):
                res = fn(a, model, train, tmp_path / f"{side}-{r}")
                res["tokens_per_second"] = res["tokens"] / res["seconds"]
                runs[side].append(res)
                print(f"  run {r + 1}/{a.repeats} {side:8s}: {res['tokens_per_second']:9,.0f} real tok/s "
                      f"({res['tokens']:,} tokens in {res['seconds']:.1f}s, {res['steps']} steps, "
                      f"peak RSS {res['rss_mb']:.0f} MB)", flush=True)
        results = {}
        for side, rs in runs.items():
            results[side] = {
                "real_tokens_per_second": statistics.median(x["tokens_per_second"] for x in rs),
                "validation_loss": validation_loss(model, rs[-1]["adapter"], val, a.max_seq_length),
                "peak_rss_mb": max(x["rss_mb"] for x in rs),
                "steps": rs[-1]["steps"],
            }
        padded = runs["baseline"][-1].get("padded_tokens")
    b, z = results["baseline"], results["azft"]
    # each repeat runs the two sides back to back: the ratio within a pair is robust to load that comes and goes
    ratio = statistics.median(za["tokens_per_second"] / ba["tokens_per_second"]
                              for ba, za in zip(runs["baseline"], runs["azft"]))
    print()
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"model {Path(model).name}, {a.train} training examples, batch {a.batch_size}, LoRA r=8 "
          f"dropout {a.lora_dropout:g}, 1 epoch, median of {a.repeats}")
    if padded:
        tokens = runs["baseline"][-1]["tokens"]
        print(f"baseline batches are {padded / tokens:.2f}x padding-inflated ({padded:,} positions for "
              f"{tokens:,} real tokens)")
    print(f"{'':10s} {'real tok/s':>12s} {'val loss':>10s} {'peak RSS':>10s} {'steps':>6s}")
    for side, label in (("baseline", "HF Trainer"), ("azft", "azft")):
        r = results[side]
        print(f"{label:10s} {r['real_tokens_per_second']:12,.0f} {r['validation_loss']:10.4f} "
              f"{r['peak_rss_mb']:8.0f}MB {r['steps']:6d}")
    verdict_speed = "meets" if ratio >= 3 else "below"
    verdict_loss = "no worse" if z["validation_loss"] <= b["validation_loss"] + 1e-3 else "WORSE"
    print(f"speed-up: {ratio:.2f}x real tokens/s, median of paired runs ({verdict_speed} the 3x target); "
          f"validation loss {z['validation_loss'] - b['validation_loss']:+.4f} ({verdict_loss})")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"ratio": ratio, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

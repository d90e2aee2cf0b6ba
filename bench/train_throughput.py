"""Training throughput: azft's fine-tune recipe next to a stock Hugging Face Trainer baseline, same run.

Both train the same model with the same LoRA hyperparameters on the same examples — the
same token ids and the same reply-only labels (the baseline's labels are assistant-only too, so the two losses are
the same objective), the same seed and therefore the same batches in the same order:

* baseline: ``transformers.Trainer`` + PEFT LoRA + ``DataCollatorForSeq2Seq`` (pad each batch to its longest
  example), the way most tutorials write it (fp32 on a CPU, bf16 on a GPU);
* azft: ``components/finetune/src/train.py`` as the component runs it (packed rows, per-example position ids,
  ``precision: auto``).

Reported per side: real (non-padding) training tokens per second (median over ``--repeats``), model FLOP/s and MFU
(docs/mfu.md: the same model FLOPs for both sides, since they train the same examples; each side's peak for the
dtype its matmuls run in), padding inflation (positions computed ÷ real tokens), the validation loss of the trained
adapter (same evaluation code for both: mean cross-entropy over reply tokens) and peak RSS. Timing covers the
training loop only (model loading and evaluation are excluded for both).

The data (``--data``), synthetic chat, deterministic from ``--seed``:

* ``long-tail``: the length mix of instruction-tuning sets — mostly short question/answer pairs and 30% long-form
  replies (the long tail is what makes padding expensive);
* ``short``: everyday chat — short questions, replies of a few sentences, no long tail (little padding to win
  back: the ratio is then set by how close each side runs to the machine's peak).

The defaults are the setup of a new user trying azft on a CPU: a 4-layer, 512-wide Phi-3 with random weights and
its own tokenizer (``--model phi3-4x512-random``, built locally), 1,800 rows, LoRA r16 on qkv_proj/o_proj, batch 8,
512 tokens. With CUDA the default model is a Phi-3-mini-shaped model with random weights (32 layers, 3072 wide,
32k vocabulary; ``--model phi3-mini-random``), trained in bf16 with SDPA or flash attention.

    python bench/train_throughput.py --data long-tail      # tens of minutes on 2 CPU cores (3 paired repeats)
    python bench/train_throughput.py --data short
    python bench/train_throughput.py --repeats 1 --train 240   # a quick look
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
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "components" / "finetune" / "src"

WORDS = (
    "the a model data train loss token reply user system answer question water sky blue code list paris "
    "france light day night small large fast slow first second learn write read explain because which "
    "number value function return example step result method table field line file error check"
).split()


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


def make_chat(rng: random.Random, mix: str = "long-tail") -> dict:
    if mix == "short":
        user = text_of_words(rng, int(rng.lognormvariate(2.7, 0.5)))  # median ~15 words
        reply = text_of_words(rng, int(rng.lognormvariate(3.7, 0.45)))  # median ~40 words, no long tail
    else:
        long_form = rng.random() < 0.3  # 30% long-form answers (essays, code, explanations)
        user = text_of_words(rng, int(rng.lognormvariate(3.0, 0.6)))  # median ~20 words
        reply_median = 5.6 if long_form else 3.4  # ~270 vs ~30 words
        reply = text_of_words(rng, int(rng.lognormvariate(reply_median, 0.5)))
    msgs = [{"role": "system", "content": "You are a concise, helpful expert."}] if rng.random() < 0.5 else []
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"messages": msgs}


def write_data(directory: Path, n_train: int, n_val: int, seed: int, mix: str) -> tuple[Path, Path]:
    rng = random.Random(seed)
    train, val = directory / "train.jsonl", directory / "val.jsonl"
    for path, n in ((train, n_train), (val, n_val)):
        with path.open("w") as f:
            for _ in range(n):
                f.write(json.dumps(make_chat(rng, mix)) + "\n")
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
    cmd = [
        sys.executable,
        str(RECIPE / "train.py"),
        "--model",
        model,
        "--train_data",
        str(train),
        "--method",
        "lora",
        "--epochs",
        "1",
        "--learning_rate",
        str(a.learning_rate),
        "--batch_size",
        str(a.batch_size),
        "--max_seq_length",
        str(a.max_seq_length),
        "--seed",
        str(a.seed),
        "--lora_r",
        str(a.lora_r),
        "--lora_alpha",
        str(2 * a.lora_r),
        "--lora_dropout",
        str(a.lora_dropout),
        "--lora_target_modules",
        a.lora_targets,
        "--precision",
        "auto",
        "--packing",
        "true",
        "--save_steps",
        "1000000",
        "--logging_steps",
        "10",
        "--model_output",
        str(out / "model"),
        "--metrics",
        str(out / "metrics"),
        "--resume",
        "never",
    ]
    env = {k: "" for k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}  # no tracking in a throughput measurement
    code, rss, log = _run_measured(cmd, env)
    if code != 0:
        raise SystemExit(f"azft recipe failed:\n{log[-3000:]}")
    m = json.loads((out / "metrics" / "metrics.json").read_text())
    return {
        "tokens": m["train_tokens"],
        "seconds": m["train_runtime_seconds"],
        "rss_mb": rss,
        "adapter": str(out / "model"),
        "steps": m["global_step"],
        "model_flops": m["model_flops"],
        "padding_inflation": m["padding_inflation"],
        "precision": m["precision"],
    }


def run_baseline(a, model: str, train: Path, out: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "baseline",
        "--model",
        model,
        "--train-file",
        str(train),
        "--out",
        str(out),
        "--learning-rate",
        str(a.learning_rate),
        "--batch-size",
        str(a.batch_size),
        "--max-seq-length",
        str(a.max_seq_length),
        "--seed",
        str(a.seed),
        "--lora-dropout",
        str(a.lora_dropout),
        "--lora-r",
        str(a.lora_r),
        "--lora-targets",
        a.lora_targets,
    ]
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

    cuda = torch.cuda.is_available()
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    examples = ft_data.encode_file(a.train_file, "chat-completion", tok, a.max_seq_length).examples
    ds = datasets.Dataset.from_list(examples)
    model = AutoModelForCausalLM.from_pretrained(
        a.model, attn_implementation="sdpa", dtype=torch.bfloat16 if cuda else torch.float32
    )
    model.config.use_cache = False
    targets = "all-linear" if a.lora_targets == "all-linear" else a.lora_targets.split(",")
    model = get_peft_model(
        model,
        LoraConfig(
            r=a.lora_r,
            lora_alpha=2 * a.lora_r,
            lora_dropout=a.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        ),
    )
    args = TrainingArguments(
        output_dir=str(Path(a.out) / "ckpt"),
        per_device_train_batch_size=a.batch_size,
        num_train_epochs=1,
        learning_rate=a.learning_rate,
        lr_scheduler_type="linear",
        seed=a.seed,
        data_seed=a.seed,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ds,
        data_collator=DataCollatorForSeq2Seq(tok, model=model, padding=True, label_pad_token_id=-100),
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    trainer.save_model(str(Path(a.out) / "model"))
    tokens = sum(len(e["input_ids"]) for e in examples)
    padded = sum(batch["input_ids"].numel() for batch in trainer.get_train_dataloader())
    (Path(a.out) / "baseline.json").write_text(
        json.dumps(
            {
                "tokens": tokens,
                "seconds": seconds,
                "adapter": str(Path(a.out) / "model"),
                "steps": trainer.state.global_step,
                "padding_inflation": padded / tokens,
                "precision": "bf16" if cuda else "fp32",
            }
        )
    )


# ------------------------------------------------------------------------------------------------ models


def _random_phi3(cache: Path, name: str, shape: dict, dtype: str) -> Path:
    """A Phi-3 with random weights in ``dtype``, tiny-phi3's config changed by ``shape`` and tiny-phi3's tokenizer
    (its ids all lie inside any larger vocabulary). Built once into ``cache/name``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from azft.tiny_phi3 import ensure_tiny_phi3

    dest = cache / name
    if (dest / "config.json").exists():
        return dest
    tiny = ensure_tiny_phi3()
    config = AutoConfig.from_pretrained(tiny)
    config.update(shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(dest)
    return dest


def phi3_mini_random(cache: Path) -> Path:
    """A Phi-3-mini-shaped model (the real config: 32 layers, 3072 wide, 32k vocabulary) in bf16."""
    return _random_phi3(
        cache,
        "phi3-mini-random",
        {
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
            "sliding_window": 2047,
            "tie_word_embeddings": False,
        },
        "bfloat16",
    )


def phi3_small_random(cache: Path) -> Path:
    """A new user's first model: Phi-3 with 4 layers, 512 wide (8 heads of 64, MLP 1,376) in fp32, with tiny-phi3's
    1,024-id tokenizer; its matmuls are large enough for the CPU's vector (and bf16) units to matter, unlike
    tiny-phi3's 128-wide ones."""
    return _random_phi3(
        cache,
        "phi3-4x512-random",
        {
            "hidden_size": 512,
            "intermediate_size": 1376,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
        },
        "float32",
    )


BUILT_MODELS = {"phi3-mini-random": phi3_mini_random, "phi3-4x512-random": phi3_small_random}


def resolve_bench_model(name: str) -> str:
    import torch

    if name == "auto":
        name = "phi3-mini-random" if torch.cuda.is_available() else "phi3-4x512-random"
    if name == "tiny-phi3":
        from azft.tiny_phi3 import ensure_tiny_phi3

        return str(ensure_tiny_phi3())
    if name in BUILT_MODELS:
        return str(BUILT_MODELS[name](Path(os.environ.get("AZFT_CACHE", Path.home() / ".cache" / "azft"))))
    return name


# ------------------------------------------------------------------------------------------------ evaluation


def validation_loss(model_dir: str, adapter: str, val: Path, max_seq_length: int) -> float:
    """Mean cross-entropy over reply tokens of the validation set (padded batches, no packing: plain and fair)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(RECIPE))
    import ft_data

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else None)
    base.config.use_cache = False
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the reader to act on
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        model = PeftModel.from_pretrained(base, adapter).to(device).eval()
    examples = ft_data.encode_file(val, "chat-completion", tok, max_seq_length).examples
    collate = ft_data.PaddingCollator(tok.pad_token_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            b = collate(examples[i : i + 8])
            logits = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device)).logits
            labels = b["labels"][:, 1:].to(device)
            total += torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            ).item()
            count += int((labels != -100).sum())
    return total / count


# ------------------------------------------------------------------------------------------------ main


TARGETS = {"long-tail": 3.5, "short": 2.5}

#: "equal validation loss": azft's at most 1% above the baseline's, the tolerance tests/train/test_mfu.py holds
#: bf16 autocast to against fp32. bf16 rounding alone moves a full-size run's validation loss by a few tenths of a
#: percent either way (docs/mfu.md), so a tighter bound would judge rounding noise, not the recipe.
LOSS_TOLERANCE = 0.01


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", choices=["baseline"], help=argparse.SUPPRESS)
    p.add_argument(
        "--model",
        default="auto",
        help="phi3-4x512-random, tiny-phi3, phi3-mini-random or a local Hugging Face model directory "
        "(auto: phi3-mini-random with CUDA, phi3-4x512-random without)",
    )
    p.add_argument("--data", choices=sorted(TARGETS), default="long-tail", help="the length mix of the chat data")
    p.add_argument("--train", type=int, default=1800, help="training examples")
    p.add_argument("--val", type=int, default=128, help="validation examples")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=8)
    p.add_argument("--max-seq-length", dest="max_seq_length", type=int, default=512)
    p.add_argument("--lora-r", dest="lora_r", type=int, default=16, help="LoRA rank (alpha = 2 × rank)")
    p.add_argument(
        "--lora-targets",
        dest="lora_targets",
        default="qkv_proj,o_proj",
        help="comma-separated module names, or all-linear",
    )
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lora-dropout",
        dest="lora_dropout",
        type=float,
        default=0.0,
        help="default 0: with dropout the two runs draw different masks (different tensor layouts), so "
        "their validation losses would differ by sampling noise rather than by method",
    )
    p.add_argument("--train-file", dest="train_file", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    return p.parse_args()


def measure(a, model: str) -> tuple[dict, dict, float]:
    """Paired runs (baseline then azft, ``--repeats`` times); per side the medians, and the median paired ratio."""
    with tempfile.TemporaryDirectory(prefix="azft-bench-") as tmp:
        tmp_path = Path(tmp)
        train, val = write_data(tmp_path, a.train, a.val, a.seed, a.data)
        runs: dict[str, list[dict]] = {"baseline": [], "azft": []}
        for r in range(a.repeats):
            for side, fn in (("baseline", run_baseline), ("azft", run_recipe)):
                res = fn(a, model, train, tmp_path / f"{side}-{r}")
                res["tokens_per_second"] = res["tokens"] / res["seconds"]
                runs[side].append(res)
                print(
                    f"  run {r + 1}/{a.repeats} {side:8s}: {res['tokens_per_second']:9,.0f} real tok/s "
                    f"({res['tokens']:,} tokens in {res['seconds']:.1f}s, {res['steps']} steps, "
                    f"peak RSS {res['rss_mb']:.0f} MB)",
                    flush=True,
                )
        results = {}
        for side, rs in runs.items():
            results[side] = {
                "real_tokens_per_second": statistics.median(x["tokens_per_second"] for x in rs),
                "seconds": statistics.median(x["seconds"] for x in rs),
                "validation_loss": validation_loss(model, rs[-1]["adapter"], val, a.max_seq_length),
                "peak_rss_mb": max(x["rss_mb"] for x in rs),
                "steps": rs[-1]["steps"],
                "padding_inflation": rs[-1]["padding_inflation"],
                "precision": rs[-1]["precision"],
            }
        model_flops = runs["azft"][-1]["model_flops"]  # the same examples on both sides: the same model FLOPs
    # each repeat runs the two sides back to back: the ratio within a pair is robust to load that comes and goes
    ratio = statistics.median(
        za["tokens_per_second"] / ba["tokens_per_second"] for ba, za in zip(runs["baseline"], runs["azft"])
    )
    return results, {"model_flops": model_flops}, ratio


def add_mfu(results: dict, model_flops: float) -> None:
    sys.path.insert(0, str(RECIPE))
    from ft_hardware import detect_device

    for r in results.values():
        device = detect_device(r["precision"], 1)
        r["tflops_per_second"] = model_flops / r["seconds"] / 1e12
        r["mfu"] = model_flops / r["seconds"] / device.peak_flops if device.peak_flops else None
        r["peak_basis"] = device.peak_basis


def report(a, model: str, results: dict, ratio: float) -> None:
    b, z = results["baseline"], results["azft"]
    print()
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"model {Path(model).name}, data {a.data}, {a.train} training examples, batch {a.batch_size}, "
        f"{a.max_seq_length} tokens, LoRA r={a.lora_r} on {a.lora_targets} dropout {a.lora_dropout:g}, 1 epoch, median of {a.repeats}"
    )
    print(
        f"{'':10s} {'precision':>9s} {'real tok/s':>11s} {'TFLOP/s':>9s} {'MFU':>7s} {'padding':>8s} "
        f"{'val loss':>9s} {'peak RSS':>9s} {'steps':>6s}"
    )
    for side, label in (("baseline", "HF Trainer"), ("azft", "azft")):
        r = results[side]
        mfu = f"{r['mfu']:.2%}" if r["mfu"] is not None else "?"
        print(
            f"{label:10s} {r['precision']:>9s} {r['real_tokens_per_second']:11,.0f} {r['tflops_per_second']:9.4f} "
            f"{mfu:>7s} {r['padding_inflation']:7.2f}x {r['validation_loss']:9.4f} {r['peak_rss_mb']:7.0f}MB "
            f"{r['steps']:6d}"
        )
    for side, label in (("baseline", "HF Trainer"), ("azft", "azft")):
        print(f"  peak for {label}: {results[side]['peak_basis']}")
    target = TARGETS[a.data]
    verdict_speed = "meets" if ratio >= target else "below"
    gap = z["validation_loss"] / b["validation_loss"] - 1
    verdict_loss = "equal" if gap <= LOSS_TOLERANCE else "WORSE"
    print(
        f"speed-up: {ratio:.2f}x real tokens/s, median of paired runs ({verdict_speed} the {target:g}x target for "
        f"the {a.data} mix); validation loss {z['validation_loss'] - b['validation_loss']:+.4f} ({gap:+.2%}: "
        f"{verdict_loss} within {LOSS_TOLERANCE:.0%})"
    )


def main() -> int:
    a = parse_args()
    if a.worker == "baseline":
        baseline_worker(a)
        return 0
    sys.path.insert(0, str(REPO))
    model = resolve_bench_model(a.model)
    results, totals, ratio = measure(a, model)
    add_mfu(results, totals["model_flops"])
    report(a, model, results, ratio)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"data": a.data, "ratio": ratio, **totals, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

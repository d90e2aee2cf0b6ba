"""azft fine-tune recipe: LoRA, QLoRA, DoRA or full fine-tuning of a Phi model, with optional DeepSpeed ZeRO.

Runs unchanged as the Azure ML command component ``components/finetune/component.yml`` and on a user's machine
(``azft submit --backend local``). One process, ``torchrun`` or the ``deepspeed`` launcher.

    python train.py --model tiny-phi3 --train_data train.jsonl --method lora --model_output out/model \\
        --metrics out/metrics

What it does, in order:
  1. resolve the model (a mounted folder, a local Hugging Face directory, ``tiny-phi3``, or a hub id),
  2. turn the task's JSONL rows into Phi-3 chat text with loss labels on the assistant replies only (ft_data.py),
  3. wrap the model for the method (peft LoRA / DoRA, 4-bit QLoRA on CUDA, or all weights trainable),
  4. train with the Hugging Face Trainer: packed batches without padding, checkpoints every ``save_steps``,
     automatic resume from the last checkpoint in ``model_output/checkpoints``, validation at each epoch end,
  5. write the adapter (or full weights) and tokenizer to ``model_output``; metrics.jsonl, metrics.json and
     loss_curve.png to ``metrics``; the same to MLflow when the environment names a run or tracking URI.

Exit codes: 0 done, 2 bad input (message on stderr, prefixed ``azft-finetune: error:``), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ft_data import TASKS, DataFormatError, PackingCollator, PaddingCollator, encode_file, split  # noqa: E402
from ft_report import MetricsFiles, MlflowLogger, Throughput, progress_line  # noqa: E402

METHODS = ("lora", "qlora", "dora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ERROR_PREFIX = "azft-finetune: error:"


class RecipeError(Exception):
    """Bad input or an impossible combination; the message says what would work."""


# ----------------------------------------------------------------------------------------------------- arguments


def _bool(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--model", default="tiny-phi3", help="hub id, local Hugging Face directory, or tiny-phi3")
    a("--model_path", default=None, help="a mounted model folder; wins over --model")
    a("--train_data", required=True)
    a("--validation_data", default=None)
    a("--validation_split", type=float, default=0.0)
    a("--task", default="chat-completion", choices=TASKS)
    a("--method", default="lora", choices=METHODS)
    a("--epochs", type=int, default=1)
    a("--max_steps", type=int, default=-1)
    a("--learning_rate", type=float, default=2e-4)
    a("--batch_size", type=int, default=4)
    a("--gradient_accumulation_steps", type=int, default=1)
    a("--max_seq_length", type=int, default=2048)
    a("--warmup_ratio", type=float, default=0.0)
    a("--lr_scheduler", default="linear")
    a("--weight_decay", type=float, default=0.0)
    a("--seed", type=int, default=42)
    a("--packing", type=_bool, default=True)
    a("--precision", default="auto", choices=PRECISIONS)
    a("--gradient_checkpointing", type=_bool, default=False)
    a("--lora_r", type=int, default=8)
    a("--lora_alpha", type=int, default=16)
    a("--lora_dropout", type=float, default=0.05)
    a("--lora_target_modules", default="all-linear")
    a("--deepspeed_stage", type=int, default=0, choices=(0, 1, 2, 3))
    a("--deepspeed_offload", default="none", choices=("none", "optimizer", "parameters", "all"))
    a("--save_steps", type=int, default=100)
    a("--logging_steps", type=int, default=1)
    a("--resume", default="auto", help="auto (last checkpoint in model_output, if any), never, or a checkpoint dir")
    a("--model_output", required=True)
    a("--metrics", required=True)
    a("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    return p


def check_args(args: argparse.Namespace) -> None:
    problems = []
    positive = ("epochs", "batch_size", "gradient_accumulation_steps", "max_seq_length", "save_steps",
                "logging_steps", "lora_r", "lora_alpha")
    for name in positive:
        if getattr(args, name) < 1:
            problems.append(f"--{name} must be at least 1 (got {getattr(args, name)})")
    if args.max_steps == 0 or args.max_steps < -1:
        problems.append(f"--max_steps must be -1 (off) or a positive number (got {args.max_steps})")
    if not args.learning_rate > 0:
        problems.append(f"--learning_rate must be positive (got {args.learning_rate})")
    if not 0 <= args.warmup_ratio < 1:
        problems.append(f"--warmup_ratio must be in [0, 1) (got {args.warmup_ratio})")
    if not 0 <= args.validation_split < 1:
        problems.append(f"--validation_split must be in [0, 1) (got {args.validation_split})")
    if not 0 <= args.lora_dropout < 1:
        problems.append(f"--lora_dropout must be in [0, 1) (got {args.lora_dropout})")
    if args.deepspeed_offload in ("parameters", "all") and args.deepspeed_stage != 3:
        problems.append(f"--deepspeed_offload {args.deepspeed_offload} offloads parameters, which needs "
                        f"--deepspeed_stage 3 (got {args.deepspeed_stage}); use --deepspeed_offload optimizer")
    if problems:
        raise RecipeError("; ".join(problems))


# ----------------------------------------------------------------------------------------------------- model


def resolve_model(args: argparse.Namespace) -> str:
    """A local directory to load from, or a hub id for ``from_pretrained``."""
    if args.model_path:
        p = Path(args.model_path)
        if not (p / "config.json").exists():
            found = sorted(p.rglob("config.json")) if p.is_dir() else []
            if not found:
                raise RecipeError(f"--model_path {p}: no config.json in the folder (a Hugging Face model directory "
                                  "holds config.json, the weights and the tokenizer)")
            p = found[0].parent
        return str(p)
    name = args.model
    if name == "tiny-phi3":
        try:
            from azft.tiny_phi3 import ensure_tiny_phi3
        except ImportError:
            raise RecipeError("model tiny-phi3 is built by azft, which is not installed in this environment; "
                              "pass a model directory or hub id instead") from None
        return str(ensure_tiny_phi3())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise RecipeError(f"--model {p}: no config.json there (expected a Hugging Face model directory)")
        return str(p.resolve())
    if name.startswith((".", "/", "~")):
        raise RecipeError(f"--model {name}: no such directory")
    return name


def _load_error(name: str, exc: Exception) -> RecipeError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return RecipeError(
        f"could not load model {name!r} from the Hugging Face hub ({first}). Without network access pass a local "
        "model directory (--model /path/to/dir), or a model already in the Hugging Face cache with "
        "HF_HUB_OFFLINE=1; for a quick offline run use --model tiny-phi3"
    )


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise _load_error(source, e) from None
    if not getattr(tok, "is_fast", False):
        raise RecipeError(f"model {source!r} has no fast tokenizer; the recipe needs one (offset mapping for the "
                          "loss mask)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def pick_precision(requested: str, cuda: bool) -> str:
    import torch

    if requested == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if requested == "fp16" and not cuda:
        raise RecipeError("--precision fp16 needs a CUDA GPU (mixed precision with loss scaling); on CPU use "
                          "--precision bf16 or fp32")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise RecipeError("--precision bf16 is not supported by this GPU; use --precision fp16 or auto")
    return requested


def check_qlora(cuda: bool) -> None:
    if not cuda:
        raise RecipeError(
            "method qlora loads the base model in 4-bit with bitsandbytes, which needs a CUDA GPU, and none is "
            "available here. On this machine use --method lora (or dora, or full); run qlora on a GPU (for "
            "example the maap backend with a GPU cluster)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RecipeError("method qlora needs the bitsandbytes package: pip install bitsandbytes") from None


def load_model(source: str, args: argparse.Namespace, precision: str, cuda: bool):
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {}
    compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if args.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
        kwargs["dtype"] = compute_dtype
    elif args.method in ("lora", "dora") and cuda and args.deepspeed_stage == 0:
        kwargs["dtype"] = compute_dtype  # frozen base weights in half precision; the adapter trains in fp32
    else:
        kwargs["dtype"] = torch.float32  # full fine-tuning keeps fp32 master weights (autocast does the rest)
    if cuda and importlib.util.find_spec("flash_attn") is not None and precision in ("bf16", "fp16"):
        kwargs["attn_implementation"] = "flash_attention_2"  # varlen kernels honour packed position ids
    elif args.packing:
        from ft_attention import register

        kwargs["attn_implementation"] = register()  # per-example causal attention inside packed rows
    else:
        kwargs["attn_implementation"] = "sdpa"
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(source, e) from None
    model.config.use_cache = False
    return model, kwargs["attn_implementation"]


def apply_method(model, args: argparse.Namespace):
    import torch

    if args.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    targets = args.lora_target_modules.strip()
    target_modules: str | list[str] = (
        "all-linear" if targets in ("", "all-linear") else [t.strip() for t in targets.split(",") if t.strip()]
    )
    if isinstance(target_modules, list):
        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        missing = [t for t in target_modules if t not in present]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")})
            raise RecipeError(f"--lora_target_modules: this model has no module named {', '.join(missing)} "
                              f"(its linear layers: {', '.join(linear)}; or use all-linear)")
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules,
        use_dora=args.method == "dora",
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise RecipeError(f"--lora_target_modules {targets!r}: {str(e).splitlines()[0][:200]} "
                          f"(this model's linear layers: {', '.join(names)})") from None


# ----------------------------------------------------------------------------------------------------- trainer


def checkpointing_args(enabled: bool) -> dict:
    """Activation (gradient) checkpointing arguments under the name this transformers version uses."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {prefix: enabled, f"{prefix}_kwargs": {"use_reentrant": False} if enabled else None}


def make_trainer_class():
    import torch
    from transformers import Trainer

    class RecipeTrainer(Trainer):
        """Counts real (non-padding) tokens, and evaluates a token-weighted loss over the reply tokens."""

        real_tokens_seen = 0
        #: set when the attention splits rows at position-id restarts (azft_packed_sdpa, flash-attention varlen)
        segment_attention = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            real = inputs.pop("real_tokens", None)
            if real is not None and model.training:
                self.real_tokens_seen += int(real)
            if self.segment_attention and not return_outputs and "attention_mask" not in inputs:
                return self._packed_loss(model, inputs, num_items_in_batch)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def _packed_loss(self, model, inputs, num_items_in_batch):
            """Loss of a packed batch, computing logits only where a reply token is predicted.

            The rows are laid end to end as one sequence (the attention keeps examples apart by their position
            ids, so the row layout no longer matters) and the vocabulary projection runs only at the positions
            whose next token is a label: prompt tokens and padding never reach the LM head or the softmax.
            """
            labels = inputs["labels"].reshape(1, -1)
            ids = inputs["input_ids"].reshape(1, -1)
            pos = inputs["position_ids"].reshape(1, -1)
            scored = (labels[0, 1:] != -100).nonzero().flatten()  # position j predicts token j + 1
            logits = model(input_ids=ids, position_ids=pos, logits_to_keep=scored).logits[0]
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[0, scored + 1], reduction="sum")
            if num_items_in_batch is None:
                return loss / max(int(scored.numel()), 1)
            loss = loss / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes  # mirrors Trainer.compute_loss
            return loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            loader = self.get_eval_dataloader(eval_dataset)
            model = self.model
            was_training = model.training
            model.eval()
            total = torch.zeros(2, dtype=torch.float64, device=self.args.device)
            with torch.no_grad():
                for batch in loader:
                    batch = self._prepare_inputs(batch)
                    batch.pop("real_tokens", None)
                    labels = batch.pop("labels")
                    with self.autocast_smart_context_manager():
                        logits = model(**batch).logits
                    shift_logits = logits[:, :-1].float()
                    shift_labels = labels[:, 1:]
                    loss = torch.nn.functional.cross_entropy(
                        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                        ignore_index=-100, reduction="sum",
                    )
                    total += torch.stack([loss.double(), (shift_labels != -100).sum().double()])
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(total)
            if was_training:
                model.train()
            eval_loss = (total[0] / total[1].clamp(min=1)).item()
            metrics = {
                f"{metric_key_prefix}_loss": eval_loss,
                f"{metric_key_prefix}_perplexity": math.exp(min(eval_loss, 50.0)),
                f"{metric_key_prefix}_tokens": int(total[1].item()),
            }
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return RecipeTrainer


def make_report_callback(trainer_ref: list, files: MetricsFiles, tracker: MlflowLogger, is_main: bool):
    import torch
    from transformers import TrainerCallback

    class ReportCallback(TrainerCallback):
        """Per logged step: one metrics.jsonl line, MLflow metrics, and a progress line on stdout."""

        def __init__(self):
            self.meter = Throughput()
            self.last_train: dict = {}
            self.last_eval: dict = {}

        def on_train_begin(self, args, state, control, **kw):
            self.meter = Throughput()

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            trainer = trainer_ref[0]
            record: dict = {"step": state.global_step, "epoch": round(float(state.epoch or 0.0), 4)}
            if "loss" in logs:
                tokens = torch.tensor(float(trainer.real_tokens_seen), dtype=torch.float64)
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    tokens = tokens.to(args.device)
                    torch.distributed.all_reduce(tokens)
                tps, per_step = self.meter.update(state.global_step, int(tokens.item()))
                record.update(loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
                              tokens_per_second=round(tps, 1))
                if "grad_norm" in logs and logs["grad_norm"] is not None:
                    record["grad_norm"] = float(logs["grad_norm"])
                eta = per_step * max(state.max_steps - state.global_step, 0)
                if is_main:
                    print(progress_line(state.global_step, state.max_steps, record["epoch"], record["loss"],
                                        record["learning_rate"], tps, eta), flush=True)
                self.last_train = record
            elif "eval_loss" in logs:
                record.update(eval_loss=float(logs["eval_loss"]), perplexity=float(logs["eval_perplexity"]))
                if is_main:
                    print(f"eval  step {state.global_step} | epoch {record['epoch']:.2f} | "
                          f"eval_loss {record['eval_loss']:.4f} | perplexity {record['perplexity']:.2f}",
                          flush=True)
                self.last_eval = record
            else:
                return
            if is_main:
                files.append(record)
                tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step=state.global_step)

    return ReportCallback()


# ----------------------------------------------------------------------------------------------------- main


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that was written completely (a kill can land in the middle of a save).

    The Trainer writes trainer_state.json last, after the weights, optimizer, scheduler and RNG states.
    """
    if not ckpt_dir.is_dir():
        return None
    found = []
    for d in ckpt_dir.glob("checkpoint-*"):
        suffix = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and suffix.isdigit():
            found.append((int(suffix), d))
    for _, d in sorted(found, reverse=True):
        try:
            json.loads((d / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if any(d.glob("rng_state*.pth")):
            return str(d)
    return None


def run(args: argparse.Namespace) -> int:
    check_args(args)
    import torch

    cuda = torch.cuda.is_available()
    if args.method == "qlora":
        check_qlora(cuda)  # before anything slow: the answer does not depend on the model or the data
    precision = pick_precision(args.precision, cuda)

    from transformers import TrainingArguments, set_seed

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    is_main = rank == 0
    out_dir = Path(args.model_output)
    ckpt_dir = out_dir / "checkpoints"
    files = MetricsFiles(args.metrics) if is_main else None
    tracker = MlflowLogger(enabled=is_main)

    source = resolve_model(args)
    tokenizer = load_tokenizer(source)
    t0 = time.monotonic()
    train_set = encode_file(args.train_data, args.task, tokenizer, args.max_seq_length)
    train_examples, val_examples = train_set.examples, []
    if args.validation_data:
        val_examples = encode_file(args.validation_data, args.task, tokenizer, args.max_seq_length).examples
    elif args.validation_split > 0:
        train_examples, val_examples = split(train_examples, args.validation_split, args.seed)
    if is_main:
        note = f", {train_set.truncated} truncated to {args.max_seq_length} tokens" if train_set.truncated else ""
        note += f", {train_set.dropped} dropped (no reply tokens left)" if train_set.dropped else ""
        print(f"data: {len(train_examples)} training examples ({sum(len(e['input_ids']) for e in train_examples):,}"
              f" tokens), {len(val_examples)} validation examples{note} [{time.monotonic() - t0:.1f}s]", flush=True)

    deepspeed_config = None
    if args.deepspeed_stage > 0:
        from ft_deepspeed import zero_config

        deepspeed_config = zero_config(args.deepspeed_stage, args.deepspeed_offload, cuda=cuda)
    resume_from = None
    if args.resume == "auto":
        resume_from = last_complete_checkpoint(ckpt_dir)
    elif args.resume != "never":
        if not Path(args.resume).is_dir():
            raise RecipeError(f"--resume {args.resume}: no such checkpoint directory")
        resume_from = args.resume

    training_args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_steps=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler,
        weight_decay=args.weight_decay,
        seed=args.seed,
        data_seed=args.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
        **checkpointing_args(args.gradient_checkpointing),
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        eval_strategy="epoch" if val_examples else "no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        deepspeed=deepspeed_config,
        ddp_backend="gloo" if (not cuda and world_size > 1) else None,
        log_level="warning",
    )

    _ = training_args.device  # joins the process group now: ZeRO-3 partitions the weights while they load
    if deepspeed_config is not None:
        import deepspeed

        deepspeed.init_distributed()  # DeepSpeed's view of that same process group (on CPU it is gloo)
    set_seed(args.seed)
    model, attn_impl = load_model(source, args, precision, cuda)
    model = apply_method(model, args)
    trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
    total = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())  # ZeRO-3: full size
    if is_main:
        print(f"model: {source} | method {args.method} | trainable {trainable:,} of {total:,} parameters | "
              f"precision {precision} | attention {attn_impl} | packing {'on' if args.packing else 'off'} | "
              f"processes {world_size}{f' | ZeRO-{args.deepspeed_stage}' if deepspeed_config else ''}", flush=True)

    pad_id = tokenizer.pad_token_id
    collator = PackingCollator(pad_id, args.max_seq_length) if args.packing else PaddingCollator(pad_id)
    trainer_ref: list = []
    report = make_report_callback(trainer_ref, files, tracker, is_main)
    trainer = make_trainer_class()(
        model=model,
        args=training_args,
        train_dataset=_ListDataset(train_examples),
        eval_dataset=_ListDataset(val_examples) if val_examples else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[report],
    )
    trainer_ref.append(trainer)
    trainer.segment_attention = args.packing and attn_impl in ("azft_packed_sdpa", "flash_attention_2")
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the report callback prints one readable line per step instead

    resolved = {k: v for k, v in vars(args).items() if k != "local_rank"}
    resolved.update(model_source=source, precision_resolved=precision, attn_implementation=attn_impl,
                    world_size=world_size, trainable_parameters=trainable, total_parameters=total,
                    train_examples=len(train_examples), validation_examples=len(val_examples))
    resumed_step = 0
    if resume_from:
        resumed_step = int(Path(resume_from).name.rsplit("-", 1)[-1]) if "-" in Path(resume_from).name else 0
        if is_main:
            print(f"resuming from {resume_from} (step {resumed_step})", flush=True)
            files.truncate_after(resumed_step)
    if is_main:
        (Path(args.metrics) / "resolved_config.json").write_text(
            json.dumps({**resolved, "deepspeed_config": deepspeed_config}, indent=2, default=str))
        tracker.log_params(resolved)
        tracker.set_tags({"azft.method": args.method, "azft.task": args.task})

    started = time.monotonic()
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.monotonic() - started

    final_eval: dict = {}
    if val_examples:
        if report.last_eval.get("step") == trainer.state.global_step:
            final_eval = {"eval_loss": report.last_eval["eval_loss"], "eval_perplexity": report.last_eval["perplexity"]}
        else:
            final_eval = trainer.evaluate()

    trainer.save_model(str(out_dir))  # every rank: ZeRO-3 gathers the partitioned weights here
    if trainer.accelerator.num_processes > 1:
        trainer.accelerator.wait_for_everyone()
    if not is_main:
        return 0

    tokenizer.save_pretrained(str(out_dir))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: the checkpoints' only purpose was resuming
    records = files.read()
    train_records = [r for r in records if "loss" in r]
    summary = {
        "method": args.method,
        "task": args.task,
        "global_step": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0.0), 4),
        "final_loss": train_records[-1]["loss"] if train_records else None,
        "train_loss": float(train_output.training_loss),
        "train_runtime_seconds": round(runtime, 2),
        "train_tokens": int(trainer.real_tokens_seen) * world_size,
        "tokens_per_second": round(trainer.real_tokens_seen * world_size / max(runtime, 1e-9), 1),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "resumed_from_step": resumed_step,
    }
    if final_eval:
        summary["eval_loss"] = float(final_eval["eval_loss"])
        summary["perplexity"] = float(final_eval["eval_perplexity"])
    summary_path = files.write_summary(summary)
    curve = files.plot(title=f"{Path(source).name} · {args.method}")
    tracker.log_metrics({f"final_{k}": v for k, v in summary.items() if isinstance(v, (int, float))},
                        step=trainer.state.global_step)
    tracker.log_artifact(out_dir, "model")
    tracker.log_artifact(curve)
    tracker.log_artifact(summary_path)
    tracker.log_artifact(Path(args.metrics) / "resolved_config.json")
    tracker.end("FINISHED")
    line = f"done: {summary['global_step']} steps, final loss {summary['final_loss']}"
    if "eval_loss" in summary:
        line += f", eval loss {summary['eval_loss']:.4f} (perplexity {summary['perplexity']:.2f})"
    print(line, flush=True)
    print(f"model:   {out_dir.resolve()}", flush=True)
    print(f"metrics: {Path(args.metrics).resolve()} (loss_curve.png, metrics.json, metrics.jsonl)", flush=True)
    return 0


class _ListDataset:
    """A map-style dataset over encoded examples (what torch's DataLoader needs: __len__ and __getitem__)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    args = build_parser().parse_args(argv)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the recipe prints its own progress lines
    except ImportError:
        pass
    try:
        return run(args)
    except (RecipeError, DataFormatError) as e:
        print(f"{ERROR_PREFIX} {e}", file=sys.stderr, flush=True)
        return 2
    except ValueError as e:
        if "deepspeed" in str(e).lower() or "unknown task" in str(e):
            print(f"{ERROR_PREFIX} {e}", file=sys.stderr, flush=True)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

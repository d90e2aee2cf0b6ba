"""azft fine-tune recipe: LoRA, QLoRA, DoRA or full fine-tuning of a Phi model, with optional DeepSpeed ZeRO.

Runs unchanged as the Azure ML command component ``components/finetune/component.yml`` and on a user's machine
(``azft submit --backend local``). One process, ``torchrun`` or the ``deepspeed`` launcher.

    python train.py --model tiny-phi3 --train_data train.jsonl --method lora --model_output out/model \\
        --metrics out/metrics

Read ``FinetuneRecipe`` top to bottom; it runs in this order:
  1. ``setup()``: the device and precision; the data (each task's JSONL rows become Phi-3 chat text with loss labels
     on the assistant replies only, ft_data.py); the model, wrapped for the method (peft LoRA / DoRA, 4-bit QLoRA on
     CUDA, or all weights trainable, ft_model.py); the Hugging Face Trainer that drives it (ft_trainer.py),
  2. ``train()``: packed batches without padding, checkpoints every ``save_steps``, automatic resume from the last
     complete checkpoint in ``model_output/checkpoints``, validation at each epoch end,
  3. ``evaluate()``: the validation loss of the final weights (token-weighted over the reply tokens),
  4. ``save()``: the adapter (or full weights) and tokenizer to ``model_output``; metrics.json and loss_curve.png
     next to metrics.jsonl in ``metrics``; the same to MLflow when the environment names a run or tracking URI,
  5. ``cleanup()``: closes the MLflow run and says where everything is.

Exit codes: 0 done, 2 bad input (message on stderr, prefixed ``azft-finetune: error:``), 1 anything else.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ft_data import TASKS, DataFormatError, PackingCollator, PaddingCollator, encode_file, split
from ft_flops import ModelFlops
from ft_hardware import detect_device
from ft_model import (
    RecipeError,
    apply_method,
    check_qlora,
    load_model,
    load_tokenizer,
    pick_precision,
    resolve_model,
)
from ft_report import MetricsFiles, MlflowLogger
from ft_trainer import (
    ListDataset,
    RecipeTrainer,
    RecipeTrainingArguments,
    ReportCallback,
    checkpointing_args,
)

METHODS = ("lora", "qlora", "dora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ERROR_PREFIX = "azft-finetune: error:"

__all__ = ["FinetuneRecipe", "RecipeError", "build_parser", "main"]


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
    positive = (
        "epochs",
        "batch_size",
        "gradient_accumulation_steps",
        "max_seq_length",
        "save_steps",
        "logging_steps",
        "lora_r",
        "lora_alpha",
    )
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
        problems.append(
            f"--deepspeed_offload {args.deepspeed_offload} offloads parameters, which needs "
            f"--deepspeed_stage 3 (got {args.deepspeed_stage}); use --deepspeed_offload optimizer"
        )
    if problems:
        raise RecipeError("; ".join(problems))


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


# ----------------------------------------------------------------------------------------------------- the recipe


class FinetuneRecipe:
    """One fine-tuning run: ``setup()`` → ``train()`` → ``evaluate()`` → ``save()`` → ``cleanup()``."""

    def __init__(self, args: argparse.Namespace):
        check_args(args)
        self.args = args
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.is_main = int(os.environ.get("RANK", "0")) == 0
        self.out_dir = Path(args.model_output)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.files = MetricsFiles(args.metrics) if self.is_main else None
        self.tracker = MlflowLogger(enabled=self.is_main)
        self.eval_metrics: dict = {}

    # ------------------------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        self._setup_device()
        self._setup_data()
        self._setup_trainer()
        self._setup_resume()
        self._log_config()

    def _setup_device(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available()
        if self.args.method == "qlora":
            check_qlora(self.cuda)  # before anything slow: the answer does not depend on the model or the data
        self.precision, self.precision_reason = pick_precision(self.args.precision, self.cuda)
        self.device = detect_device(self.precision, self.world_size)

    def _setup_data(self) -> None:
        args = self.args
        self.source = resolve_model(args)
        self.tokenizer = load_tokenizer(self.source)
        t0 = time.monotonic()
        train_set = encode_file(args.train_data, args.task, self.tokenizer, args.max_seq_length)
        self.train_examples, self.val_examples = train_set.examples, []
        if args.validation_data:
            self.val_examples = encode_file(
                args.validation_data, args.task, self.tokenizer, args.max_seq_length
            ).examples
        elif args.validation_split > 0:
            self.train_examples, self.val_examples = split(self.train_examples, args.validation_split, args.seed)
        if self.is_main:
            note = f", {train_set.truncated} truncated to {args.max_seq_length} tokens" if train_set.truncated else ""
            note += f", {train_set.dropped} dropped (no reply tokens left)" if train_set.dropped else ""
            tokens = sum(len(e["input_ids"]) for e in self.train_examples)
            print(
                f"data: {len(self.train_examples)} training examples ({tokens:,} tokens), "
                f"{len(self.val_examples)} validation examples{note} [{time.monotonic() - t0:.1f}s]",
                flush=True,
            )

    def _training_arguments(self) -> RecipeTrainingArguments:
        args = self.args
        self.deepspeed_config = None
        if args.deepspeed_stage > 0:
            from ft_deepspeed import zero_config

            self.deepspeed_config = zero_config(args.deepspeed_stage, args.deepspeed_offload, cuda=self.cuda)
        return RecipeTrainingArguments(
            output_dir=str(self.ckpt_dir),
            num_train_epochs=args.epochs,
            max_steps=args.max_steps,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            warmup_ratio=args.warmup_ratio,
            lr_scheduler_type=args.lr_scheduler,
            weight_decay=args.weight_decay,
            seed=args.seed,
            data_seed=args.seed,
            bf16=self.precision == "bf16",
            fp16=self.precision == "fp16",
            use_cpu=not self.cuda,
            **checkpointing_args(args.gradient_checkpointing),
            logging_strategy="steps",
            logging_steps=args.logging_steps,
            save_strategy="steps",
            save_steps=args.save_steps,
            save_total_limit=2,
            eval_strategy="epoch" if self.val_examples else "no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            deepspeed=self.deepspeed_config,
            ddp_backend="gloo" if (not self.cuda and self.world_size > 1) else None,
            log_level="warning",
        )

    def _setup_model(self, training_args: RecipeTrainingArguments):
        from transformers import set_seed

        _ = training_args.device  # joins the process group now: ZeRO-3 partitions the weights while they load
        if self.deepspeed_config is not None:
            import deepspeed

            deepspeed.init_distributed()  # DeepSpeed's view of that same process group (on CPU it is gloo)
        set_seed(self.args.seed)
        model, self.attn_impl = load_model(self.source, self.args, self.precision, self.cuda)
        model = apply_method(model, self.args)
        self.trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
        self.total = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())  # ZeRO-3: full size
        return model

    def _setup_trainer(self) -> None:
        from transformers.trainer_callback import PrinterCallback

        args = self.args
        training_args = self._training_arguments()
        model = self._setup_model(training_args)
        pad_id = self.tokenizer.pad_token_id
        collator = PackingCollator(pad_id, args.max_seq_length) if args.packing else PaddingCollator(pad_id)
        self.report = ReportCallback(self.files, self.tracker, self.is_main, peak_flops=self.device.peak_flops)
        self.trainer = RecipeTrainer(
            model=model,
            args=training_args,
            train_dataset=ListDataset(self.train_examples),
            eval_dataset=ListDataset(self.val_examples) if self.val_examples else None,
            data_collator=collator,
            processing_class=self.tokenizer,
            callbacks=[self.report],
            flops=ModelFlops.of(model),
        )
        self.trainer.remove_callback(PrinterCallback)  # the report callback prints one readable line per step instead

    def _setup_resume(self) -> None:
        args = self.args
        self.resume_from, self.resumed_step = None, 0
        if args.resume == "auto":
            self.resume_from = last_complete_checkpoint(self.ckpt_dir)
        elif args.resume != "never":
            if not Path(args.resume).is_dir():
                raise RecipeError(f"--resume {args.resume}: no such checkpoint directory")
            self.resume_from = args.resume
        if self.resume_from:
            name = Path(self.resume_from).name
            self.resumed_step = int(name.rsplit("-", 1)[-1]) if "-" in name else 0
            if self.is_main:
                print(f"resuming from {self.resume_from} (step {self.resumed_step})", flush=True)
                self.files.truncate_after(self.resumed_step)

    def _log_config(self) -> None:
        args = self.args
        if not self.is_main:
            return
        zero = f" | ZeRO-{args.deepspeed_stage}" if self.deepspeed_config else ""
        print(
            f"model: {self.source} | method {args.method} | trainable {self.trainable:,} of {self.total:,} "
            f"parameters | precision {self.precision} | attention {self.attn_impl} | packing "
            f"{'on' if args.packing else 'off'} | processes {self.world_size}{zero}",
            flush=True,
        )
        print(f"precision {self.precision}: {self.precision_reason}", flush=True)
        peak = f"{self.device.peak_flops / 1e12:.4g} TFLOP/s" if self.device.peak_flops else "unknown"
        print(f"device: {self.device.kind} {self.device.name} | peak {peak} = {self.device.peak_basis}", flush=True)
        resolved = {k: v for k, v in vars(args).items() if k != "local_rank"}
        resolved.update(
            model_source=self.source,
            precision_resolved=self.precision,
            precision_reason=self.precision_reason,
            device=self.device.name,
            attn_implementation=self.attn_impl,
            world_size=self.world_size,
            trainable_parameters=self.trainable,
            total_parameters=self.total,
            train_examples=len(self.train_examples),
            validation_examples=len(self.val_examples),
        )
        (Path(args.metrics) / "resolved_config.json").write_text(
            json.dumps({**resolved, "deepspeed_config": self.deepspeed_config}, indent=2, default=str)
        )
        self.tracker.log_params(resolved)
        self.tracker.set_tags({"azft.method": args.method, "azft.task": args.task})

    # ------------------------------------------------------------------------------------------------- train

    def train(self) -> None:
        # what setup built (tokenizer, encoded data, model) lives to the end: the garbage collector need not scan
        # it again (the Trainer collects garbage before training, a quarter of a second on the bench's data)
        gc.freeze()
        started = time.monotonic()
        self.train_output = self.trainer.train(resume_from_checkpoint=self.resume_from)
        self.runtime = time.monotonic() - started

    # ------------------------------------------------------------------------------------------------- evaluate

    def evaluate(self) -> None:
        """The validation loss of the final weights (reused when the last epoch-end validation already saw them)."""
        if not self.val_examples:
            return
        last = self.report.last_eval
        if last.get("step") == self.trainer.state.global_step:
            self.eval_metrics = {"eval_loss": last["eval_loss"], "eval_perplexity": last["perplexity"]}
        else:
            self.eval_metrics = self.trainer.evaluate()

    # ------------------------------------------------------------------------------------------------- save

    def save(self) -> None:
        self.trainer.save_model(str(self.out_dir))  # every rank: ZeRO-3 gathers the partitioned weights here
        if self.trainer.accelerator.num_processes > 1:
            self.trainer.accelerator.wait_for_everyone()
        if not self.is_main:
            return
        self.tokenizer.save_pretrained(str(self.out_dir))
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # finished: the checkpoints' only purpose was resuming
        self.summary = self._summary()
        summary_path = self.files.write_summary(self.summary)
        curve = self.files.plot(title=f"{Path(self.source).name} · {self.args.method}")
        # names: ft_report.MLFLOW_NAMES; the last loss and epoch are already the last per-step points
        self.tracker.log_metrics(
            {k: v for k, v in self.summary.items() if k not in ("final_loss", "epochs")},
            step=self.trainer.state.global_step,
        )
        for path, name in (
            (self.out_dir, "model"),
            (curve, None),
            (summary_path, None),
            (Path(self.args.metrics) / "resolved_config.json", None),
        ):
            self.tracker.log_artifact(path, name)

    def _summary(self) -> dict:
        state = self.trainer.state
        train_records = [r for r in self.files.read() if "loss" in r]
        summary = {
            "method": self.args.method,
            "task": self.args.task,
            "global_step": state.global_step,
            "epochs": round(float(state.epoch or 0.0), 4),
            "final_loss": train_records[-1]["loss"] if train_records else None,
            "train_loss": float(self.train_output.training_loss),
            "train_runtime_seconds": round(self.runtime, 2),
            "train_tokens": int(state.num_input_tokens_seen),
            "trainable_parameters": self.trainable,
            "total_parameters": self.total,
            "resumed_from_step": self.resumed_step,
            **self._throughput(),
        }
        if self.eval_metrics:
            summary["eval_loss"] = float(self.eval_metrics["eval_loss"])
            summary["perplexity"] = float(self.eval_metrics["eval_perplexity"])
        return summary

    def _throughput(self) -> dict:
        """This session's tokens/s, model FLOP/s and MFU over the whole of train() (docs/mfu.md)."""
        state, seconds = self.trainer.state, max(self.runtime, 1e-9)
        flops = (state.total_flos - self.report.start_flops) / seconds
        tokens = state.num_input_tokens_seen - self.report.start_tokens
        out = {
            "tokens_per_second": round(tokens / seconds, 1),
            "padding_inflation": round(self.trainer.positions_seen / max(tokens, 1), 4),
            "model_flops": float(state.total_flos),
            "tflops_per_second": round(flops / 1e12, 6),
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "peak_basis": self.device.peak_basis,
        }
        if self.device.peak_flops:
            out.update(
                peak_tflops=round(self.device.peak_flops / 1e12, 6), mfu=round(flops / self.device.peak_flops, 5)
            )
        return out

    # ------------------------------------------------------------------------------------------------- cleanup

    def cleanup(self) -> None:
        self._leave_process_group()
        if not self.is_main:
            return
        self.tracker.end("FINISHED")
        s = self.summary
        line = f"done: {s['global_step']} steps, final loss {s['final_loss']}"
        if "eval_loss" in s:
            line += f", eval loss {s['eval_loss']:.4f} (perplexity {s['perplexity']:.2f})"
        print(line, flush=True)
        print(f"model:   {self.out_dir.resolve()}", flush=True)
        print(f"metrics: {Path(self.args.metrics).resolve()} (loss_curve.png, metrics.json, metrics.jsonl)", flush=True)

    def _leave_process_group(self) -> None:
        """Every rank waits for the others, then tears its process group down before the interpreter exits: a
        rank that exits with the group alive can abort (SIGABRT, "terminate called without an active exception")
        while a gloo/DeepSpeed background thread is still joinable, failing a run whose work is all done."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------- main


def recipe_main(args: argparse.Namespace) -> int:
    recipe = FinetuneRecipe(args)
    recipe.setup()
    recipe.train()
    recipe.evaluate()
    recipe.save()
    recipe.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(argv)
    return exit_code(recipe_main, args)


def quiet_libraries() -> None:
    """The recipe prints its own progress lines; the libraries' advisory output would bury them.

    Process-wide on purpose: only ``main`` calls it, and the training job's process is the recipe's own."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import warnings

    # peft's PeftModel reads transformers' deprecated `is_gradient_checkpointing` alias (the recipe itself uses
    # neither); only that message is filtered, every other FutureWarning still shows
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        if not torch.cuda.is_available():  # DeepSpeed warns when it has to guess; on a machine without CUDA, say so
            os.environ["DS_ACCELERATOR"] = "cpu"
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def exit_code(fn, args: argparse.Namespace) -> int:
    """Run ``fn(args)``; bad input becomes exit code 2 with one ``azft-finetune: error:`` line on stderr."""
    try:
        return fn(args)
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

"""The Hugging Face Trainer as the recipe uses it: its loss, its counters, its warmup, and its report.

* ``reply_loss_sum`` — the one loss definition, for training and validation alike: summed cross-entropy over the
  reply tokens. Packed batches are laid end to end and the LM head runs only where a reply token is predicted.
* ``RecipeTrainingArguments`` — ``TrainingArguments`` with ``warmup_ratio`` read the same way on every transformers
  version (a fraction of the optimizer steps, rounded up).
* ``RecipeTrainer`` — the Trainer with that loss, a token-weighted validation loss, and two counters kept in the
  Trainer's own state (so they survive a resume): real training tokens (``state.num_input_tokens_seen``) and model
  FLOPs (``state.total_flos``, counted by ``ft_flops.ModelFlops`` when the recipe gives one).
* ``ReportCallback`` — one metrics.jsonl line, MLflow metrics and a progress line per logged step.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ft_data import IGNORE_INDEX
from ft_report import MetricsFiles, MlflowLogger, Throughput, progress_line

#: keys the collators add to a batch for the counters; the model never sees them
COUNTER_KEYS = ("real_tokens", "example_lengths")


def reply_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the reply tokens of ``batch``, and how many reply tokens there are.

    A packed batch (no attention mask: the attention keeps examples apart by their position ids, so the row layout
    does not matter) is laid end to end as one sequence without the rows' padding, and the vocabulary projection
    runs only at the positions whose next token is a label: prompt tokens never reach the LM head or the softmax,
    and padding never reaches the model. A padded batch goes through the model as it is.
    """
    labels = batch["labels"]
    if "attention_mask" not in batch:
        keep = batch["real_positions"].reshape(-1) if "real_positions" in batch else slice(None)
        ids, pos = batch["input_ids"].reshape(-1)[keep][None], batch["position_ids"].reshape(-1)[keep][None]
        labels = labels.reshape(-1)[keep][None]
        scored = (labels[0, 1:] != IGNORE_INDEX).nonzero().flatten()  # position j predicts token j + 1
        targets = labels[0, scored + 1]
        ids, pos, kept = _round_up(ids, pos, scored)
        logits = model(input_ids=ids, position_ids=pos, logits_to_keep=kept).logits[0, : scored.numel()]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        targets = labels[:, 1:].reshape(-1)
        keep = targets != IGNORE_INDEX
        logits, targets = logits.reshape(-1, logits.size(-1))[keep], targets[keep]
    loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    return loss, int(targets.numel())


#: a packed batch's token count and scored positions are rounded up to a multiple of this: the matmuls then see a few
#: dozen distinct shapes in a run instead of a new one every step (on CPU oneDNN builds a kernel for every new shape;
#: measured on the bench's short mix: about 3% more tokens/s and 10% less resident memory), for under 2% more work
SHAPE_MULTIPLE = 32


def _round_up(ids, pos, scored):
    """Pad the end-to-end sequence with a segment of its own (position ids from 0: it attends only to itself) and
    the scored positions with repeats of the last one, each to a multiple of ``SHAPE_MULTIPLE``; the caller keeps
    only the real positions' logits."""
    extra = -ids.shape[1] % SHAPE_MULTIPLE
    if extra:
        ids = torch.cat([ids, ids.new_zeros(1, extra)], dim=1)
        pos = torch.cat([pos, torch.arange(extra, device=pos.device)[None]], dim=1)
    more = -scored.numel() % SHAPE_MULTIPLE
    if more and scored.numel():
        scored = torch.cat([scored, scored[-1:].expand(more)])
    return ids, pos, scored


@dataclasses.dataclass
class RecipeTrainingArguments(TrainingArguments):
    """``warmup_ratio``: the fraction of optimizer steps spent warming the learning rate up, on every version.

    transformers 4 had a ``warmup_ratio`` argument; transformers 5 dropped it and reads a ``warmup_steps`` below 1 as
    a ratio instead, so neither spelling means the same thing everywhere. ``get_warmup_steps`` is what the
    Trainer's scheduler (and DeepSpeed's, through the Trainer) asks, on every version.
    """

    warmup_ratio: float = 0.0

    def get_warmup_steps(self, num_training_steps: int) -> int:
        return math.ceil(num_training_steps * self.warmup_ratio)


def checkpointing_args(enabled: bool) -> dict:
    """Activation (gradient) checkpointing arguments under the name this transformers version uses."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {prefix: enabled, f"{prefix}_kwargs": {"use_reentrant": False} if enabled else None}


class RecipeTrainer(Trainer):
    """The Trainer with the recipe's reply-only loss, a token-weighted validation loss, and token/FLOP counters."""

    def __init__(self, *args, flops=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flops = flops  # ft_flops.ModelFlops, or None for the Trainer's own estimate
        self.positions_seen = 0  # token positions the model computed this session, padding included
        self._since_store = [0, 0]  # real tokens, positions

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        real = inputs.pop("real_tokens", None)
        inputs.pop("example_lengths", None)
        if real is not None and model.training:
            self._since_store[0] += int(real)
            real_positions = inputs.get("real_positions")
            self._since_store[1] += int(
                real_positions.sum() if real_positions is not None else inputs["input_ids"].numel()
            )
        if return_outputs:
            inputs.pop("real_positions", None)
            return super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        loss, count = reply_loss_sum(model, inputs)
        if num_items_in_batch is None:
            return loss / max(count, 1)
        loss = loss / num_items_in_batch  # the mean over the reply tokens of the whole accumulated batch
        if self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # the gradient all-reduce averages over processes
        return loss

    def floating_point_ops(self, inputs) -> float:
        """Model FLOPs of one training micro-batch (forward + backward), read by the Trainer into ``total_flos``."""
        if self.flops is None:
            return super().floating_point_ops(inputs)
        return self.flops.batch(inputs)

    def store_flos(self) -> None:
        """Fold this process's counters into the Trainer state, summed over processes (called before each log)."""
        counts = torch.tensor(self._since_store, dtype=torch.float64, device=self.args.device)
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        self.state.num_input_tokens_seen += int(counts[0].item())
        self.positions_seen += int(counts[1].item())
        self._since_store = [0, 0]
        super().store_flos()

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval") -> dict:
        """Validation loss: the mean cross-entropy over every reply token of the set (not a mean of batch means)."""
        model = self.model
        was_training = model.training
        model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.args.device)
        with torch.no_grad(), self.autocast_smart_context_manager():
            for batch in self.get_eval_dataloader(eval_dataset):
                batch = {k: v.to(self.args.device) for k, v in batch.items() if k not in COUNTER_KEYS}
                loss, count = reply_loss_sum(model, batch)
                total += torch.tensor([loss.item(), count], dtype=torch.float64, device=self.args.device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total, reduction="sum")
        model.train(was_training)
        eval_loss = (total[0] / total[1].clamp(min=1)).item()
        metrics = {
            f"{metric_key_prefix}_loss": eval_loss,
            f"{metric_key_prefix}_perplexity": math.exp(min(eval_loss, 50.0)),
            f"{metric_key_prefix}_tokens": int(total[1].item()),
        }
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class ReportCallback(TrainerCallback):
    """Per logged step: one metrics.jsonl line, MLflow metrics, and a progress line on stdout (main process only).

    Everything it reports comes from the Trainer's state: ``num_input_tokens_seen`` (real tokens, all processes)
    and ``total_flos`` (model FLOPs, all processes); ``peak_flops`` is the devices' summed peak FLOP/s (or None).
    """

    def __init__(
        self, files: MetricsFiles | None, tracker: MlflowLogger, is_main: bool, peak_flops: float | None = None
    ):
        self.files, self.tracker, self.is_main, self.peak_flops = files, tracker, is_main, peak_flops
        self.meter = Throughput()
        self.start_tokens = 0  # real tokens already seen when this session began (a resumed run's count)
        self.start_flops = 0.0
        self.last_train: dict = {}
        self.last_eval: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_tokens, self.start_flops = state.num_input_tokens_seen, state.total_flos
        self.meter = Throughput(tokens=state.num_input_tokens_seen, flops=state.total_flos)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        record: dict = {"step": state.global_step, "epoch": round(float(state.epoch or 0.0), 4)}
        if "loss" in logs:
            record.update(self._train_record(state, logs))
            self.last_train = record
        elif "eval_loss" in logs:
            record.update(eval_loss=float(logs["eval_loss"]), perplexity=float(logs["eval_perplexity"]))
            if self.is_main:
                print(
                    f"eval  step {state.global_step} | epoch {record['epoch']:.2f} | "
                    f"eval_loss {record['eval_loss']:.4f} | perplexity {record['perplexity']:.2f}",
                    flush=True,
                )
            self.last_eval = record
        else:
            return
        if self.is_main:
            self.files.append(record)
            self.tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step=state.global_step)

    def _train_record(self, state, logs: dict) -> dict:
        rate = self.meter.update(state.global_step, state.num_input_tokens_seen, state.total_flos)
        record = {
            "loss": float(logs["loss"]),
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "tokens_per_second": round(rate.tokens_per_second, 1),
        }
        if logs.get("grad_norm") is not None:
            record["grad_norm"] = float(logs["grad_norm"])
        if rate.flops_per_second:
            record["tflops_per_second"] = round(rate.flops_per_second / 1e12, 6)
            if self.peak_flops:
                record["mfu"] = round(rate.flops_per_second / self.peak_flops, 5)
        if self.is_main:
            eta = rate.seconds_per_step * max(state.max_steps - state.global_step, 0)
            print(
                progress_line(
                    state.global_step,
                    state.max_steps,
                    float(state.epoch or 0.0),
                    record["loss"],
                    record["learning_rate"],
                    rate.tokens_per_second,
                    eta,
                    tflops=record.get("tflops_per_second"),
                    mfu=record.get("mfu"),
                ),
                flush=True,
            )
        return record


class ListDataset:
    """A map-style dataset over encoded examples (what torch's DataLoader needs: __len__ and __getitem__)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

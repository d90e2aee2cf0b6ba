"""The one metric vocabulary: every backend's metric names mapped to one name per meaning.

The recipe's files (``metrics.jsonl``/``metrics.json``), the emulator's run history and Azure ML's run history (the
Hugging Face Trainer names Azure's fine-tuning components log, and the OpenAI-style names of Azure's fine-tuning
checkpoints) all reach MLflow, ``azft status``, ``azft results`` and ``azft runs`` through :func:`canonical`.
Rules the names follow:

- one name per meaning: the training loss is ``train_loss`` at every step, and its last value is the final one (no
  ``final_`` copies); a run-level figure of a different meaning has its own name (``train_loss_mean``);
- hyperparameters are MLflow params (``learning_rate``, ``epochs``: what was asked for); what the run measured is a
  metric with a name no param has (``scheduled_lr``: the learning rate the scheduler set at a step;
  ``epochs_completed``: how far training got);
- evaluation metrics start with ``eval_``.

``docs/metrics.md`` is this table in prose; a test keeps both equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class Metric:
    name: str
    meaning: str
    #: step: logged at training steps (its last value is the final one); run: once, when training ends
    logged: str
    #: the names other sources give it, best first: recipe files, Azure ML run history (Hugging Face Trainer
    #: names), OpenAI-style fine-tuning checkpoint names, the emulator, and runs recorded by earlier azft versions
    aliases: tuple[str, ...] = ()


VOCABULARY: tuple[Metric, ...] = (
    Metric(
        "train_loss",
        "training loss (reply tokens) over the last logging window",
        "step",
        ("loss", "final_loss", "train/loss", "training_loss", "final_final_loss"),
    ),
    Metric(
        "train_loss_mean",
        "training loss averaged over the whole run (the Trainer's training_loss)",
        "run",
        ("final_train_loss",),
    ),
    Metric(
        "eval_loss",
        "validation loss over the whole validation set",
        "step",
        ("eval/loss", "validation_loss", "val_loss", "full_valid_loss", "final_eval_loss"),
    ),
    Metric("eval_perplexity", "exp(eval_loss)", "step", ("perplexity", "final_perplexity")),
    Metric(
        "eval_batch_loss",
        "validation loss on one batch (OpenAI-style fine-tuning checkpoints)",
        "step",
        ("valid_loss",),
    ),
    Metric(
        "train_token_accuracy",
        "share of reply tokens predicted right, training batch",
        "step",
        ("train_mean_token_accuracy",),
    ),
    Metric(
        "eval_token_accuracy",
        "share of reply tokens predicted right, validation set",
        "step",
        ("full_valid_mean_token_accuracy",),
    ),
    Metric(
        "eval_batch_token_accuracy",
        "share of reply tokens predicted right, one validation batch",
        "step",
        ("valid_mean_token_accuracy",),
    ),
    Metric(
        "scheduled_lr",
        "learning rate the scheduler set at the step (the hyperparameter is the learning_rate param)",
        "step",
        ("learning_rate", "lr", "train/learning_rate"),
    ),
    Metric(
        "epochs_completed",
        "epochs done (fractional); the requested number is the epochs param",
        "step",
        ("epoch", "epochs", "final_epochs", "train/epoch"),
    ),
    Metric("steps", "optimizer steps done", "run", ("global_step", "final_global_step", "train/global_step")),
    Metric("grad_norm", "gradient norm before clipping", "step", ("train/grad_norm",)),
    Metric(
        "tokens_per_second",
        "training tokens per second (per step: the recent window; at the end: the run)",
        "step",
        ("final_tokens_per_second",),
    ),
    Metric("tflops_per_second", "model FLOPs per second, in TFLOP/s", "step", ("final_tflops_per_second",)),
    Metric("mfu", "model FLOPs utilisation (docs/mfu.md)", "step", ("final_mfu",)),
    Metric("peak_tflops", "the device's peak TFLOP/s the MFU is measured against", "run", ("final_peak_tflops",)),
    Metric("model_flops", "model FLOPs of the whole run", "run", ("total_flos", "final_model_flops")),
    Metric(
        "padding_inflation", "positions computed per real token (1.0: no padding)", "run", ("final_padding_inflation",)
    ),
    Metric("train_tokens", "training tokens seen", "run", ("num_input_tokens_seen", "final_train_tokens")),
    Metric(
        "train_seconds",
        "wall time of training, seconds",
        "run",
        ("train_runtime_seconds", "train_runtime", "final_train_runtime_seconds"),
    ),
    Metric("train_samples_per_second", "training rows per second over the run", "run", ()),
    Metric("train_steps_per_second", "optimizer steps per second over the run", "run", ()),
    Metric("trainable_parameters", "parameters the method trains", "run", ("final_trainable_parameters",)),
    Metric("total_parameters", "parameters of the model", "run", ("final_total_parameters",)),
    Metric("resumed_from_step", "the checkpoint step a resumed run started from", "run", ("final_resumed_from_step",)),
)

_BY_NAME = {m.name: m for m in VOCABULARY}
#: raw name → (canonical name, priority: 0 for the canonical name itself, then the alias order)
_ALIASES: dict[str, tuple[str, int]] = {}
for _m in VOCABULARY:
    _ALIASES[_m.name] = (_m.name, 0)
    for _i, _alias in enumerate(_m.aliases, start=1):
        _ALIASES.setdefault(_alias, (_m.name, _i))

#: a second name for a raw name whose canonical is already taken by a better source in the same record: the
#: recipe's and the Trainer's run-level ``train_loss`` is the mean over the run when a per-step loss exists
_WHEN_TAKEN = {"train_loss": "train_loss_mean", "final_train_loss": "train_loss_mean"}


def canonical_name(raw: str) -> str:
    """The vocabulary's name for one raw metric name (unknown names are kept as they are)."""
    name = str(raw).strip()
    if name in _ALIASES:
        return _ALIASES[name][0]
    if name.startswith("final_") and name[len("final_") :] in _ALIASES:  # earlier runs' `final_` copies
        return _ALIASES[name[len("final_") :]][0]
    return name


def _priority(raw: str) -> int:
    if raw in _ALIASES:
        return _ALIASES[raw][1]
    return 99


def canonical(metrics: Mapping[str, V]) -> dict[str, V]:
    """One record of metrics (a summary, a run's final values, a history) under the vocabulary's names.

    When two raw names mean the same, the better source wins (the canonical name, then the alias order); a run-level
    ``train_loss`` next to a per-step ``loss`` is the run's mean (``train_loss_mean``), as the Trainer defines it."""
    chosen: dict[str, tuple[int, str]] = {}
    for raw in metrics:
        name = canonical_name(raw)
        if (
            raw in _WHEN_TAKEN
            and name == "train_loss"
            and any(
                canonical_name(other) == "train_loss" and other != raw and other not in _WHEN_TAKEN for other in metrics
            )
        ):
            name = _WHEN_TAKEN[raw]
        rank = _priority(raw)
        if name not in chosen or rank < chosen[name][0]:
            chosen[name] = (rank, raw)
    return {name: metrics[raw] for name, (_, raw) in chosen.items()}


def meaning(name: str) -> str | None:
    m = _BY_NAME.get(name)
    return m.meaning if m else None

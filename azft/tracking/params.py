"""Turn a resolved spec into MLflow params within Azure ML's limits.

Azure ML's MLflow accepts at most 200 params per run and param values of at most 500 characters (open-source
MLflow allows 6000). azft keeps every run within the stricter limits so the same code tracks to a local store, a
tracking server and a workspace: nested values are flattened to dotted keys, values that stay too long and the
lowest-priority keys past the cap are left out of the params, and the spec itself is always logged in full as
``spec.json``. What was left out is listed in ``params_overflow.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

MAX_PARAMS = 200
MAX_VALUE_CHARS = 500
MAX_KEY_CHARS = 250

# Leaf names that matter most when comparing runs, most important first. A flattened key is important when its
# last component (``training.learning_rate`` -> ``learning_rate``) is listed here.
IMPORTANT = (
    "model",
    "method",
    "task",
    "backend",
    "epochs",
    "learning_rate",
    "batch_size",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "max_seq_length",
    "gradient_accumulation_steps",
    "max_steps",
    "warmup_ratio",
    "lr_scheduler",
    "weight_decay",
    "seed",
    "precision",
    "packing",
    "deepspeed_stage",
    "deepspeed_offload",
    "gradient_checkpointing",
    "lora_target_modules",
    "validation_split",
    "region",
    "compute",
    "instance_type",
    "instance_count",
    "gpus_per_node",
    "experiment",
    "name",
)
_RANK = {name: i for i, name in enumerate(IMPORTANT)}

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass
class ParamSelection:
    params: dict[str, str] = field(default_factory=dict)
    too_long: dict[str, str] = field(default_factory=dict)
    over_cap: dict[str, str] = field(default_factory=dict)

    @property
    def overflow(self) -> dict[str, dict[str, str]]:
        return {"too_long": self.too_long, "over_cap": self.over_cap}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts to dotted keys; lists of scalars become JSON, lists of dicts are indexed."""
    out: dict[str, str] = {}
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = "{}"
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(flatten(v, key))
    elif isinstance(obj, (list, tuple)):
        if any(isinstance(v, (Mapping, list, tuple)) for v in obj):
            for i, v in enumerate(obj):
                out.update(flatten(v, f"{prefix}.{i}"))
        else:
            out[prefix] = json.dumps(list(obj), default=str)
    else:
        out[prefix or "value"] = _scalar(obj)
    return out


def clean_key(key: str) -> str:
    """MLflow keys allow letters, digits, ``_-. /``; at most 250 characters."""
    return _BAD_KEY_CHARS.sub("_", key)[:MAX_KEY_CHARS]


def _priority(key: str) -> tuple[int, int, str]:
    leaf = key.rsplit(".", 1)[-1]
    rank = _RANK.get(leaf, len(IMPORTANT))
    return (rank, key.count("."), key)


def select_params(
    flat: Mapping[str, str], *, max_params: int = MAX_PARAMS, max_value_chars: int = MAX_VALUE_CHARS
) -> ParamSelection:
    """Keep at most ``max_params`` params with values of at most ``max_value_chars``, important keys first."""
    sel = ParamSelection()
    candidates: list[tuple[str, str]] = []
    for raw_key, value in flat.items():
        key = clean_key(raw_key)
        if len(value) > max_value_chars:
            sel.too_long[key] = value
        else:
            candidates.append((key, value))
    candidates.sort(key=lambda kv: _priority(kv[0]))
    for key, value in candidates:
        if len(sel.params) < max_params:
            sel.params.setdefault(key, value)
        else:
            sel.over_cap[key] = value
    return sel

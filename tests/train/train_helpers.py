"""Helpers shared by the fine-tune tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO / "components" / "finetune" / "src"
COMPONENT = REPO / "components" / "finetune" / "component.yml"


def load_recipe() -> SimpleNamespace:
    """The recipe's modules, loaded from the component's code directory (as Azure ML runs them).

    Loaded under private names so they cannot clash with other modules called ``train``.
    """
    if str(RECIPE_DIR) not in sys.path:
        sys.path.append(str(RECIPE_DIR))  # train.py imports its sibling helpers by name
    mods = {}
    for name in ("ft_data", "ft_deepspeed", "ft_report", "train"):
        key = f"azft_recipe_{name}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, RECIPE_DIR / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[key] = mod
            spec.loader.exec_module(mod)
        mods[name] = sys.modules[key]
    return SimpleNamespace(train=mods["train"], data=sys.modules["ft_data"], deepspeed=mods["ft_deepspeed"])


def recipe_args(data_dir: Path, out: Path, **overrides) -> list[str]:
    """argv for train.py with small, fast settings; keyword overrides replace or add options."""
    opts = {
        "model": "tiny-phi3",
        "train_data": str(data_dir / "train.jsonl"),
        "validation_data": str(data_dir / "val.jsonl"),
        "method": "lora",
        "epochs": 1,
        "max_steps": 4,
        "learning_rate": 5e-3,
        "batch_size": 8,
        "max_seq_length": 256,
        "save_steps": 100,
        "logging_steps": 1,
        "seed": 7,
        "model_output": str(out / "model"),
        "metrics": str(out / "metrics"),
    }
    opts.update(overrides)
    argv: list[str] = []
    for k, v in opts.items():
        if v is not None:
            argv += [f"--{k}", str(v)]
    return argv


def make_plan(
    job_name: str,
    inputs: dict,
    *,
    stage: int = 0,
    num_processes: int = 1,
    output_dir=None,
    tracking_uri=None,
    tracking_run_id=None,
):
    """Stand-in for azft.plan.Plan with exactly the attributes the local backend reads."""
    return SimpleNamespace(
        job_name=job_name,
        component_inputs=inputs,
        spec=SimpleNamespace(
            compute=SimpleNamespace(deepspeed=SimpleNamespace(stage=stage)),
            local=SimpleNamespace(num_processes=num_processes, output_dir=output_dir),
        ),
        tracking_run_id=tracking_run_id,
        tracking_uri=tracking_uri,
    )

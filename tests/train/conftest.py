"""Fixtures for the fine-tune recipe tests: the tiny-phi3 model, small chat data files, the recipe module."""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO / "components" / "finetune" / "src"
COMPONENT = REPO / "components" / "finetune" / "component.yml"

WORDS = ("the model reads data and learns to answer questions about water sky code lists paris france tokens "
         "loss step reply user system short long blue light day night").split()


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def write_chat(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            msgs = [{"role": "system", "content": "Answer briefly."}] if i % 2 else []
            for _ in range(rng.randint(1, 2)):
                msgs.append({"role": "user", "content": sentence(rng, 3, 12)})
                msgs.append({"role": "assistant", "content": sentence(rng, 2, 16)})
            f.write(json.dumps({"messages": msgs}) + "\n")
    return path


@pytest.fixture(scope="session")
def azft_cache(tmp_path_factory) -> Path:
    """One tiny-phi3 build for the whole session, shared with subprocesses through $AZFT_CACHE."""
    cache = tmp_path_factory.mktemp("azft-cache")
    old = os.environ.get("AZFT_CACHE")
    os.environ["AZFT_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("AZFT_CACHE", None)
    else:
        os.environ["AZFT_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_model(azft_cache) -> Path:
    from azft.tiny_phi3 import ensure_tiny_phi3

    return ensure_tiny_phi3()


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_chat(d / "train.jsonl", 48, seed=1)
    write_chat(d / "val.jsonl", 8, seed=2)
    return d


@pytest.fixture(scope="session")
def recipe():
    """The recipe's modules, imported from the component's code directory (as Azure ML runs them)."""
    sys.path.insert(0, str(RECIPE_DIR))
    try:
        return SimpleNamespace(
            train=importlib.import_module("train"),
            data=importlib.import_module("ft_data"),
            deepspeed=importlib.import_module("ft_deepspeed"),
        )
    finally:
        sys.path.remove(str(RECIPE_DIR))


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


def make_plan(job_name: str, inputs: dict, *, stage: int = 0, num_processes: int = 1, output_dir=None,
              tracking_uri=None, tracking_run_id=None):
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

"""Fixtures for the fine-tune recipe tests: the tiny-phi3 model, small chat data files, the recipe module."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest


WORDS = (
    "the model reads data and learns to answer questions about water sky code lists paris france tokens "
    "loss step reply user system short long blue light day night"
).split()


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
    return load_recipe()


from tests.train.train_helpers import COMPONENT, RECIPE_DIR, load_recipe  # noqa: E402,F401

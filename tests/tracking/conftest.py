"""Fixtures for the tracking tests; the session-wide ``mlflow_server`` comes from tests/fixtures/mlflow_server.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

_PLUGIN = "tests.fixtures.mlflow_server"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here unless the root conftest already lists it in ``pytest_plugins``.
    if config.pluginmanager.get_plugin(_PLUGIN) is None:
        root = str(Path(__file__).resolve().parents[2])
        if root not in sys.path:
            sys.path.insert(0, root)
        config.pluginmanager.import_plugin(_PLUGIN)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, created once: creating the schema takes seconds, copying it milliseconds."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db.as_posix()}").search_experiments()
    return db


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Path:
    """A fresh project directory as cwd (``.azft/`` goes there) with no tracking URI in the environment.

    ``.azft/mlflow.db`` starts as a copy of an empty store, the same file azft would create there itself.
    """
    (tmp_path / ".azft").mkdir()
    shutil.copy2(empty_store, tmp_path / ".azft" / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZFT_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return tmp_path


def _make_spec(**overrides) -> dict:
    """A resolved spec shaped like azft's (nested by concern)."""
    spec = {
        "name": "phi3-support-bot",
        "experiment": "azft-tests",
        "model": {"name": "microsoft/Phi-3-mini-4k-instruct"},
        "task": "chat",
        "method": "lora",
        "data": {"train": "data/train.jsonl", "validation": None},
        "training": {
            "epochs": 2,
            "learning_rate": 0.0002,
            "batch_size": 4,
            "gradient_accumulation_steps": 2,
            "max_seq_length": 512,
        },
        "lora": {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": ["qkv_proj", "o_proj"]},
        "tags": {"team": "support"},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def make_spec():
    return _make_spec

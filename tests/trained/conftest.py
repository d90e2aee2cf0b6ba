"""A local job trained for a few steps on the quickstart's data, shared by the after-training tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STEPS = 24


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(home, job name): `azft submit examples/tiny-local.yaml --backend local --wait` cut to a few steps."""
    home = tmp_path_factory.mktemp("trained-home")
    cache = os.environ.get("AZFT_CACHE") or str(tmp_path_factory.mktemp("azft-cache"))
    spec = yaml.safe_load((EXAMPLES / "tiny-local.yaml").read_text())
    spec["data"] = {k: str(EXAMPLES / v) for k, v in spec["data"].items()}
    spec["hyperparameters"].update(max_steps=STEPS, save_steps=1000)
    (home / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "AZFT_HOME": str(home), "AZFT_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "azft", "submit", "spec.yaml", "--backend", "local", "--wait", "--output", "json"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    name = next(iter(json.loads((home / ".azft" / "submissions.json").read_text())))
    return home, name, cache


@pytest.fixture
def at_home(trained, monkeypatch):
    home, name, cache = trained
    monkeypatch.setenv("AZFT_HOME", str(home))
    monkeypatch.setenv("AZFT_CACHE", cache)
    monkeypatch.chdir(home)
    return home, name

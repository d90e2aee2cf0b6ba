"""A sweep in MLflow: one parent run with a child run per trial, closed with the best trial's metric; `azft runs
compare SWEEP` draws one curve per trial and ranks the trials by a final metric. On the mock backend, and a real
local sweep of four tiny-phi3 trials (a few steps each) through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "examples" / "data" / "chat_train.jsonl"


def _png_curves(path: Path) -> list[dict]:
    from PIL import Image

    return json.loads(Image.open(path).info["Description"])["curves"]


def test_parent_and_child_runs_and_the_ranked_comparison(run_cli, tmp_path):
    from mlflow import MlflowClient

    from azft.tracking.tracker import default_tracking_uri

    spec = {
        "name": "cmp",
        "model": "phi-4-mini-instruct",
        "data": {"train": str(CHAT)},
        "mock": {"seconds_per_state": 0.05},
        "sweep": {"parameters": {"hyperparameters.learning_rate": [1e-4, 2e-4, 3e-4]}},
    }
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = run_cli("submit", str(path), "--backend", "mock", "--wait", "--poll", "0.05", "--output", "json")
    assert res.code == 0, res.text
    waited = json.loads(res.out)
    sweep = waited["sweep"]
    finals = {t["job_name"]: t["metrics"]["eval_loss"] for t in waited["trials"]}

    client = MlflowClient(default_tracking_uri())
    exp = client.get_experiment_by_name("cmp")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("azft.sweep_role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.data.tags["azft.job_name"] == sweep and parent.info.status == "FINISHED"
    assert sorted(c.data.tags["azft.job_name"] for c in children) == sorted(finals)
    assert all(c.data.tags["azft.sweep"] == sweep for c in children)
    best_job = min(finals, key=finals.get)
    assert parent.data.metrics["best_eval_loss"] == finals[best_job]
    assert parent.data.tags["azft.sweep_best_job"] == best_job

    png = tmp_path / "sweep.png"
    cmp = run_cli("runs", "compare", sweep, "--out", str(png), "--output", "json")
    assert cmp.code == 0, cmp.text
    d = json.loads(cmp.out)
    assert [r["job_name"] for r in d["ranked"]] == sorted(finals, key=finals.get)
    assert [r["rank"] for r in d["ranked"]] == [1, 2, 3] and d["best"]["job_name"] == best_job
    assert d["best"]["values"]["hyperparameters.learning_rate"] in (1e-4, 2e-4, 3e-4)
    train_curves = [c for c in _png_curves(png) if c["kind"] == "train"]
    assert len(train_curves) == 3 and {c["run"] for c in train_curves} == {c.info.run_id for c in children}
    table = run_cli("runs", "compare", sweep, "--out", str(png), "--rank-by", "train_loss")
    assert table.code == 0 and "ranked by train_loss" in table.out and "best: trial" in table.out


def test_a_local_sweep_of_four_tiny_phi3_trials(tmp_path, tmp_path_factory):
    """`azft submit examples/sweep-tiny-local.yaml --wait`, cut to a few steps: four real trainings, then the
    comparison ranks them by the eval_loss each one logged."""
    spec = yaml.safe_load((ROOT / "examples" / "sweep-tiny-local.yaml").read_text())
    spec["data"] = {k: str(ROOT / "examples" / v) for k, v in spec["data"].items()}
    spec["hyperparameters"].update(max_steps=3, logging_steps=1)
    spec["sweep"].pop("early_stopping")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    cache = os.environ.get("AZFT_CACHE") or str(tmp_path_factory.mktemp("azft-cache"))
    env = {**os.environ, "AZFT_HOME": str(tmp_path), "AZFT_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)

    def azft(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "azft", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )

    proc = azft("submit", "sweep.yaml", "--backend", "local", "--wait", "--poll", "0.5", "--output", "json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    waited = json.loads(proc.stdout)
    assert waited["counts"] == {"Completed": 4}
    finals = {t["job_name"]: t["metrics"]["eval_loss"] for t in waited["trials"]}
    assert len(finals) == 4
    proc = azft("runs", "compare", waited["sweep"], "--out", "cmp.png", "--output", "json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(proc.stdout)
    assert d["rank_by"] == "eval_loss"
    assert [r["job_name"] for r in d["ranked"]] == sorted(finals, key=lambda n: (finals[n], n))
    assert [r["value"] for r in d["ranked"]] == sorted(finals.values())
    assert len([c for c in _png_curves(tmp_path / "cmp.png") if c["kind"] == "train"]) == 4

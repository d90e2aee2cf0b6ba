"""Azure ML's MLflow limits (200 params, 500-char values), the default local store and run contents."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from azft.errors import UsageError
from azft.tracking import Tracker
from azft.tracking.params import flatten, select_params


def test_flatten_nests_with_dots_and_keeps_lists_readable():
    flat = flatten(
        {
            "training": {"lr": 0.1, "sched": {"name": "cosine"}},
            "mods": ["q", "v"],
            "flag": True,
            "none": None,
            "rows": [{"a": 1}, {"a": 2}],
        }
    )
    assert flat == {
        "training.lr": "0.1",
        "training.sched.name": "cosine",
        "mods": '["q", "v"]',
        "flag": "true",
        "none": "null",
        "rows.0.a": "1",
        "rows.1.a": "2",
    }


def test_important_params_survive_a_spec_with_hundreds_of_fields():
    flat = {f"extras.field_{i:03d}": str(i) for i in range(400)}
    flat.update({"training.learning_rate": "0.0002", "model.name": "phi", "lora.lora_r": "8", "method": "lora"})
    flat["extras.long"] = "x" * 501
    sel = select_params(flat)
    assert len(sel.params) == 200
    assert all(len(v) <= 500 for v in sel.params.values())
    for key in ("training.learning_rate", "lora.lora_r", "method"):
        assert key in sel.params
    assert "extras.long" in sel.too_long
    assert len(sel.over_cap) == 404 - 200


def test_default_store_is_sqlite_under_dot_azft(workdir: Path, make_spec):
    (workdir / ".azft" / "mlflow.db").unlink()  # start from nothing: azft creates the store itself
    spec = make_spec(
        extras={f"knob_{i:03d}": i for i in range(300)}, prompt={"system": "You are a helpful assistant. " * 40}
    )
    tracker = Tracker(None, "limits")
    assert tracker.tracking_uri.startswith("sqlite:///") and tracker.tracking_uri.endswith("/.azft/mlflow.db")
    run_id = tracker.start_submission(
        spec=spec,
        plan={"backend": "mock", "estimates": {"minutes": 3}},
        data_report={"rows": 120, "tokens": 5000},
        backend="mock",
        job_name="job-limits",
        studio_url="https://ml.azure.com/runs/job-limits",
        tags={},
    )
    run = tracker.get_run(run_id)

    # the store is a SQLite database (not the deprecated ./mlruns file store); artifacts live under .azft/
    assert sqlite3.connect(workdir / ".azft" / "mlflow.db").execute("select count(*) from runs").fetchone()[0] == 1
    assert not (workdir / "mlruns").exists()
    art = Path(run.info.artifact_uri.replace("file://", ""))
    assert art.is_relative_to(workdir / ".azft" / "mlartifacts")

    params = run.data.params
    assert len(params) <= 200 and all(len(v) <= 500 for v in params.values())
    assert params["training.learning_rate"] == "0.0002"
    assert params["lora.lora_r"] == "8"
    assert params["backend"] == "mock"
    assert "prompt.system" not in params  # too long: in the artifacts instead

    tags = run.data.tags
    assert tags["azft.backend"] == "mock"
    assert tags["azft.job_name"] == "job-limits"
    assert tags["azft.studio_url"] == "https://ml.azure.com/runs/job-limits"
    assert tags["azft.model"] == "microsoft/Phi-3-mini-4k-instruct"
    assert tags["azft.method"] == "lora"
    assert len(tags["azft.spec_hash"]) == 16
    assert tags["team"] == "support"

    files = {p.name: p for p in art.rglob("*.json")}
    assert set(files) == {"spec.json", "plan.json", "data_report.json", "params_overflow.json"}
    assert json.loads(files["spec.json"].read_text())["prompt"]["system"].startswith("You are")
    overflow = json.loads(files["params_overflow.json"].read_text())
    assert "prompt.system" in overflow["too_long"] and len(overflow["over_cap"]) > 0
    assert json.loads(files["data_report.json"].read_text()) == {"rows": 120, "tokens": 5000}


def test_final_status_ends_the_run_and_records_outputs(workdir: Path, make_spec):
    tracker = Tracker(None, "final")
    run_id = tracker.start_submission(
        spec=make_spec(), plan={}, data_report=None, backend="local", job_name="job-final", studio_url=None, tags={}
    )
    tracker.log_metrics(run_id, {"loss": [(1, 2.0), (2, 1.0)]})
    tracker.log_final(run_id, {"train_loss": 1.5, "loss": 1.0}, "Failed", outputs={"model_output": "/data/out"})
    run = tracker.get_run(run_id)
    assert run.info.status == "FAILED" and run.info.end_time
    assert run.data.metrics == {"loss": 1.0, "train_loss": 1.5}
    assert run.data.tags["azft.output.model_output"] == "/data/out"
    assert tracker.metric_history(run_id, "loss") == [(1, 2.0), (2, 1.0)]  # the equal final value is not re-logged
    assert tracker.find_run_for_job("job-final") == run_id
    assert tracker.find_run_for_job("no-such-job") is None
    with pytest.raises(UsageError, match="unknown final status"):
        tracker.log_final(run_id, {}, "Exploded")


def test_azureml_uri_without_the_plugin_is_a_clear_usage_error(workdir: Path, make_spec):
    import importlib.util

    if importlib.util.find_spec("azureml") is not None and importlib.util.find_spec("azureml.mlflow") is not None:
        pytest.skip("azureml-mlflow is installed here")
    tracker = Tracker(
        "azureml://eastus2.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/g/providers/"
        "Microsoft.MachineLearningServices/workspaces/w",
        "ws",
    )
    with pytest.raises(UsageError) as err:
        tracker.start_submission(
            spec=make_spec(), plan={}, data_report=None, backend="maas", job_name="j", studio_url=None, tags={}
        )
    assert "azureml-mlflow" in err.value.hint


def test_importing_the_cli_module_does_not_import_mlflow():
    import subprocess
    import sys

    code = (
        "import sys, azft.cli_runs, azft.tracking; "
        "print(sorted(m for m in ('mlflow', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"

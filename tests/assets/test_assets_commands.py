"""Each component's own command (as its YAML declares it) run on this machine on tiny inputs."""

from __future__ import annotations

import csv
import json
import math

import pytest
from asset_data import CHAT_ROWS, write_jsonl
from asset_runner import REPO, run_component

VALIDATE = REPO / "components" / "validate_data" / "component.yml"
EVALUATE = REPO / "components" / "evaluate" / "component.yml"
REGISTER = REPO / "components" / "register_model" / "component.yml"


def _explain(result) -> str:
    return f"command: {result.command}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"


# --------------------------------------------------------------------------------------------------- validate_data


def test_validate_data_passes_good_data_on(chat_files, tmp_path):
    out = tmp_path / "out"
    r = run_component(
        VALIDATE,
        tmp_path,
        {"train_data": chat_files["train"], "validation_data": chat_files["validation"]},
        {"report": out / "report", "checked_train_data": out / "checked" / "train.jsonl"},
    )
    assert r.returncode == 0, _explain(r)
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["ok"] is True and set(report["files"]) == {"train", "validation"}
    assert (out / "checked" / "train.jsonl").read_bytes() == chat_files["train"].read_bytes()
    assert "passed" in (out / "report" / "report.md").read_text()


def test_validate_data_fails_the_step_on_bad_data(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(CHAT_ROWS[0])
        + "\n"
        + "{not json\n"
        + json.dumps({"messages": [{"role": "user", "content": "hi"}]})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = run_component(
        VALIDATE,
        tmp_path,
        {"train_data": bad},
        {"report": out / "report", "checked_train_data": out / "checked" / "train.jsonl"},
    )
    assert r.returncode == 2, _explain(r)
    assert not (out / "checked" / "train.jsonl").exists()  # the fine-tune step never gets this file
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["ok"] is False
    errors = report["files"]["train"]["errors"]
    assert any(":2" in e for e in errors), errors  # the broken JSON line, by number
    assert any(":3" in e for e in errors), errors  # the row without an assistant turn
    assert "bad.jsonl:2" in r.stderr


def test_validate_data_missing_file_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    r = run_component(
        VALIDATE,
        tmp_path,
        {"train_data": tmp_path / "nope.jsonl"},
        {"report": out / "report", "checked_train_data": out / "train.jsonl"},
    )
    assert r.returncode == 2, _explain(r)
    assert "nope.jsonl" in r.stderr and "Traceback" not in r.stderr
    assert json.loads((out / "report" / "report.json").read_text())["files"]["train"]["error"]


# --------------------------------------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def adapter_eval(tiny_adapter, tiny_base_model, chat_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval-adapter")
    r = run_component(
        EVALUATE,
        tmp,
        {
            "trained_model": tiny_adapter,
            "model": str(tiny_base_model),
            "validation_data": chat_files["validation"],
            "num_samples": 2,
            "max_new_tokens": 6,
        },
        {"evaluation": tmp / "out"},
    )
    return r, tmp / "out"


def test_evaluate_adapter_writes_metrics_and_samples(adapter_eval):
    r, out = adapter_eval
    assert r.returncode == 0, _explain(r)
    result = json.loads((out / "eval.json").read_text())
    assert result["model"]["kind"] == "adapter"
    assert result["rows"] == len(CHAT_ROWS) and result["split"] == "validation"
    assert result["eval_loss"] > 0 and math.isclose(result["perplexity"], math.exp(result["eval_loss"]))
    with (out / "samples.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["reference"] for row in rows] == ["Paris.", "Five."]
    assert all(set(row) == {"index", "prompt", "reference", "generated"} for row in rows)
    assert "What is the capital of France?" in rows[0]["prompt"]


def test_evaluate_full_model_and_mlflow_logging(tiny_base_model, chat_files, adapter_eval, tmp_path):
    """Full weights load without a base model; with MLFLOW_TRACKING_URI set, metrics and the table reach MLflow."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    r = run_component(
        EVALUATE,
        tmp_path,
        {
            "trained_model": tiny_base_model,
            "validation_data": chat_files["validation"],
            "num_samples": 1,
            "max_new_tokens": 4,
        },
        {"evaluation": tmp_path / "out"},
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert r.returncode == 0, _explain(r)
    full = json.loads((tmp_path / "out" / "eval.json").read_text())
    adapter = json.loads((adapter_eval[1] / "eval.json").read_text())
    assert full["model"]["kind"] == "full"
    assert full["target_tokens"] == adapter["target_tokens"]  # same data, same tokenizer, same target tokens
    assert full["eval_loss"] != adapter["eval_loss"]  # the adapter (non-zero LoRA weights) changes the model

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    assert math.isclose(runs[0].data.metrics["eval_loss"], full["eval_loss"], rel_tol=1e-9)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "evaluation")}
    assert {"evaluation/eval.json", "evaluation/samples.csv", "evaluation/samples.json"} <= artifacts


def test_evaluate_rejects_bad_rows_with_line_numbers(tiny_base_model, tmp_path):
    data = write_jsonl(tmp_path / "val.jsonl", [CHAT_ROWS[0], {"messages": "oops"}])
    r = run_component(
        EVALUATE,
        tmp_path,
        {"trained_model": tiny_base_model, "validation_data": data},
        {"evaluation": tmp_path / "out"},
    )
    assert r.returncode == 2, _explain(r)
    assert "val.jsonl:2: field 'messages'" in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------------- register_model


def test_register_model_with_lineage_tags(tiny_adapter, tiny_base_model, chat_files, adapter_eval, tmp_path):
    import hashlib

    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    r = run_component(
        REGISTER,
        tmp_path,
        {
            "trained_model": tiny_adapter,
            "model_name": "tiny-chat",
            "base_model": str(tiny_base_model),
            "method": "lora",
            "train_data": chat_files["train"],
            "validation_data": chat_files["validation"],
            "evaluation": adapter_eval[1],
            "job_name": "azft-job-123",
        },
        {"registration": tmp_path / "out"},
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert r.returncode == 0, _explain(r)
    registration = json.loads((tmp_path / "out" / "registration.json").read_text())
    assert registration["name"] == "tiny-chat" and registration["version"] == "1"

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("tiny-chat", "1")
    evaluation = json.loads((adapter_eval[1] / "eval.json").read_text())
    assert version.tags["base_model"] == str(tiny_base_model)
    assert version.tags["method"] == "lora" and version.tags["job_name"] == "azft-job-123"
    assert version.tags["model_kind"] == "adapter"
    assert version.tags["train_data_sha256"] == hashlib.sha256(chat_files["train"].read_bytes()).hexdigest()
    assert version.tags["validation_data_sha256"] == hashlib.sha256(chat_files["validation"].read_bytes()).hexdigest()
    assert math.isclose(float(version.tags["eval_loss"]), evaluation["eval_loss"], rel_tol=1e-5)

    # the registered model is usable: load it back through MLflow and generate
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/tiny-chat/1")
        out = model.predict([[{"role": "user", "content": "Add two and three."}]], params={"max_new_tokens": 3})
    finally:
        mlflow.set_tracking_uri(None)
    assert len(out) == 1 and isinstance(out[0], str)


def test_register_model_rejects_a_bad_name(tiny_adapter, tmp_path):
    r = run_component(
        REGISTER,
        tmp_path,
        {"trained_model": tiny_adapter, "model_name": "bad name/1", "base_model": "x", "method": "lora"},
        {"registration": tmp_path / "out"},
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"},
    )
    assert r.returncode == 2, _explain(r)
    assert "--model-name" in r.stderr and not (tmp_path / "out" / "registration.json").exists()

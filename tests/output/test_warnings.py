"""The same data/spec warnings in `validate`, `plan` and the CI summary, each with a count and its first lines; the
plan says what the backend ignores and when no workspace is configured, and submit then refuses before MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES


def _spec(tmp_path: Path, **changes) -> Path:
    doc = yaml.safe_load((EXAMPLES / "tiny-local.yaml").read_text())
    doc["data"] = {k: str(EXAMPLES / v) for k, v in doc["data"].items()}
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_rows_over_max_seq_length_warn_the_same_in_validate_plan_and_ci(run_cli, tmp_path, monkeypatch):
    from azft.ci_summary import _plan_section

    monkeypatch.setenv("COLUMNS", "250")
    spec = _spec(tmp_path, hyperparameters={"max_seq_length": 16})
    valid = run_cli("validate", str(spec), "--output", "json")  # no --backend: the data is still checked
    assert valid.code == 0, valid.text
    warnings = json.loads(valid.out)["warnings"]
    too_long = [w for w in warnings if "max_seq_length of 16" in w]
    assert len(too_long) == 2  # one line per file, with the count
    rows = sum(1 for line in (EXAMPLES / "data" / "chat_train.jsonl").read_text().splitlines() if line.strip())
    assert too_long[0].startswith(f"data.train: {rows} rows: ") and "; also lines 2, 3 and " in too_long[0]
    assert "the model's context length" not in " ".join(warnings)
    table = run_cli("validate", str(spec)).out
    assert all(w in table for w in too_long)

    plan = run_cli("plan", str(spec), "--backend", "local", "--output", "json")
    plan_doc = json.loads(plan.out)
    assert [w for w in plan_doc["verdict"]["warnings"] if "max_seq_length" in w] == too_long
    assert all(w in run_cli("plan", str(spec), "--backend", "local").out for w in too_long)
    summary = "\n".join(_plan_section(plan_doc))
    assert too_long[0].split(": ", 2)[1] in summary


def test_maas_ignores_validation_split_in_the_table_and_the_ci_summary(run_cli, tmp_path, monkeypatch):
    from azft.ci_summary import _plan_section

    monkeypatch.setenv("COLUMNS", "250")
    doc = yaml.safe_load((EXAMPLES / "phi4-mini-maas.yaml").read_text())
    doc["data"] = {"train": str(EXAMPLES / doc["data"]["train"]), "validation_split": 0.1}
    spec = tmp_path / "maas.yaml"
    spec.write_text(yaml.safe_dump(doc))
    table = run_cli("plan", str(spec), "--backend", "maas")
    assert table.code == 0, table.text
    assert "no validation file is sent" in table.out and "notes (" in table.out
    plan_doc = json.loads(run_cli("plan", str(spec), "--backend", "maas", "--output", "json").out)
    assert "no validation file is sent" in "\n".join(_plan_section(plan_doc))


def test_no_workspace_plan_warns_and_submit_leaves_no_mlflow_run(run_cli, tmp_path, monkeypatch, _azft_home):
    for var in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "AZURE_ML_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no config.json here or above
    monkeypatch.setenv("COLUMNS", "250")
    doc = yaml.safe_load((EXAMPLES / "phi4-mini-maas.yaml").read_text())
    doc.pop("azure", None)
    doc["data"] = {k: str(EXAMPLES / v) for k, v in doc["data"].items()}
    spec = tmp_path / "nows.yaml"
    spec.write_text(yaml.safe_dump(doc))
    out = run_cli("plan", str(spec), "--backend", "maas").out
    assert "verdict: can run\n" not in out and "no Azure ML workspace is configured" in out
    assert "azure: section" in out and "AZURE_SUBSCRIPTION_ID" in out and "config.json" in out
    res = run_cli("submit", str(spec), "--backend", "maas")
    assert res.code != 0 and "not fully configured" in res.err
    assert not list(Path(_azft_home).rglob("mlflow.db"))  # no FAILED run left behind


def test_invalid_json_message_reads_once(tmp_path):
    from azft.data import check_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "unterminated}]}\n')
    report = check_file(bad, "chat-completion")
    text = " ".join(p.render() for p in report.errors)
    assert "starting at column" in text and "at at" not in text

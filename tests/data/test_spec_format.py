"""A spec naming its data's source format (`data.format`): validate and plan check the source by converting it,
submit uploads the converted file, and the job and its MLflow run name both hashes. Run through the real CLI on the
mock backend (the real maas code against the embedded emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from azft.plan import file_sha256

from .test_convert import ALPACA, SHAREGPT, save_to_disk_layout


def sharegpt_rows(n: int = 16) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "conversations": [
                {"from": "human", "value": f"What is {i} plus {i}? Antworte kurz, bitte. 🙂"},
                {"from": "gpt", "value": f"{i + i}."},
            ],
        }
        for i in range(n)
    ]


def write_spec(tmp_path: Path, train: str, fmt: str, name: str = "sg-demo", task: str = "chat-completion") -> Path:
    spec = {
        "name": name,
        "model": "phi-4-mini-instruct",
        "task": task,
        "data": {"train": train, "format": fmt},
        "hyperparameters": {"epochs": 1},
        "mock": {"target": "maas", "seconds_per_state": 0.05},
        "tracking": {"experiment": "formats"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_sharegpt_spec_planned_and_submitted_on_mock(tmp_path, run_cli):
    src = tmp_path / "chats.sharegpt.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sharegpt_rows()), encoding="utf-8")
    spec = write_spec(tmp_path, src.name, "sharegpt")

    res = run_cli("validate", str(spec), "-o", "json")
    assert res.code == 0, res.text

    res = run_cli("plan", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    plan = json.loads(res.out)
    d = plan["data"][0]
    src_hash = file_sha256(str(src))
    assert d["source"]["sha256"] == src_hash and d["source"]["format"] == "sharegpt"
    assert d["source"]["converted"] == 16 and d["source"]["skipped"] == 0
    assert {(m["from"], m["to"]) for m in d["source"]["mapping"]} == {("human", "user"), ("gpt", "assistant")}
    converted = Path(d["path"])
    assert converted != src and d["sha256"] == file_sha256(str(converted)) != src_hash
    first = json.loads(converted.read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "messages": [
            {"role": "user", "content": "What is 0 plus 0? Antworte kurz, bitte. 🙂"},
            {"role": "assistant", "content": "0."},
        ]
    }
    assert d["sha256"] in json.dumps(plan["request"])  # the job reads the converted file's upload
    mtime = converted.stat().st_mtime_ns

    res = run_cli("plan", str(spec), "--backend", "mock")
    assert res.code == 0, res.text
    assert "converted from" in res.out and "human → user" in res.out
    assert converted.stat().st_mtime_ns == mtime  # converted once, reused

    res = run_cli("submit", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    submitted = json.loads(res.out)
    assert submitted["job_name"] == plan["job_name"]

    res = run_cli("status", submitted["job_name"], "--output", "json")
    requests = json.loads(Path(json.loads(res.out)["extra"]["requests_file"]).read_text())
    tags = _put_tags(requests)
    assert tags["azft.data.train.sha256"] == d["sha256"]
    assert tags["azft.data.train.source_sha256"] == src_hash and tags["azft.data.train.format"] == "sharegpt"

    import mlflow

    run = mlflow.MlflowClient(_tracking_uri()).get_run(submitted["mlflow_run_id"])
    assert run.data.tags["azft.data.train.sha256"] == d["sha256"]
    assert run.data.tags["azft.data.train.source_sha256"] == src_hash
    assert run.data.params["data.format"] == "sharegpt"


def _put_tags(requests) -> dict:
    """The tags of the job body azft PUT (the emulator keeps every request it answered)."""
    items = requests if isinstance(requests, list) else requests.get("requests", [])
    for r in items:
        body = r.get("body") if isinstance(r, dict) else None
        if r.get("method") == "PUT" and isinstance(body, dict) and "tags" in (body.get("properties") or {}):
            return body["properties"]["tags"]
    raise AssertionError(f"no job PUT among {len(items)} requests")


def _tracking_uri() -> str:
    from azft.tracking.tracker import resolve_tracking_uri

    return resolve_tracking_uri(None)[0]  # where a submit without --tracking-uri logs


def test_hf_disk_source_with_auto(tmp_path, run_cli):
    save_to_disk_layout(tmp_path / "alpaca_ds", ALPACA[:4] * 4)
    spec = write_spec(tmp_path, "alpaca_ds", "auto", name="alpaca-demo")
    res = run_cli("plan", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    src = json.loads(res.out)["data"][0]["source"]
    assert src["format"] == "alpaca" and src["requested_format"] == "auto" and "first" in src["detected"]
    assert src["converted"] == 16


def test_unconvertible_rows_stop_validate_plan_and_submit(tmp_path, run_cli):
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in sharegpt_rows(12) + SHAREGPT[2:4]))  # lines 13, 14 bad
    spec = write_spec(tmp_path, src.name, "sharegpt", name="mixed")
    res = run_cli("validate", str(spec))
    assert res.code == 2
    assert "2 of 14 rows could not be converted from sharegpt" in res.text and "line 13" in res.text
    assert "azft data convert mixed.jsonl --from sharegpt" in res.text
    res = run_cli("plan", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 2 or not json.loads(res.out)["verdict"]["ok"]
    res = run_cli("submit", str(spec), "--backend", "mock")
    assert res.code == 2 and "line 13" in res.text
    import os

    assert not list(Path(os.environ["AZFT_HOME"]).glob(".azft/mock/datastore/**/*.jsonl"))  # nothing uploaded


def test_format_needs_a_convertible_task(tmp_path, run_cli):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ALPACA[:4]))
    spec = write_spec(tmp_path, src.name, "alpaca", name="cls", task="text-classification")
    res = run_cli("validate", str(spec))
    assert res.code == 2 and "chat-completion or text-generation" in res.text
    res = run_cli("validate", str(write_spec(tmp_path, "a.jsonl", "yaml", name="bad")))
    assert res.code == 2 and "data.format" in res.text and "sharegpt" in res.text


def test_format_with_a_remote_uri_is_refused(tmp_path, run_cli):
    spec = write_spec(
        tmp_path, "azureml://datastores/workspaceblobstore/paths/x/train.jsonl", "sharegpt", name="remote"
    )
    res = run_cli("validate", str(spec))
    assert res.code == 2 and "converts local files" in res.text
    res = run_cli("plan", str(spec), "--backend", "mock", "--output", "json")
    assert "converts local files" in res.text

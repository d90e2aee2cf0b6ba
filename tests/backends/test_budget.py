"""Budgets: `plan` shows the estimate against `budget:`, `submit` refuses an estimate above it before any upload (also
from `--max-usd`), a cluster job carries its own time limit, and `azft wait` cancels a job past `max_hours` (on the
mock backend, with the wall clock passed in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azft.backends.base import JobStatus

MAAP = {"cluster": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}


def _spec_file(make_spec, tmp_path, name="demo", **sections) -> Path:
    make_spec(name=name, model="phi-3-mini-4k-instruct", compute=MAAP, **sections)
    return tmp_path / f"{name}.yaml"


def test_plan_shows_the_estimate_against_the_budget_and_exits_2_when_over(run_cli, make_spec, tmp_path):
    path = _spec_file(make_spec, tmp_path, budget={"max_usd": 0.5, "max_hours": 2})
    res = run_cli("plan", str(path), "--backend", "maap", "--output", "json")
    assert res.code == 2, res.text
    b = json.loads(res.out)["budget"]
    assert b["ok"] is False and b["max_usd"] == 0.5 and b["cost_usd"] > 0.5
    assert any("exceeds max_usd" in p for p in b["problems"])
    assert b["inputs"]["assumed_tokens_per_second_per_gpu"] and b["inputs"]["price_per_node_hour"]
    assert any("epochs" in c for c in b["changes"])

    roomy = _spec_file(make_spec, tmp_path, name="roomy", budget={"max_usd": 500, "max_hours": 2})
    res = run_cli("plan", str(roomy), "--backend", "maap")
    assert res.code == 0, res.text
    assert "budget: within budget" in res.out


def test_submit_refuses_over_budget_before_any_upload_naming_the_inputs(run_cli, make_spec, tmp_path):
    from azft.state import submissions

    path = _spec_file(make_spec, tmp_path, budget={"max_usd": 0.5}, mock={"target": "maap"})
    res = run_cli("submit", str(path), "--backend", "mock")
    assert res.code == 2, res.text
    text = " ".join(res.text.split())
    assert "over its budget" in text and "nothing was uploaded or submitted" in text
    assert "assumed tokens per second per gpu" in text and "price per node hour" in text
    assert "price source" in text and "max_usd" in text
    assert not submissions()


def test_submit_max_usd_from_ci_without_a_budget_in_the_spec(run_cli, make_spec, tmp_path):
    from azft.state import submissions

    path = _spec_file(make_spec, tmp_path, mock={"target": "maap"})
    res = run_cli("submit", str(path), "--backend", "mock", "--max-usd", "0.10")
    assert res.code == 2, res.text
    assert "--max-usd" in res.text and not submissions()
    plan = run_cli("plan", str(path), "--backend", "maap", "--max-usd", "0.10", "--output", "json")
    assert plan.code == 2 and json.loads(plan.out)["budget"]["source"] == "--max-usd"


def test_no_price_means_no_budget_check_can_pass(run_cli, make_spec, tmp_path):
    make_spec(name="serverless", budget={"max_usd": 100})  # phi-4-mini-instruct on maas: Azure publishes no price
    res = run_cli("plan", str(tmp_path / "serverless.yaml"), "--backend", "maas", "--output", "json")
    b = json.loads(res.out)["budget"]
    assert res.code == 2 and not b["ok"] and "no cost estimate" in b["problems"][0]
    assert "--prices" in b["changes"][0]
    priced = run_cli(
        "plan",
        str(tmp_path / "serverless.yaml"),
        "--backend",
        "maas",
        "--output",
        "json",
        "--prices",
        str(Path(__file__).resolve().parents[2] / "examples" / "prices.yaml"),
    )
    assert priced.code == 0 and json.loads(priced.out)["budget"]["ok"]


def test_max_hours_is_the_cluster_jobs_own_time_limit(make_spec, tmp_path):
    from azft import api

    spec = make_spec(model="phi-3-mini-4k-instruct", compute=MAAP, budget={"max_hours": 1.5})
    steps = api.plan(spec, "maap").request["jobs"]
    assert steps["finetune"]["limits"]["timeout"] == 5400
    unlimited = api.plan(make_spec(name="free", model="phi-3-mini-4k-instruct", compute=MAAP), "maap")
    assert "limits" not in unlimited.request["jobs"]["finetune"]


@pytest.mark.parametrize("field,value", [("max_usd", 0), ("max_usd", -1), ("max_hours", 0), ("max_hours", "soon")])
def test_bad_budget_values_are_spec_errors_with_the_field(run_cli, make_spec, tmp_path, field, value):
    path = _spec_file(make_spec, tmp_path)
    path.write_text(path.read_text() + f"budget:\n  {field}: {value}\n")
    res = run_cli("validate", str(path), "--no-data")
    assert res.code == 2 and f"budget.{field}" in res.text and "Traceback" not in res.text


def test_wait_cancels_a_job_past_max_hours_on_a_controlled_clock(make_spec, tmp_path, monkeypatch):
    import calendar
    import time

    from azft import api
    from azft.errors import EXIT_CANCELLED, JobCancelledError
    from azft.state import lookup_submission

    monkeypatch.chdir(tmp_path)
    spec = make_spec(model="phi-4-mini-instruct", budget={"max_hours": 2}, mock={"seconds_per_state": 30})
    job = api.submit(api.plan(spec, "mock"), track=False)
    rec = lookup_submission(job.name)
    assert rec["max_hours"] == 2
    created = calendar.timegm(time.strptime(rec["created"], "%Y-%m-%dT%H:%M:%SZ"))
    # an hour in: waiting with a short timeout only times out; the job keeps running
    with pytest.raises(JobCancelledError, match="timed out"):
        api.wait(job, timeout=0.1, poll_interval=0.05, now=created + 3600)
    assert not job.info().status.terminal
    # two hours and a second in: wait cancels it
    with pytest.raises(JobCancelledError, match="max_hours 2") as err:
        api.wait(job, poll_interval=0.05, now=created + 7201)
    assert err.value.exit_code == EXIT_CANCELLED
    assert job.info().status in (JobStatus.CANCEL_REQUESTED, JobStatus.CANCELED)


def test_a_time_limited_cluster_job_is_accepted_by_the_emulated_workspace(run_cli, make_spec, tmp_path):
    path = _spec_file(
        make_spec, tmp_path, budget={"max_usd": 50, "max_hours": 3}, mock={"target": "maap", "seconds_per_state": 0.05}
    )
    res = run_cli("submit", str(path), "--backend", "mock", "--wait", "--output", "json")
    assert res.code == 0, res.text
    assert json.loads(res.out)["status"] == "Completed"

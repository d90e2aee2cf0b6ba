"""The CI flow end to end on the mock backend (the real maas code against the embedded Azure ML emulator):
validate → plan → submit → wait → results through the CLI with --output json, then a failing job and a wait that
times out, each with the exit code a CI job branches on. Finally the repository's own workflow, through the action,
on a change to examples/mock-ci.yaml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ci.conftest import MOCK_SPEC, ROOT


def _json(res) -> dict:
    assert res.out.strip(), f"no JSON on stdout (exit {res.code}): {res.err}"
    return json.loads(res.out)


def _variant(tmp_path: Path, name: str, **mock) -> Path:
    """examples/mock-ci.yaml with another name and mock settings, data paths pointing at the examples."""
    spec = yaml.safe_load(MOCK_SPEC.read_text())
    spec["name"] = name
    spec["output"] = {"model_name": name}
    for role in ("train", "validation"):
        spec["data"][role] = str(MOCK_SPEC.parent / spec["data"][role])
    spec["mock"] = {**spec["mock"], **mock}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_mock_flow_validate_plan_submit_wait_results(run_cli):
    spec = str(MOCK_SPEC)

    res = run_cli("validate", spec, "--output", "json")
    assert res.code == 0, res.text
    validated = _json(res)
    assert validated["ok"] is True and validated["name"] == "support-bot-mock"

    res = run_cli("plan", spec, "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    plan = _json(res)
    assert plan["verdict"]["ok"] is True and plan["backend"] == "mock" and plan["target"] == "maas"
    assert plan["estimate"]["label"] == "ESTIMATE" and plan["estimate"]["training_tokens_total"] > 0
    job_name = plan["job_name"]

    res = run_cli("submit", spec, "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    submitted = _json(res)
    assert submitted["job_name"] == job_name  # the plan names the job the CI will follow
    assert submitted["backend"] == "mock" and submitted["mlflow_run_id"]

    res = run_cli("wait", job_name, "--timeout", "120", "--poll", "0.2", "--output", "json")
    assert res.code == 0, res.text
    done = _json(res)
    assert done["name"] == job_name and done["status"] == "Completed" and done["error"] is None
    assert done["outputs"] == {"registered_model": "support-bot-mock"}
    assert done["metrics"]["train_loss"] > 0 and done["mlflow_run_id"] == submitted["mlflow_run_id"]

    res = run_cli("results", job_name, "--output", "json")
    assert res.code == 0, res.text
    results = _json(res)
    assert results["job_name"] == job_name and results["run_id"] == submitted["mlflow_run_id"]
    assert results["status"] == "FINISHED" and results["backend"] == "mock"
    assert results["metrics"]["train_loss"] == pytest.approx(done["metrics"]["train_loss"])
    assert results["outputs"]["registered_model"] == "support-bot-mock"

    # a rerun of the same CI step finds the job instead of paying for a second one
    res = run_cli("submit", spec, "--backend", "mock", "--output", "json")
    assert res.code == 0 and _json(res)["job_name"] == job_name


def test_failed_job_exits_1_with_the_azure_error_code(run_cli, tmp_path):
    spec = _variant(
        tmp_path,
        "quota-bot",
        seconds_per_state=0.2,
        faults=[{"kind": "job_error", "state": "Running", "error": "quota_exceeded"}],
    )
    res = run_cli("submit", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    job_name = _json(res)["job_name"]

    res = run_cli("wait", job_name, "--timeout", "120", "--poll", "0.2", "--output", "json")
    assert res.code == 1, res.text
    failed = _json(res)
    assert failed["name"] == job_name and failed["status"] == "Failed"
    assert failed["error_code"] == "QuotaExceeded"


def test_wait_timeout_exits_3_and_the_job_can_be_cancelled(run_cli, tmp_path):
    spec = _variant(tmp_path, "slow-bot", seconds_per_state=600, faults=[])
    res = run_cli("submit", str(spec), "--backend", "mock", "--output", "json")
    assert res.code == 0, res.text
    job_name = _json(res)["job_name"]

    res = run_cli("wait", job_name, "--timeout", "0.5", "--poll", "0.1", "--output", "json")
    assert res.code == 3, res.text
    timed_out = _json(res)
    assert timed_out["ok"] is False and timed_out["exit_code"] == 3
    assert job_name in timed_out["error"] and "timed out" in timed_out["error"]

    res = run_cli("cancel", job_name, "--output", "json")
    assert res.code == 0, res.text
    assert _json(res)["status"] in ("CancelRequested", "Canceled")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_workflow_steps_run_the_mock_flow(tmp_path):
    """The repository's own workflow (`uses: ./`, azft built from the working tree) on a push to main that changes
    examples/mock-ci.yaml: the action's steps run as GitHub would run them (tests/ci/action_runner.py)."""
    from tests.ci.action_runner import ActionRunner
    from tests.fixtures.wheel import fresh_env

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    _git(clone, "checkout", "-q", _git(ROOT, "rev-parse", "HEAD"))
    _git(clone, "checkout", "-qB", "main")
    before = _git(clone, "rev-parse", "HEAD")
    spec = clone / "examples" / "mock-ci.yaml"
    spec.write_text(spec.read_text() + "# a change CI picks up\n")
    _git(clone, "commit", "-qam", "touch the mock spec")
    env = fresh_env(tmp_path / "machine")["env"]
    env.pop("AZFT_HOME", None)
    env.pop("PIP_NO_INDEX", None)  # `azft-version: source` builds the working tree; pip fetches setuptools for it
    github = {
        "event_name": "push",
        "ref": "refs/heads/main",
        "run_id": "7",
        "run_attempt": "1",
        "job": "submit",
        "token": "",
        "event": {"before": before, "repository": {"default_branch": "main"}},
    }
    temp = tmp_path / "runner"
    temp.mkdir()
    run = ActionRunner(clone, clone, "./", temp, env, github)
    outputs = run.run_job(clone / ".github" / "workflows" / "finetune.yml", "submit")
    failed = [r for r in run.records if r.ran and r.code]
    assert not failed, "\n".join(f"{r.name}: {r.stdout}\n{r.stderr}" for r in failed)
    assert "installing " + str(clone) in run.record("Install azft").stdout
    assert outputs["count"] == "1" and outputs["submit-count"] == "1"
    assert not run.record("Azure login (OIDC, no secret)").ran  # mock: no Azure sign-in

    out = Path(outputs["run-record"]) / "ci" / "examples_mock_ci"
    assert json.loads((out / "validate.json").read_text())["ok"] is True
    plan = json.loads((out / "plan.json").read_text())
    assert plan["verdict"]["ok"] is True
    text = run.summary.read_text()
    assert "✅ can run on `mock`" in text and plan["job_name"] in text
    submitted = json.loads((out / "submit.json").read_text())
    assert submitted["name"] == plan["job_name"] and submitted["status"] == "Completed"
    results = json.loads((out / "results.json").read_text())
    assert results["job_name"] == plan["job_name"] and results["status"] == "FINISHED"
    assert "✅ **Completed**" in text and "registered_model" in text
    assert text.count("## azft · `examples/mock-ci.yaml` → `mock`") == 2  # review + submit
    (artifact,) = (temp / "artifacts").iterdir()
    assert (artifact / ".azft" / "mlflow.db").is_file() and (artifact / "ci" / "examples_mock_ci").is_dir()
    assert not (clone / ".azft").exists() and not (ROOT / ".azft" / "mock" / "jobs" / plan["job_name"]).exists()

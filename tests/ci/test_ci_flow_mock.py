"""The CI flow end to end on the mock backend (the real maas code against the embedded Azure ML emulator):
validate → plan → submit → wait → results through the CLI with --output json, then a failing job and a wait that
times out, each with the exit code a CI job branches on. Finally the workflow's own shell steps run as GitHub would
run them, on examples/mock-ci.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ci.conftest import MOCK_SPEC, ROOT, WORKFLOW, load_yaml, shell_env


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
    assert done["metrics"]["loss"] > 0 and done["mlflow_run_id"] == submitted["mlflow_run_id"]

    res = run_cli("results", job_name, "--output", "json")
    assert res.code == 0, res.text
    results = _json(res)
    assert results["job_name"] == job_name and results["run_id"] == submitted["mlflow_run_id"]
    assert results["status"] == "FINISHED" and results["backend"] == "mock"
    assert results["metrics"]["loss"] == pytest.approx(done["metrics"]["loss"])
    assert results["outputs"]["registered_model"] == "support-bot-mock"

    # a rerun of the same CI step finds the job instead of paying for a second one
    res = run_cli("submit", spec, "--backend", "mock", "--output", "json")
    assert res.code == 0 and _json(res)["job_name"] == job_name


def test_failed_job_exits_1_with_the_azure_error_code(run_cli, tmp_path):
    spec = _variant(tmp_path, "quota-bot", seconds_per_state=0.2,
                    faults=[{"kind": "job_error", "state": "Running", "error": "quota_exceeded"}])
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


def _steps(job: str) -> list[dict]:
    return load_yaml(WORKFLOW)["jobs"][job]["steps"]


def _step_env(step: dict, outputs: dict[str, str]) -> dict[str, str]:
    """A step's `env:`; the only expressions the harness knows are `${{ steps.<id>.outputs.<name> }}`."""
    env = {}
    for key, value in (step.get("env") or {}).items():
        m = re.fullmatch(r"\$\{\{\s*steps\.[\w-]+\.outputs\.([\w-]+)\s*\}\}", str(value))
        assert m, f"step {step.get('name')}: the test harness cannot evaluate {value!r}"
        env[key] = outputs.get(m.group(1), "")
    return env


def _run_steps(job: str, names: list[str], env: dict, cwd: Path) -> dict[str, str]:
    """Run the named `run:` steps of a workflow job with bash, as the runner does (shell: bash → -eo pipefail).
    Returns the step outputs written to $GITHUB_OUTPUT."""
    outputs: dict[str, str] = {}
    for step in _steps(job):
        if step.get("name") not in names:
            continue
        out_file = Path(env["RUNNER_TEMP"]) / f"output-{len(outputs)}-{step.get('id', 'step')}"
        step_env = {**env, **_step_env(step, outputs), "GITHUB_OUTPUT": str(out_file)}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                              cwd=cwd, env=step_env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{job}/{step['name']}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        if out_file.is_file():
            outputs.update(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
    return outputs


def test_workflow_steps_run_the_mock_flow(tmp_path):
    """The plan and submit jobs' shell steps, verbatim, with the variables GitHub would set for this spec."""
    summary = tmp_path / "step_summary.md"
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    env = shell_env(SPEC="examples/mock-ci.yaml", BACKEND="mock", KEY="examples_mock_ci",
                    RUNNER_TEMP=str(runner_temp), GITHUB_STEP_SUMMARY=str(summary),
                    AZFT_HOME=str(tmp_path / "home"), AZFT_WAIT_TIMEOUT="300", MLFLOW_TRACKING_URI="",
                    AZURE_CLIENT_ID="", AZURE_TENANT_ID="", AZURE_SUBSCRIPTION_ID="")
    env.pop("PYTHONPATH", None)
    out = runner_temp / "azft-ci"

    _run_steps("plan", ["Validate", "Plan (dry run)", "Summary"], env, ROOT)
    assert json.loads((out / "validate.json").read_text())["ok"] is True
    plan = json.loads((out / "plan.json").read_text())
    assert plan["verdict"]["ok"] is True
    text = summary.read_text()
    assert "✅ can run on `mock`" in text and plan["job_name"] in text

    outputs = _run_steps("submit", ["Plan", "Submit and wait", "Results", "Summary"], env, ROOT)
    assert outputs["job"] == plan["job_name"]
    run = json.loads((out / "submit.json").read_text())
    assert run["name"] == plan["job_name"] and run["status"] == "Completed"
    results = json.loads((out / "results.json").read_text())
    assert results["job_name"] == plan["job_name"] and results["status"] == "FINISHED"
    text = summary.read_text()
    assert "✅ **Completed**" in text and "registered_model" in text
    assert text.count("## azft · `examples/mock-ci.yaml` → `mock`") == 2  # plan job + submit job
    assert not (ROOT / ".azft" / "mock" / "jobs" / plan["job_name"]).exists(), "state leaked into the repository"
    assert os.environ.get("AZFT_HOME") != str(tmp_path / "home")

"""`azft ci submit` with a wait that times out (exit 3, the job keeps running), then `azft ci cancel`, the step the
action runs when a run is cancelled before azft could cancel the job itself."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.ci.conftest import MOCK_SPEC


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=repo, check=True, capture_output=True
    )


def test_timed_out_submit_then_cancel(run_ci, tmp_path, clean_ci_env):
    repo = tmp_path / "repo"
    (repo / "specs" / "mock").mkdir(parents=True)
    doc = yaml.safe_load(MOCK_SPEC.read_text())
    doc.update(name="slow-bot", output={"model_name": "slow-bot"})
    doc["data"] = {k: str(MOCK_SPEC.parent / v) for k, v in doc["data"].items()}
    doc["mock"] = {"target": "maas", "seconds_per_state": 600, "faults": []}
    (repo / "specs" / "mock" / "slow.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "spec")
    selection, out = tmp_path / "specs.json", tmp_path / "ci"

    res = run_ci("specs", "--repo", str(repo), "--all", "--save", str(selection))
    assert res.code == 0 and json.loads(selection.read_text())["submit_count"] == 1
    res = run_ci("submit", "--specs", str(selection), "--out", str(out), "--timeout", "1", "--repo", str(repo))
    assert res.code == 3, res.text  # the wait timed out; the job keeps running
    d = out / "specs_mock_slow"
    job = json.loads((d / "plan.json").read_text())["job_name"]
    assert json.loads((d / "submit.json").read_text())["exit_code"] == 3
    assert "timed out" in (d / "summary.md").read_text() or "exit 3" in (d / "summary.md").read_text()

    res = run_ci("cancel", "--specs", str(selection), "--out", str(out), "--repo", str(repo))
    assert res.code == 0, res.text
    cancelled = json.loads((d / "cancel.json").read_text())
    assert cancelled["name"] == job and cancelled["status"] in ("CancelRequested", "Canceled")

    res = run_ci("submit", "--specs", str(selection), "--out", str(out), "--timeout", "0")
    assert res.code == 2 and "--timeout" in res.err


def test_failed_job_runs_again_only_with_retry(run_ci, tmp_path, clean_ci_env):
    """A spec whose job Failed: `azft ci submit` sends nothing and exits 1; with `--retry` (what the action passes on a
    re-run of the workflow run) the job runs again under a new name and the step exits 0."""
    import azft
    from azft.backends.base import JobStatus

    repo = tmp_path / "repo"
    (repo / "specs" / "mock").mkdir(parents=True)
    doc = yaml.safe_load(MOCK_SPEC.read_text())
    doc.update(name="flaky-bot", output={"model_name": "flaky-bot"})
    doc["data"] = {k: str(MOCK_SPEC.parent / v) for k, v in doc["data"].items()}
    doc["mock"] = {"target": "maas", "seconds_per_state": 0.05}
    spec = repo / "specs" / "mock" / "flaky.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "spec")
    # the first attempt fails (a fault injected into this submission only)
    fault = {"faults": [{"kind": "job_error", "state": "Running", "error": "out_of_memory"}]}
    first = azft.submit(azft.plan(str(spec), "mock"), backend_options=fault, track=False)
    assert first.wait(poll_interval=0.05).status == JobStatus.FAILED

    selection, out = tmp_path / "specs.json", tmp_path / "ci"
    assert run_ci("specs", "--repo", str(repo), "--all", "--save", str(selection)).code == 0
    res = run_ci("submit", "--specs", str(selection), "--out", str(out), "--timeout", "60", "--repo", str(repo))
    assert res.code == 1, res.text
    res = run_ci(
        "submit", "--specs", str(selection), "--out", str(out), "--timeout", "60", "--repo", str(repo), "--retry"
    )
    assert res.code == 0, res.text
    submitted = json.loads((out / "specs_mock_flaky" / "submit.json").read_text())
    assert submitted["name"] == f"{first.name}-retry2" and submitted["status"] == "Completed"

"""The documented Python API, called the way the README shows (several times in one process), and state that stays
true: the resubmit rule, concurrent identical submits, faults that belong to their own submission, an earlier run
never marked FAILED by a later submit's transient error, AZFT_HOME with `~`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import azft
from azft.backends.base import JobStatus
from azft.errors import EXIT_CANCELLED, EXIT_INTERNAL, EXIT_JOB_FAILED, AzureError, JobCancelledError, JobFailedError

ROWS = [
    {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{i + i}."}]}
    for i in range(10)
]


def _spec(tmp_path: Path, name: str, *, seconds: float = 0.02, extra: str = "") -> Path:
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: phi-4-mini-instruct\ndata: {{train: {data.name}}}\n"
        f"mock: {{seconds_per_state: {seconds}}}\n{extra}"
    )
    return path


def _run_status(run_id: str) -> str:
    from azft.tracking import Tracker
    from azft.tracking.tracker import default_tracking_uri

    return Tracker(default_tracking_uri(), "x").get_run(run_id).info.status


def test_the_readme_snippet_works_again_and_again_in_one_process(tmp_path):
    import azft.plan as plan_module  # importing the submodule must not hide the function  # noqa: F401

    for i in range(3):
        spec = azft.load_spec(_spec(tmp_path, f"readme-{i}"))
        assert isinstance(spec, azft.JobSpec)
        plan = azft.plan(spec, "mock")
        assert isinstance(plan, azft.Plan) and plan.ok
        assert azft.plan(spec, "mock").job_name == plan.job_name  # again: the same, deterministic name
        job = azft.submit(plan)
        assert isinstance(job, azft.Job) and job.name == plan.job_name
        info = azft.wait(job, timeout=120, poll_interval=0.05)
        assert isinstance(info, azft.JobInfo) and info.status == azft.JobStatus.COMPLETED
        run_id = (
            azft.get_job(job.name).info().mlflow_run_id
            or json.loads((Path(azft.state.state_dir()) / "submissions.json").read_text())[job.name]["mlflow_run_id"]
        )
        assert _run_status(run_id) == "FINISHED"  # the API closed the MLflow run, not only the CLI
    assert issubclass(azft.SpecError, azft.AzftError) and azft.InternalError.exit_code == EXIT_INTERNAL


def test_a_failed_job_is_not_resubmitted_silently_and_retry_runs_it_again(tmp_path, run_cli):
    path = _spec(tmp_path, "fails-once")
    fault = {"faults": [{"kind": "job_error", "state": "Running", "error": "out_of_memory"}]}
    first = azft.submit(azft.plan(str(path), "mock"), backend_options=fault, track=False)
    assert first.wait(poll_interval=0.05).status == JobStatus.FAILED

    with pytest.raises(JobFailedError) as e:
        azft.submit(azft.plan(str(path), "mock"), track=False)
    assert e.value.exit_code == EXIT_JOB_FAILED and "nothing was submitted" in e.value.message
    assert "--retry" in e.value.hint
    r = run_cli("submit", str(path), "-b", "mock", "--output", "json")
    assert r.code == EXIT_JOB_FAILED and json.loads(r.out)["exit_code"] == EXIT_JOB_FAILED

    r = run_cli("submit", str(path), "-b", "mock", "--retry", "--wait", "--poll", "0.05", "--output", "json")
    assert r.code == 0, r.text
    retried = json.loads(r.out)
    assert retried["name"] == f"{first.name}-retry2" and retried["status"] == "Completed"
    # later identical submits find the newest attempt
    again = azft.submit(azft.plan(str(path), "mock"), track=False)
    assert again.name == f"{first.name}-retry2"


def test_a_canceled_job_is_not_restarted_silently(tmp_path):
    path = _spec(tmp_path, "canceled", extra="")
    opts = {"faults": [{"kind": "cancel", "state": "Queued"}]}
    job = azft.submit(azft.plan(str(path), "mock"), backend_options=opts, track=False)
    assert job.wait(poll_interval=0.05).status == JobStatus.CANCELED
    with pytest.raises(JobCancelledError) as e:
        azft.submit(azft.plan(str(path), "mock"), track=False)
    assert e.value.exit_code == EXIT_CANCELLED


def test_four_identical_submits_at_once_make_one_job_and_one_run(tmp_path):
    plan_path = _spec(tmp_path, "racing", seconds=5)
    names, errors = [], []

    def go():
        try:
            names.append(azft.submit(azft.plan(str(plan_path), "mock")).name)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(set(names)) == 1 and len(names) == 4
    assert [i.name for i in azft.list_jobs("mock")] == names[:1]
    from azft.tracking import Tracker
    from azft.tracking.tracker import default_tracking_uri

    tracker = Tracker(default_tracking_uri(), "racing")
    client = tracker.store.read()
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string=f"tags.`azft.job_name` = '{names[0]}'"
    )
    assert len(runs) == 1


def test_a_transient_error_on_an_identical_resubmit_leaves_the_completed_run_alone(tmp_path):
    path = _spec(tmp_path, "done-once")
    job = azft.submit(azft.plan(str(path), "mock"))
    assert azft.wait(job, poll_interval=0.05).status == JobStatus.COMPLETED
    run_id = json.loads((azft.state.state_dir() / "submissions.json").read_text())[job.name]["mlflow_run_id"]
    assert _run_status(run_id) == "FINISHED"
    down = {"faults": [{"kind": "http_error", "status": 503, "times": 50, "route": "."}], "retry_total": 1}
    with pytest.raises(AzureError):
        azft.submit(azft.plan(str(path), "mock"), backend_options=down)
    assert _run_status(run_id) == "FINISHED"


def test_a_fault_belongs_to_its_own_submission(tmp_path, run_cli):
    path = _spec(tmp_path, "faulty")
    r = run_cli("submit", str(path), "-b", "mock", "--fault", "http_error:status=401,times=50,route=.")
    assert r.code == 4, r.text
    r = run_cli("list", "--output", "json")
    assert r.code == 0, r.text
    r = run_cli("submit", str(_spec(tmp_path, "unrelated")), "-b", "mock", "--output", "json")
    assert r.code == 0, r.text


@pytest.mark.parametrize(
    "flags",
    [
        ["--poll", "0"],
        ["--poll", "-1"],
        ["--timeout", "nan"],
        ["--timeout", "0"],
        ["--timeout", "-5"],
        ["--timeout", "inf"],
        ["--fault", "http_error:route=(["],
    ],
)
def test_values_that_cannot_work_are_refused_before_anything_is_submitted(tmp_path, run_cli, _azft_home, flags):
    path = _spec(tmp_path, "never")
    r = run_cli("submit", str(path), "-b", "mock", "--wait", *flags, "--output", "json")
    assert r.code == 2, r.text
    assert json.loads(r.out)["ok"] is False
    assert not (_azft_home / ".azft" / "mock" / "state.json").exists()
    with pytest.raises(azft.UsageError):
        azft.api.check_wait_options(float(flags[1]) if flags[0] != "--fault" else -1, None)


def test_azft_home_with_a_tilde_is_one_place(tmp_path, monkeypatch):
    from azft.backends.local import LocalBackend
    from azft.state import job_dir, state_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AZFT_HOME", "~/azft-state")
    assert state_dir() == tmp_path / "azft-state" / ".azft"
    assert LocalBackend(component=Path(__file__)).jobs_dir == state_dir() / "jobs"
    plan = azft.plan(_spec(tmp_path, "tilde"), "local", force=True)
    outputs = plan.request["outputs"]
    assert outputs["model_output"] == str(job_dir(plan.job_name) / "outputs" / "model")
    assert plan.job_name.count("-") == 2  # name, hash, one force suffix


def test_an_unexpected_exception_is_exit_5_with_one_line(run_cli, monkeypatch, tmp_path):
    import azft.api

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(azft.api, "plan", boom)
    r = run_cli("plan", str(_spec(tmp_path, "bug")))
    assert r.code == EXIT_INTERNAL and "Traceback" not in r.text and "internal error" in r.err
    r = run_cli("plan", str(_spec(tmp_path, "bug")), "--output", "json")
    assert r.code == EXIT_INTERNAL and json.loads(r.out)["exit_code"] == EXIT_INTERNAL


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "x.yaml", "--bogus"],
        ["plan", "x.yaml", "--backend", "nope"],
        ["status"],
        ["submit", "x.yaml", "--poll", "soon"],
    ],
)
def test_usage_errors_are_json_in_json_mode(run_cli, args):
    r = run_cli(*args, "--output", "json")
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["error"]


def test_schema_out_to_a_missing_folder_is_a_usage_error(run_cli, tmp_path):
    r = run_cli("schema", "--out", str(tmp_path / "missing" / "x.json"))
    assert r.code == 2 and "cannot write" in r.err and "Traceback" not in r.text

"""The mock backend: the real maas/maap code against an in-process emulator whose workspace lives on disk."""

from __future__ import annotations

import json

import pytest

from azft.backends.base import JobStatus
from azft.errors import EXIT_AZURE, EXIT_CANCELLED, EXIT_JOB_FAILED, AzureError


def _mock(tmp_path, **kw):
    from azft.backends.mock import MockBackend

    return MockBackend(state_dir=str(tmp_path / "mock"), **kw)


def _wait(job):
    return job.wait(poll_interval=0.05)


FAST = {"seconds_per_state": 0.05}


@pytest.mark.parametrize(
    "error,code",
    [
        ("quota_exceeded", "QuotaExceeded"),
        ("unauthorized", "Unauthorized"),
        ("model_not_available_in_region", "ModelNotAvailableInRegion"),
        ("out_of_memory", "OutOfMemory"),
        ("invalid_data", "UserError"),
    ],
)
def test_job_error_faults_fail_the_job_with_an_actionable_message(tmp_path, make_spec, plan_for, error, code):
    spec = make_spec(mock={**FAST, "faults": [{"kind": "job_error", "state": "Preparing", "error": error}]})
    backend = _mock(tmp_path)
    try:
        info = _wait(backend.submit(plan_for(spec, "mock")))
    finally:
        backend.close()
    assert info.status == JobStatus.FAILED  # the CLI exits with EXIT_JOB_FAILED
    assert info.error_code == code and " — " in info.error  # Azure's message, then what to do about it
    assert EXIT_JOB_FAILED == 1


def test_cancel_fault_and_a_cancel_command(tmp_path, make_spec, plan_for):
    backend = _mock(tmp_path)
    try:
        spec = make_spec(mock={**FAST, "faults": [{"kind": "cancel", "state": "Running"}]})
        assert _wait(backend.submit(plan_for(spec, "mock"))).status == JobStatus.CANCELED  # exit 3
        slow = backend.submit(plan_for(make_spec(name="slow", mock={"seconds_per_state": 30}), "mock"))
        slow.cancel()
        assert slow.info().status in (JobStatus.CANCEL_REQUESTED, JobStatus.CANCELED)
    finally:
        backend.close()
    assert EXIT_CANCELLED == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_error", "status": 503, "times": 2},
        {"kind": "http_error", "status": 429, "retry_after": 0.01, "method": "PUT"},
        {"kind": "drop_connection", "method": "GET"},
        {"kind": "slow_response", "delay": 0.05},
    ],
)
def test_transient_faults_are_retried_and_the_job_completes(tmp_path, make_spec, plan_for, fault):
    backend = _mock(tmp_path)
    try:
        job = backend.submit(plan_for(make_spec(mock={**FAST, "faults": [fault]}), "mock"))
        info = _wait(job)
    finally:
        backend.close()
    assert info.status == JobStatus.COMPLETED
    saved = json.loads(open(info.extra["requests_file"]).read())
    assert any(r["fault"] for r in saved)  # the fault really happened, and was retried
    hist = job.metrics_history()
    assert hist["train_loss"][0][1] > hist["train_loss"][-1][1]  # a decaying simulated loss curve


def test_a_permanent_http_error_is_an_azure_error(tmp_path, make_spec, plan_for):
    spec = make_spec(mock={**FAST, "faults": [{"kind": "http_error", "status": 401, "method": "GET"}]})
    backend = _mock(tmp_path)
    try:
        with pytest.raises(AzureError) as e:
            backend.submit(plan_for(spec, "mock"))
        assert e.value.exit_code == EXIT_AZURE
        assert "not authenticated" in e.value.message and "az login" in e.value.hint
        assert not backend.workspace.emulator.jobs  # nothing was created
        # faults given as flags work the same way
        flagged = _mock(tmp_path, faults=[{"kind": "http_error", "status": 403, "route": "jobs"}])
        with pytest.raises(AzureError, match="permission denied"):
            flagged.submit(plan_for(make_spec(name="flags", mock=FAST), "mock"))
        flagged.close()
    finally:
        backend.close()


def test_state_outlives_the_process_and_is_read_back_by_a_fresh_backend(tmp_path, make_spec, plan_for):
    first = _mock(tmp_path)
    try:
        job = first.submit(plan_for(make_spec(mock=FAST), "mock"))
        assert job.info().extra["bytes_uploaded"] > 0
    finally:
        first.close()
    second = _mock(tmp_path)  # a new emulator on a new port, as in `azft status JOB` from another shell
    try:
        again = second.get_job(job.name)
        assert _wait(again).status == JobStatus.COMPLETED
        assert [i.name for i in second.list_jobs()] == [job.name]
        resubmit = second.submit(plan_for(make_spec(mock=FAST), "mock"))
        assert resubmit.existed and resubmit.name == job.name
        assert any("status: Completed" in line for line in again.logs())
    finally:
        second.close()


def test_saved_requests_of_a_mock_maas_job_equal_what_the_maas_backend_sends(
    tmp_path, emulator, azure_backend, make_spec, plan_for
):
    spec = make_spec(mock=FAST)
    mock = _mock(tmp_path)
    try:
        mjob = mock.submit(plan_for(spec, "mock"))
        assert mjob.artifacts() and mjob.artifacts()[0].name == "requests.json"
        saved = [r for r in json.loads(mjob.artifacts()[0].read_text()) if r["command"] == "submit"]
    finally:
        mock.close()
    real_plan = plan_for(spec, "maas")
    azure_backend("maas").submit(real_plan)

    def shape(reqs, name):
        out = []
        for r in reqs:
            body = json.loads(json.dumps(r["body"]).replace(name, "JOB")) if r["body"] else None
            if body:
                tags = body.get("properties", {}).get("tags", {})
                for k in ("azft.backend", "azft.target", "azft.spec_hash"):
                    tags.pop(k, None)
                (body.get("properties", {}).get("properties") or {}).clear()
            out.append(
                (
                    r["method"],
                    r["path"].split("/workspaces/")[-1].replace(name, "JOB"),
                    r["query"].get("api-version"),
                    body,
                )
            )
        return out

    real = [r.to_dict() for r in emulator.requests]
    assert shape(saved, mjob.name) == shape(real, real_plan.job_name)
    assert "authorization" not in json.dumps(saved).lower()


def test_errors_logs_and_metrics_are_read_from_run_history_by_the_real_azure_code(tmp_path, make_spec, plan_for):
    """The mock replaces no method of the real backend: AzureBackend's own run-history readers (the run's error,
    its std_log through a SAS URL from the run details, the metric service) do the reading."""
    from azft.backends.azureml import AzureBackend

    backend = _mock(tmp_path)
    try:
        failing = make_spec(
            name="fails", mock={**FAST, "faults": [{"kind": "job_error", "state": "Running", "error": "out_of_memory"}]}
        )
        info = _wait(backend.submit(plan_for(failing, "mock")))
        done = backend.submit(plan_for(make_spec(name="done", mock=FAST), "mock"))
        done_info = _wait(done)
        logs = list(done.logs())
        history = done.metrics_history()
        inner = backend.inner("maas")
        assert not {"job_error", "job_logs", "job_metrics"} & set(vars(inner))  # nothing patched on the instance
        assert type(inner).job_logs is AzureBackend.job_logs and type(inner).job_metrics is AzureBackend.job_metrics
        records = json.loads(backend.workspace.requests_file(info.name).read_text())
    finally:
        backend.close()
    assert info.status == JobStatus.FAILED and info.error_code == "OutOfMemory"
    assert any(r["route"] == "history.run" for r in records)
    assert done_info.status == JobStatus.COMPLETED
    assert any(line.startswith("step ") for line in logs) and "status: Completed" in logs[-1]
    train = history["train_loss"]  # the emulator's `loss`, under azft's metric name
    assert train and train[0][0] == 1 and done_info.metrics["train_loss"] == train[-1][1]

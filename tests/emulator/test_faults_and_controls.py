"""Fault injection (retried by azure-core's RetryPolicy), the control endpoints and the standalone CLI."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from azure.ai.ml import Input, command
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

TRAIN = "azureml://datastores/workspaceblobstore/paths/azft/data/abc/train.jsonl"


def _job(name: str):
    return command(
        name=name,
        command="python train.py",
        environment="azureml:AzureML-sklearn-1.0@latest",
        compute="gpu",
        inputs={"train": Input(type="uri_file", path=TRAIN)},
    )


def _call(emulator, method: str, path: str, body: dict | None = None, token: str | None = None):
    ctx = ssl.create_default_context(cafile=emulator.ca_pem_path)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        emulator.base_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if r.headers.get_content_type() == "application/json" else raw.decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": 0},
        {"status": 503},
        {"status": 500, "times": 2},
        {"drop_connection": True},
    ],
    ids=["429-retry-after", "503", "500-twice", "connection-reset"],
)
def test_get_survives_a_fault_through_the_retry_policy(emulator, fault):
    ml = emulator.make_ml_client(retry_total=3)
    ml.jobs.create_or_update(_job("faulty-get"))
    f = emulator.inject(r"/jobs/faulty-get$", method="GET", **fault)
    assert ml.jobs.get("faulty-get").name == "faulty-get"
    attempts = emulator.requests_to(r"/jobs/faulty-get$", "GET")
    assert f.hits == fault.get("times", 1)
    assert len(attempts) == f.hits + 1 and attempts[-1].status == 200


@pytest.mark.parametrize(
    "fault", [{"status": 429, "retry_after": 0}, {"drop_connection": True}], ids=["429", "connection-reset"]
)
def test_job_submission_survives_a_fault(emulator, fault):
    ml = emulator.make_ml_client(retry_total=3)
    emulator.inject(r"/jobs/faulty-put$", method="PUT", **fault)
    assert ml.jobs.create_or_update(_job("faulty-put")).name == "faulty-put"
    puts = emulator.requests_to(r"/jobs/faulty-put$", "PUT")
    assert [p.status for p in puts] == [None if fault.get("drop_connection") else 429, 201]
    assert puts[0].body == puts[1].body  # the retry re-sent the same body
    assert len(emulator.jobs) == 1


def test_without_retries_the_fault_surfaces(emulator):
    ml = emulator.make_ml_client(retry_total=0)
    emulator.inject(r"/workspaces/ws-azft$", status=503, times=None)
    with pytest.raises(HttpResponseError) as e:
        ml.workspaces.get(emulator.workspace_name)
    assert e.value.status_code == 503
    emulator.reset()
    emulator.inject(r"/workspaces/ws-azft$", drop_connection=True)
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        ml.workspaces.get(emulator.workspace_name)


def test_slow_response_past_the_read_timeout_is_retried(emulator):
    ml = emulator.make_ml_client(retry_total=2, read_timeout=0.3)
    f = emulator.inject(r"/workspaces/ws-azft$", method="GET", delay=1.0)
    assert ml.workspaces.get(emulator.workspace_name).location == "eastus2"
    assert f.hits == 1
    assert len(emulator.requests_to(r"/workspaces/ws-azft$", "GET")) == 2


def test_fault_is_scoped_to_its_route_and_method(emulator):
    ml = emulator.make_ml_client(retry_total=0)
    emulator.inject(r"/jobs/", method="PUT", status=503, times=None)
    assert ml.workspaces.get(emulator.workspace_name).name == "ws-azft"
    with pytest.raises(HttpResponseError):
        ml.jobs.create_or_update(_job("blocked"))


def test_requests_need_a_bearer_token_and_a_known_api_version(emulator):
    ws_path = emulator.workspace_id
    status, body = _call(emulator, "GET", ws_path + "?api-version=2024-10-01-preview")
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    # an api-version the service does not know: ARM's answer names it, the type and the supported versions
    status, body = _call(emulator, "GET", ws_path + "?api-version=1999-01-01", token="x")
    assert status == 400 and body["error"]["code"] == "NoRegisteredProviderFound"
    assert "'1999-01-01'" in body["error"]["message"] and "2024-10-01-preview" in body["error"]["message"]
    status, body = _call(emulator, "GET", ws_path + "?api-version=latest", token="x")
    assert status == 400 and body["error"]["code"] == "InvalidApiVersionParameter"
    status, body = _call(emulator, "GET", ws_path, token="x")
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, body = _call(
        emulator, "GET", ws_path.replace("ws-azft", "other") + "?api-version=2024-10-01-preview", token="x"
    )
    assert status == 404 and "other" in body["error"]["message"]
    status, body = _call(emulator, "GET", ws_path + "/datasets/foo?api-version=2024-10-01-preview", token="x")
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    assert [r.path for r in emulator.unmatched] == [ws_path + "/datasets/foo"]


def test_control_endpoints_script_advance_and_read_metrics(emulator, ml_client):
    status, _ = _call(
        emulator,
        "POST",
        "/_emulator/outcomes",
        {"job": "ctl", "kind": "fail", "at": "Running", "error_code": "ModelNotAvailableInRegion"},
    )
    assert status == 201
    ml_client.jobs.create_or_update(_job("ctl"))
    status, body = _call(emulator, "POST", "/_emulator/advance", {"seconds": 3.2})
    assert status == 200
    status, metrics = _call(emulator, "GET", "/_emulator/jobs/ctl/metrics")
    assert status == 200 and metrics["loss"] and all(len(p) == 2 for p in metrics["loss"])
    _call(emulator, "POST", "/_emulator/advance", {"seconds": 5})
    status, job = _call(emulator, "GET", "/_emulator/jobs/ctl")
    assert job["status"] == "Failed" and job["error"]["code"] == "ModelNotAvailableInRegion"
    status, logs = _call(emulator, "GET", "/_emulator/jobs/ctl/logs")
    assert "status: Failed" in logs and "ModelNotAvailableInRegion" in logs
    status, _ = _call(emulator, "POST", "/_emulator/faults", {"route_regex": "/jobs/ctl$", "status": 429})
    assert status == 201
    with pytest.raises(HttpResponseError) as e:
        ml_client.jobs.get("ctl")
    assert e.value.status_code == 429
    status, body = _call(emulator, "POST", "/_emulator/faults", {"route_regex": "x", "bogus": 1})
    assert status == 400
    status, body = _call(emulator, "GET", "/_emulator/requests")
    assert all("Authorization" not in r["headers"] for r in body["value"])
    run_path = f"/history/v1.0{emulator.workspace_id}/runs/ctl"
    status, run = _call(emulator, "GET", run_path, token="x")
    assert run["status"] == "Failed" and run["error"]["error"]["code"] == "ModelNotAvailableInRegion"


def test_standalone_cli_prints_url_and_ca_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "azft.emulator", "--json", "--ca-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("https://127.0.0.1:")
        assert info["ca_pem_path"] == str(tmp_path / "ca.pem")
        assert info["env"]["AZFT_AZURE_ENDPOINT"] == info["url"]
        ctx = ssl.create_default_context(cafile=info["ca_pem_path"])
        with urllib.request.urlopen(info["url"] + "/_emulator/health", context=ctx, timeout=10) as r:
            assert json.loads(r.read()) == {"ok": True}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0

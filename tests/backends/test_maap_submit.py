"""maap end to end through the real azure-ai-ml MLClient over HTTPS: clusters, component code uploaded through the
emulator's startPendingUpload SAS and Blob service, the pipeline job, its lifecycle, idempotent re-submits and faults
at every request. Also the CLI paths a user runs: mock with target maap, and a failed maas job's error code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from azft.backends.base import JobStatus

from .test_azure_backends import comparable, rest_body

COMPONENT_STEPS = ("validate_data", "finetune", "evaluate", "register_model")
MAAP_COMPUTE = {
    "cluster": "gpu-a100",
    "instance_type": "Standard_NC48ads_A100_v4",
    "instance_count": 2,
    "gpus_per_node": 2,
    "create_cluster": True,
}


@pytest.fixture
def fast_storage_retries(monkeypatch):
    """azure-ai-ml builds its code-upload storage clients itself, with azure-storage-blob's default retry policy:
    a 15 s (+/-3 s) backoff. The retries still happen; only the wait is shortened so the test stays fast."""
    from azure.storage.blob._shared.policies import ExponentialRetry

    monkeypatch.setattr(ExponentialRetry.__init__, "__defaults__", (0, 0, 3, False, 0))


def _maap_spec(make_spec, name="demo", **compute):
    return make_spec(
        name=name,
        model="phi-3-mini-4k-instruct",
        method="lora",
        compute={**MAAP_COMPUTE, "deepspeed": {"stage": 3, "offload": "all"}, **compute},
    )


def _blob_requests(emulator, start=0):
    return [r for r in emulator.requests[start:] if r.route == "blob"]


def test_maap_submit_uploads_code_once_and_the_pipeline_completes(emulator, azure_backend, make_spec, plan_for):
    from azft.azure import jobs

    backend = azure_backend("maap")
    plan = plan_for(_maap_spec(make_spec), "maap")
    job = backend.submit(plan)
    assert not emulator.unmatched, [(r.method, r.path) for r in emulator.unmatched]

    # the cluster: created with min 0 nodes, big enough for two nodes
    cluster = emulator.computes["gpu-a100"]["properties"]["properties"]
    assert cluster["vmSize"] == "Standard_NC48ads_A100_v4"
    assert cluster["scaleSettings"]["minNodeCount"] == 0 and cluster["scaleSettings"]["maxNodeCount"] == 2

    # each component's code folder went through startPendingUpload and real blob uploads, then a code version
    pending = emulator.requests_to(r"/codes/[^/]+/versions/1/startPendingUpload$", "POST")
    assert len(pending) == len(COMPONENT_STEPS)
    puts = [r for r in _blob_requests(emulator) if r.method == "PUT" and "comp" not in r.query]
    assert puts and all(r.status == 201 for r in puts)
    codes = list(emulator.codes.values())
    assert len(codes) == len(COMPONENT_STEPS)
    for code in codes:
        uri = code["properties"]["codeUri"]
        assert uri.startswith(emulator.own_blob_endpoint + "/")
        container, _, folder = uri[len(emulator.own_blob_endpoint) + 1 :].partition("/")
        names = [n for n, _ in emulator.blob_store.list(container, folder + "/")]
        assert any(n.endswith(".py") for n in names), names
        (indicator,) = [n for n, p in emulator.blob_store.list(container) if p.metadata.get("upload_status")]
        assert emulator.blob_store.properties(container, indicator).metadata["upload_status"] == "completed"
    # the SAS signature never reaches the recorded requests
    assert "sig" in puts[0].query and puts[0].query["sig"] == "[redacted]"

    # the PUT of the pipeline job is the SDK's own _to_rest_object() of the same job, resolved against the workspace
    (put,) = emulator.requests_to(r"/jobs/[^/]+$", "PUT")
    assert put.headers.get("x-azureml-token") == "[redacted]"
    expected = jobs.build_maap_job(plan)
    backend.ml_client.jobs._resolve_arm_id_or_upload_dependencies(expected)
    assert comparable(put.body) == comparable(rest_body(expected))
    props = put.body["properties"]
    assert props["jobType"] == "Pipeline" and set(props["jobs"]) == set(COMPONENT_STEPS)
    assert all(
        props["jobs"][s]["componentId"].startswith(emulator.workspace_id + "/components/azureml_anonymous/")
        for s in COMPONENT_STEPS
    )
    finetune = props["jobs"]["finetune"]
    assert props["inputs"]["instance_count"]["value"] == "2" and props["inputs"]["gpus_per_node"]["value"] == "2"
    assert finetune["resources"]["instance_count"] == "${{parent.inputs.instance_count}}"
    assert finetune["distribution"]["process_count_per_instance"] == "${{parent.inputs.gpus_per_node}}"
    assert props["inputs"]["deepspeed_stage"]["value"] == "3"
    assert props["inputs"]["deepspeed_offload"]["value"] == "all"
    assert props["settings"]["default_compute"].endswith("/computes/gpu-a100")

    # the pipeline job's own status is what azft follows, to Completed
    assert job.info().status == JobStatus.NOT_STARTED
    emulator.advance(states=10)
    info = job.wait(poll_interval=0)
    assert info.status == JobStatus.COMPLETED and info.extra["job_type"] == "pipeline"


def test_resubmit_uploads_nothing_and_creates_no_second_job(emulator, azure_backend, make_spec, plan_for):
    backend = azure_backend("maap")
    first = backend.submit(plan_for(_maap_spec(make_spec), "maap"))
    blobs_before = sum(len(emulator.blob_store.list(c)) for c in emulator.blob_store.containers())

    n = len(emulator.requests)
    again = backend.submit(plan_for(_maap_spec(make_spec), "maap"))
    assert again.existed and again.name == first.name
    assert {r.method for r in emulator.requests[n:]} == {"GET"} and not _blob_requests(emulator, n)
    assert list(emulator.jobs) == [first.name]

    # even a deliberate new job (--force) finds every code folder by its content hash: no SAS, no blob traffic
    n = len(emulator.requests)
    forced = backend.submit(plan_for(_maap_spec(make_spec), "maap"), force=True)
    assert forced.name != first.name and len(emulator.jobs) == 2
    assert not emulator.requests_to(r"startPendingUpload$")[len(COMPONENT_STEPS) :]
    assert not _blob_requests(emulator, n)
    assert len(emulator.requests_to(r"/codes/[^/]+/versions$", "GET")) == 2 * len(COMPONENT_STEPS)
    assert len(emulator.codes) == len(COMPONENT_STEPS)
    assert sum(len(emulator.blob_store.list(c)) for c in emulator.blob_store.containers()) == blobs_before


def test_registry_pipeline_references_azures_chat_completion_pipeline(emulator, azure_backend, make_spec, plan_for):
    backend = azure_backend("maap")
    plan = plan_for(_maap_spec(make_spec, pipeline="registry", deepspeed={"stage": 3}), "maap")
    job = backend.submit(plan)
    # the SDK resolves the registry component by its id alone: no request goes to a registry
    assert not emulator.unmatched and not emulator.requests_to("registries")
    (put,) = emulator.requests_to(r"/jobs/[^/]+$", "PUT")
    steps = put.body["properties"]["jobs"]
    assert (
        steps["chat_completion"]["componentId"]
        == "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"
    )
    inputs = put.body["properties"]["inputs"]
    assert inputs["deepspeed_stage"]["value"] == "3" and inputs["num_nodes_finetune"]["value"] == "2"
    assert inputs["number_of_gpu_to_use_finetuning"]["value"] == "2"
    # only azft's own components (data checks, registration) upload code
    assert len(emulator.codes) == 2
    emulator.advance(states=10)
    assert job.wait(poll_interval=0).status == JobStatus.COMPLETED


_RANDOM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,64}")


def request_shape(r) -> tuple:
    """What kind of request this is, without the names that are fresh on every submit (operation ids, anonymous
    code and component versions, upload containers, file names)."""
    if r.route == "blob":
        return (r.method, "blob", r.query.get("comp"))
    return (r.method, _RANDOM.sub("*", r.path.split("/workspaces/")[-1]), r.api_version, "hash" in r.query)


@pytest.mark.parametrize("fault", ["429", "503", "reset"])
def test_a_fault_at_each_kind_of_request_of_a_maap_submit_still_makes_exactly_one_job(
    emulator, azure_backend, make_spec, plan_for, fast_storage_retries, fault
):
    """Each kind of request of a first maap submit (every ARM call, the SAS hand-out, blob HEAD, PUT and metadata)
    gets the fault once, in turn. azure-core retries the ARM calls and azure-storage-blob the blob calls. Two
    cases are not retried inside the SDK, by design: a 429 from storage (Azure Storage throttles with 503
    ServerBusy, so its client never retries 429) and a lost response to a POST (``startPendingUpload`` is not
    idempotent to azure-core). Those submits fail with exit 4 and the same command, run again, finishes the job:
    still exactly one job."""
    from azft.errors import AzureError

    azure_backend("maap").submit(plan_for(_maap_spec(make_spec), "maap"))
    firsts: dict[tuple, int] = {}
    for i, r in enumerate(emulator.requests):
        firsts.setdefault(request_shape(r), i)
    assert len(firsts) >= 14 and ("PUT", "blob", None) in firsts and ("PUT", "blob", "metadata") in firsts
    reruns = []
    for shape, i in firsts.items():
        emulator.reset()
        kw = {"drop_connection": True} if fault == "reset" else {"status": int(fault)}
        if fault == "429":
            kw["retry_after"] = 0.01
        # request number i+1, whatever its path: operation ids, code names and containers are fresh each submit
        emulator.inject(".", times=1, skip=i, **kw)
        backend = azure_backend("maap")
        try:
            job = backend.submit(plan_for(_maap_spec(make_spec), "maap"))
        except AzureError as e:
            assert (fault, shape[1]) == ("429", "blob") or (fault, shape[0]) == ("reset", "POST"), (shape, e.message)
            assert e.exit_code == 4
            reruns.append(shape)
            job = backend.submit(plan_for(_maap_spec(make_spec), "maap"))
        (hit,) = [r for r in emulator.requests if r.fault]
        assert request_shape(hit) == shape
        assert list(emulator.jobs) == [job.name], shape
        assert len([r for r in emulator.requests_to(r"/jobs/[^/]+$", "PUT") if r.status == 201]) == 1
    if fault == "503":
        assert not reruns


def test_mock_with_target_maap_end_to_end_through_the_cli(run_cli, make_spec, tmp_path):
    from azft.state import mock_dir

    # no cluster named: the mock creates its stand-in cluster; make_spec wrote the spec to <name>.yaml
    _maap_spec(make_spec, name="cli", cluster=None, create_cluster=False)
    path = tmp_path / "cli.yaml"
    path.write_text(path.read_text() + "mock:\n  target: maap\n  seconds_per_state: 0.05\n")
    res = run_cli("submit", str(path), "--backend", "mock", "--wait", "--output", "json")
    assert res.code == 0, res.text
    info = json.loads(res.out)
    assert info["status"] == "Completed" and info["extra"]["job_type"] == "pipeline"
    saved = json.loads(Path(info["extra"]["requests_file"]).read_text())
    submit = [r for r in saved if r["command"] == "submit"]
    assert any(r["path"].endswith("/startPendingUpload") for r in submit)
    assert any(r["path"].startswith("/_blob/") and r["method"] == "PUT" for r in submit)
    assert "sig=" not in json.dumps(saved).replace('"sig": "[redacted]"', "")
    # the code went to the mock's directory, so it is still there for the next process
    assert any(p.name == "component.yml" for p in (mock_dir() / "datastore").rglob("*"))

    # a second submit, in what would be a new process, finds the job: no upload, no new job
    again = run_cli("submit", str(path), "--backend", "mock", "--output", "json")
    assert again.code == 0, again.text
    assert json.loads(again.out)["job_name"] == info["name"]
    saved = json.loads(Path(info["extra"]["requests_file"]).read_text())
    later = [r for r in saved[len(submit) :] if r["command"] == "submit"]
    assert later and not [r for r in later if r["path"].startswith("/_blob/") or r["method"] != "GET"]


def test_a_failed_maas_jobs_error_code_reaches_status_and_wait_exits_1(
    emulator, run_cli, make_spec, monkeypatch, tmp_path
):
    from azft.errors import EXIT_JOB_FAILED

    for k, v in emulator.env().items():  # the CLI resolves the workspace, endpoint and blob endpoint from these
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    make_spec()
    path = tmp_path / "demo.yaml"
    res = run_cli("submit", str(path), "--backend", "maas", "--output", "json")
    assert res.code == 0, res.text
    name = json.loads(res.out)["job_name"]
    # the training data went through the emulator's own Blob service (bearer token, content-addressed path)
    (data_blob,) = emulator.blob_store.list(emulator.blob_container, "azft/data/")
    assert data_blob[0].endswith("/demo-train.jsonl")
    emulator.script_job(name, "fail", "Running", "QuotaExceeded")
    emulator.advance(states=10)

    status = run_cli("status", name, "--backend", "maas", "--output", "json")
    assert status.code == 0, status.text
    info = json.loads(status.out)
    assert info["status"] == "Failed" and info["error_code"] == "QuotaExceeded"
    assert "quota" in info["error"].lower()
    # the code came from run history (the SDK's own read), not from a shortcut
    assert emulator.requests_to(r"^/history/v1\.0/.*/runs/" + name + "$")

    wait = run_cli("wait", name, "--backend", "maas", "--poll", "0.01", "--output", "json")
    assert wait.code == EXIT_JOB_FAILED, wait.text
    assert "QuotaExceeded" in wait.text

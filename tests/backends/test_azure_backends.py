"""maas and maap through the real azure-ai-ml MLClient, over HTTPS, against the Azure ML emulator (+ Azurite)."""

from __future__ import annotations

import re

import pytest
import yaml

from azft.backends.base import JobStatus


def rest_body(job) -> dict:
    """The JSON body the SDK PUTs for ``job``, from its own REST serializer (a private SDK method: tests only)."""
    import json

    from azft.azure.sdk import quiet

    with quiet():
        rest = job._to_rest_object()
    return json.loads(json.dumps(rest.serialize() if hasattr(rest, "serialize") else rest.as_dict(), default=str))


def comparable(body: dict) -> dict:
    """A job body without what the SDK adds at send time: the name (it is in the URL) and the git provenance
    properties (``mlflow.source.git.*``, ``azureml.git.*``) it reads from the working directory."""
    import copy

    b = copy.deepcopy(body)
    b.pop("name", None)
    props = b.get("properties", {}).get("properties") or {}
    for k in list(props):
        if k.startswith(("mlflow.source.git", "azureml.git")):
            del props[k]
    return b


# -- rendering ---------------------------------------------------------------------------------------------------


def test_maas_plan_renders_the_job_and_loads_back(make_spec, plan_for, tmp_path):
    from azure.ai.ml import load_job

    from azft.azure import jobs

    # Phi-4-mini-instruct has no published registry defaults: the batch size is azft's generic default (4)
    plan = plan_for(make_spec(hyperparameters={"epochs": 2, "learning_rate": 1e-5}), "maas")
    rendered = plan.request
    assert rendered["type"] == "finetuning" and rendered["task"] == "chatCompletion"
    assert rendered["hyperparameters"] == {
        "num_train_epochs": "2",
        "per_device_train_batch_size": "4",
        "learning_rate": "1e-05",
    }
    sha = plan.data_file("train").sha256
    assert rendered["training_data"]["path"] == (
        f"azureml://datastores/workspaceblobstore/paths/azft/data/{sha}/demo-train.jsonl"
    )
    assert rendered["outputs"]["registered_model"] == {"name": "demo-lora", "type": "mlflow_model"}
    out = tmp_path / "job.yml"
    out.write_text(yaml.safe_dump(rendered))
    loaded = load_job(str(out))
    assert rest_body(loaded) == rest_body(jobs.build_maas_job(plan))


@pytest.mark.parametrize("pipeline,method,stage", [("azft", "qlora", 3), ("registry", "full", 2)])
def test_maap_plan_renders_the_pipeline_and_loads_back(make_spec, plan_for, tmp_path, pipeline, method, stage):
    from azure.ai.ml import load_job

    spec = make_spec(
        model="phi-3-mini-4k-instruct",
        method=method,
        compute={
            "cluster": "gpu-a100",
            "instance_type": "Standard_NC48ads_A100_v4",
            "instance_count": 2,
            "pipeline": pipeline,
            "deepspeed": {"stage": stage},
        },
    )
    plan = plan_for(spec, "maap")
    rendered = plan.request
    assert rendered["type"] == "pipeline"
    assert rendered["settings"]["default_compute"].endswith("gpu-a100")
    inputs = rendered["inputs"]
    if pipeline == "azft":
        assert inputs["method"] == "qlora" and inputs["deepspeed_stage"] == 3
        assert inputs["instance_count"] == 2 and inputs["gpus_per_node"] == 2
        assert "validation_data" not in inputs  # no validation file: the optional input and its bindings go
        assert all("validation_data" not in (s.get("inputs") or {}) for s in rendered["jobs"].values())
        assert inputs["train_data"]["path"].startswith("azureml://datastores/workspaceblobstore/paths/azft/data/")
    else:
        assert inputs["apply_lora"] == "false" and inputs["deepspeed_stage"] == "2"
        assert inputs["num_nodes_finetune"] == 2 and inputs["number_of_gpu_to_use_finetuning"] == 2
    # the rendered pipeline names its components relative to pipelines/, so load it from a sibling folder
    from azft.azure.jobs import build_maap_job
    from azft.resources import components_dir

    (tmp_path / "components").symlink_to(components_dir())
    (tmp_path / "pipelines").mkdir()
    out = tmp_path / "pipelines" / "job.yml"
    out.write_text(yaml.safe_dump(rendered))
    loaded = load_job(str(out))
    assert loaded.type == "pipeline" and loaded.name == plan.job_name
    assert (
        comparable(rest_body(loaded))["properties"]["inputs"]
        == comparable(rest_body(build_maap_job(plan)))["properties"]["inputs"]
    )


# -- maas: submit, wait, resubmit ----------------------------------------------------------------------------------


def test_maas_submit_wait_completed_and_resubmit_finds_the_job(
    emulator, azure_backend, azurite_uploader, make_spec, plan_for
):
    from azft.azure import jobs

    uploader, container = azurite_uploader()
    backend = azure_backend("maas", uploader=uploader)
    plan = plan_for(make_spec(), "maas")
    job = backend.submit(plan)
    # the data landed in Azurite at its content-hash path
    d = plan.data_file("train")
    assert [b.name for b in container.list_blobs()] == [f"azft/data/{d.sha256}/demo-train.jsonl"]
    assert job.upload.bytes_uploaded == d.size
    # the body the emulator received is what the SDK's own _to_rest_object() produces for the same job
    (put,) = emulator.requests_to(r"/jobs/[^/]+$", "PUT")
    assert put.api_version == "2024-10-01-preview"
    assert comparable(put.body) == comparable(rest_body(jobs.build_maas_job(plan)))
    first = job.info()
    assert first.status == JobStatus.NOT_STARTED
    assert first.studio_url and plan.job_name in first.studio_url
    emulator.advance(states=10)
    info = job.wait(poll_interval=0)
    assert info.status == JobStatus.COMPLETED
    assert info.outputs["registered_model"] == "demo-lora"
    assert isinstance(job.metrics_history(), dict)  # real Azure: per-step curves need azureml-mlflow

    # a CI retry: the same spec finds the job, uploads nothing and sends no PUT
    n = len(emulator.requests)
    again = backend.submit(plan_for(make_spec(), "maas"))
    assert again.name == job.name and again.existed
    assert {r.method for r in emulator.requests[n:]} == {"GET"}
    assert not emulator.requests_to("/datastores", "GET")[1:]
    assert len(emulator.jobs) == 1
    # and an upload of the same file again moves zero bytes
    assert uploader.upload(plan.data, backend.default_datastore()).bytes_uploaded == 0

    # --force makes a new job deliberately
    forced = backend.submit(plan_for(make_spec(), "maas"), force=True)
    assert forced.name != job.name and forced.name.startswith(job.name)
    assert len(emulator.jobs) == 2


@pytest.mark.parametrize(
    "kind,status,code", [("fail", JobStatus.FAILED, "OutOfMemory"), ("cancel", JobStatus.CANCELED, None)]
)
def test_maas_failed_and_cancelled_jobs(emulator, azure_backend, make_spec, plan_for, kind, status, code):
    backend = azure_backend("maas")
    plan = plan_for(make_spec(), "maas")
    emulator.script_job(plan.job_name, kind, "Running", code)
    job = backend.submit(plan)
    emulator.advance(states=10)
    info = job.wait(poll_interval=0)
    assert info.status == status
    if kind == "fail":
        assert info.error  # a message, with the code when run history answers
        assert info.error_code in (None, "OutOfMemory")


def test_cancel_and_wait_timeout(emulator, azure_backend, make_spec, plan_for):
    from azft.errors import EXIT_CANCELLED, JobCancelledError

    backend = azure_backend("maas")
    job = backend.submit(plan_for(make_spec(), "maas"))
    with pytest.raises(JobCancelledError) as e:
        job.wait(timeout=0, poll_interval=0)
    assert e.value.exit_code == EXIT_CANCELLED and "azft wait" in e.value.hint
    job.cancel()
    emulator.advance(states=3)
    assert job.info().status == JobStatus.CANCELED


def test_region_and_marketplace_rules_before_any_upload(emulator, azure_backend, make_spec, plan_for, tmp_path):
    from azft.errors import IncompatibleError

    emulator.location = "swedencentral"
    try:
        with pytest.raises(IncompatibleError, match="swedencentral"):
            azure_backend("maas").submit(plan_for(make_spec(), "maas"))
    finally:
        emulator.location = "eastus2"
    assert not emulator.requests_to("/datastores") and not emulator.jobs
    assert not (tmp_path / "datastore").exists()
    # a first-party (Microsoft) model needs no marketplace subscription
    azure_backend("maas").submit(plan_for(make_spec(name="other"), "maas"))
    assert not emulator.requests_to("marketplaceSubscriptions")


def test_azure_errors_are_actionable(emulator, azure_backend, make_spec, plan_for):
    from azft.errors import EXIT_AZURE, AzureError

    emulator.inject(r"/jobs/", method="GET", status=403, times=1)
    with pytest.raises(AzureError) as e:
        azure_backend("maas").submit(plan_for(make_spec(), "maas"))
    assert e.value.exit_code == EXIT_AZURE
    assert "permission denied" in e.value.message and "role" in e.value.hint
    assert not emulator.jobs


# -- faults at every request of a submit ---------------------------------------------------------------------------


def _submit_requests(emulator, azure_backend, make_spec, plan_for):
    azure_backend("maas").submit(plan_for(make_spec(), "maas"))
    seq = [(r.method, r.path) for r in emulator.requests]
    emulator.reset()
    return seq


@pytest.mark.parametrize("fault", ["429", "503", "reset"])
def test_a_fault_at_any_request_of_a_submit_is_retried(
    emulator, azure_backend, azurite_uploader, make_spec, plan_for, fault
):
    seq = _submit_requests(emulator, azure_backend, make_spec, plan_for)
    assert [m for m, _ in seq] == ["GET", "GET", "GET", "PUT"]  # job exists?, workspace, datastore, job
    for method, path in seq:
        uploader, container = azurite_uploader()
        emulator.reset()
        kw = {"drop_connection": True} if fault == "reset" else {"status": int(fault)}
        if fault == "429":
            kw["retry_after"] = 0.01
        emulator.inject(re.escape(path) + "$", method=method, times=1, **kw)
        plan = plan_for(make_spec(), "maas")
        job = azure_backend("maas", uploader=uploader).submit(plan)
        assert [f.hits for f in emulator.faults] == [1], (method, path)
        assert list(emulator.jobs) == [job.name]
        assert job.upload.bytes_uploaded == plan.data_file("train").size  # uploaded exactly once
        assert len(list(container.list_blobs())) == 1


# -- maap ----------------------------------------------------------------------------------------------------------


def test_maap_creates_the_cluster_with_min_zero_nodes_and_checks_its_size(emulator, azure_backend, make_spec, plan_for):
    from azft.errors import IncompatibleError, UsageError

    spec = make_spec(
        model="phi-3-mini-4k-instruct",
        compute={
            "cluster": "gpu-a100",
            "instance_type": "Standard_NC24ads_A100_v4",
            "instance_count": 2,
            "create_cluster": True,
        },
    )
    backend = azure_backend("maap")
    plan = plan_for(spec, "maap")
    backend.prepare(plan)
    body = emulator.computes["gpu-a100"]["properties"]
    assert body["computeType"] == "AmlCompute"
    scale = body["properties"]["scaleSettings"]
    assert scale["minNodeCount"] == 0 and scale["maxNodeCount"] == 2
    assert body["properties"]["vmSize"] == "Standard_NC24ads_A100_v4"

    emulator.add_compute("small", vm_size="Standard_NC6s_v3", max_nodes=4)
    # Azure's registry pipeline runs only on the model's registry compute list
    wrong = plan_for(
        make_spec(
            name="wrong",
            model="phi-3-mini-4k-instruct",
            compute={"cluster": "small", "pipeline": "registry", "deepspeed": {"stage": 2}},
        ),
        "maap",
    )
    with pytest.raises(IncompatibleError, match="compute list"):
        backend.submit(wrong)
    # azft's component runs on any GPU whose memory holds the plan's estimate: a 16 GB V100 does not hold a full
    # fine-tune of a 14B model
    big = plan_for(
        make_spec(name="big", model="phi-3-medium-4k-instruct", method="full", compute={"cluster": "small"}), "maap"
    )
    with pytest.raises(IncompatibleError, match="does not fit") as e:
        backend.submit(big)
    assert "Standard_NC6s_v3: 16 GB per GPU" in e.value.message and "estimated" in e.value.message
    assert "qlora" in e.value.hint or "cluster of" in e.value.hint
    missing = plan_for(make_spec(name="missing", model="phi-3-mini-4k-instruct", compute={"cluster": "nope"}), "maap")
    with pytest.raises(UsageError, match="does not exist") as e:
        backend.submit(missing)
    assert "create_cluster" in e.value.hint
    assert not emulator.jobs


def test_a_refused_put_through_the_backend_names_code_hint_and_request_id(emulator, azure_backend, make_spec, plan_for):
    from azft.azure.errors import HINTS
    from azft.errors import EXIT_AZURE, AzureError

    emulator.inject(r"/jobs/", method="PUT", status=400, error_code="ModelNotSupportedByMaaS")
    with pytest.raises(AzureError) as e:
        azure_backend("maas").submit(plan_for(make_spec(), "maas"))
    assert e.value.exit_code == EXIT_AZURE
    assert "ModelNotSupportedByMaaS" in e.value.message and "request id " in e.value.message
    assert e.value.hint == HINTS["ModelNotSupportedByMaaS"]
    assert not emulator.jobs

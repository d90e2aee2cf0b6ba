"""The real azure-ai-ml MLClient, over HTTPS, against the emulator: what azft's backends rely on."""

from __future__ import annotations

import json

import pytest
from azure.ai.ml import Input, Output, command, dsl
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AmlCompute,
    CommandComponent,
    CustomModelFineTuningJob,
    MarketplaceSubscription,
    ServerlessEndpoint,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

ENV = "azureml:AzureML-sklearn-1.0@latest"
TRAIN = "azureml://datastores/workspaceblobstore/paths/azft/data/abc/train.jsonl"
VALID = "azureml://datastores/workspaceblobstore/paths/azft/data/def/valid.jsonl"


def wire(rest_obj) -> dict:
    """Serialize a REST model exactly as the SDK's generated client does before sending it."""
    if hasattr(rest_obj, "serialize"):
        return rest_obj.serialize()
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import SdkJSONEncoder

    return json.loads(json.dumps(rest_obj, cls=SdkJSONEncoder, exclude_readonly=True))


def command_job(name: str):
    """A command job the way azft builds one (the ``command()`` builder; ``jobs.create_or_update`` turns it into a
    ``CommandJob`` with ``_to_job()``)."""
    return command(
        name=name,
        display_name=name,
        experiment_name="azft-tests",
        command="python train.py",
        environment=ENV,
        compute="gpu",
        inputs={"train": Input(type="uri_file", path=TRAIN)},
    )


def finetune_job(name: str) -> CustomModelFineTuningJob:
    return CustomModelFineTuningJob(
        name=name,
        display_name=name,
        experiment_name="azft-tests",
        task="chatCompletion",
        model=Input(
            type=AssetTypes.MLFLOW_MODEL, path="azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
        ),
        training_data=Input(type=AssetTypes.URI_FILE, path=TRAIN),
        validation_data=Input(type=AssetTypes.URI_FILE, path=VALID),
        hyperparameters={"num_train_epochs": "1", "learning_rate": "0.0002"},
        outputs={"registered_model": Output(type="mlflow_model", name="phi4-mini-azft")},
    )


def test_workspace_get_returns_region_storage_and_discovery(emulator, ml_client):
    ws = ml_client.workspaces.get(emulator.workspace_name)
    assert ws.location == "eastus2"
    assert ws.discovery_url == f"{emulator.base_url}/discovery"
    assert ws.storage_account.endswith("/storageAccounts/azftstorage")
    (req,) = emulator.requests
    assert (req.method, req.api_version, req.status) == ("GET", "2024-10-01-preview", 200)
    assert "Authorization" not in req.headers and "authorization" not in {k.lower() for k in req.headers}


def test_default_datastore_points_at_a_blob_container(emulator, ml_client):
    ds = ml_client.datastores.get_default()
    assert ds.name == "workspaceblobstore"
    assert ds.account_name == emulator.storage_account
    assert ds.container_name == emulator.blob_container


def test_command_job_put_body_is_what_the_sdk_serializes(emulator, ml_client):
    job = command_job("cmd-1")
    created = ml_client.jobs.create_or_update(job)
    assert created.name == "cmd-1" and created.status == "NotStarted"
    put = emulator.requests_to(r"/jobs/cmd-1$", "PUT")[0]
    assert put.api_version == "2025-01-01-preview"
    assert put.body == wire(job._to_job()._to_rest_object())
    assert ml_client.jobs.get("cmd-1").status == "NotStarted"


def test_finetuning_job_put_and_get(emulator, ml_client):
    job = finetune_job("ft-1")
    created = ml_client.jobs.create_or_update(job)
    assert isinstance(created, CustomModelFineTuningJob)
    put = emulator.requests_to(r"/jobs/ft-1$", "PUT")[0]
    assert put.api_version == "2024-10-01-preview"
    assert put.body == wire(job._to_rest_object())
    assert put.body["properties"]["jobType"] == "FineTuning"
    got = ml_client.jobs.get("ft-1")
    assert isinstance(got, CustomModelFineTuningJob) and got.task == "chatCompletion"
    assert emulator.jobs["ft-1"].body == put.body


def test_resubmitting_a_different_job_under_the_same_name_conflicts(emulator, ml_client):
    ml_client.jobs.create_or_update(command_job("dup"))
    ml_client.jobs.create_or_update(command_job("dup"))  # identical: idempotent
    other = command_job("dup")
    other.command = "python other.py"
    with pytest.raises(Exception) as e:
        ml_client.jobs.create_or_update(other)
    assert "already exists" in str(e.value)


def test_pipeline_job_with_anonymous_components(emulator, ml_client):
    emulator.add_compute("gpu")
    prep = CommandComponent(
        name="prep",
        version="1",
        command="echo ${{inputs.x}}",
        environment=ENV,
        inputs={"x": Input(type="uri_file")},
        outputs={"o": Output(type="uri_folder")},
    )
    train = CommandComponent(
        name="train", version="1", command="echo ${{inputs.y}}", environment=ENV, inputs={"y": Input(type="uri_folder")}
    )

    @dsl.pipeline(compute="gpu", name="azft-pipeline")
    def pipeline(x):
        a = prep(x=x)
        train(y=a.outputs.o)

    pj = pipeline(x=Input(type="uri_file", path=TRAIN))
    pj.name = "pipe-1"
    created = ml_client.jobs.create_or_update(pj)
    assert created.name == "pipe-1"
    comps = emulator.requests_to(r"/components/azureml_anonymous/versions/", "PUT")
    assert len(comps) == 2 and {c.api_version for c in comps} == {"2024-01-01-preview"}
    put = emulator.requests_to(r"/jobs/pipe-1$", "PUT")[0]
    assert put.api_version == "2024-01-01-preview"
    assert put.headers.get("x-azureml-token") == "[redacted]"  # present, but the token is never recorded
    ids = {c.path.split("/workspaces/ws-azft")[1] for c in comps}
    used = {j["componentId"].split("/workspaces/ws-azft")[1] for j in put.body["properties"]["jobs"].values()}
    assert used == ids
    assert not emulator.unmatched


def test_job_list_follows_next_link_pages(emulator, ml_client):
    emulator.page_size = 2
    for i in range(5):
        ml_client.jobs.create_or_update(command_job(f"list-{i}"))
    names = [j.name for j in ml_client.jobs.list()]
    assert sorted(names) == [f"list-{i}" for i in range(5)]
    pages = emulator.requests_to(r"/jobs$", "GET")
    assert len(pages) == 3
    assert pages[0].query["listViewType"] == "ActiveOnly" and "$skipToken" in pages[1].query


def test_lifecycle_to_completed_with_metrics_and_logs(emulator, ml_client):
    ml_client.jobs.create_or_update(finetune_job("life-ok"))
    seen = []
    for _ in range(8):
        status = ml_client.jobs.get("life-ok").status
        seen.append(getattr(status, "value", status))
        emulator.advance(1.0)
    assert seen[:6] == ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"]
    loss = [v for _, v in emulator.metrics("life-ok")["loss"]]
    assert len(loss) == emulator.total_steps
    assert loss[-1] < loss[0] / 2  # a decaying curve
    assert any(line.endswith("status: Completed") for line in emulator.logs("life-ok"))


def test_scripted_failure_reports_code_and_message(emulator, ml_client):
    emulator.script_job("life-quota", kind="fail", at="Queued", error_code="QuotaExceeded")
    ml_client.jobs.create_or_update(command_job("life-quota"))
    emulator.advance(states=5)
    assert ml_client.jobs.get("life-quota").status == "Failed"
    err = emulator.job_error("life-quota")
    assert err["code"] == "QuotaExceeded" and "quota" in err["message"].lower()
    assert emulator.metrics("life-quota")["loss"] == []  # it never ran


def test_next_job_outcome_and_out_of_memory_midway(emulator, ml_client):
    emulator.script_job(kind="fail", at="Running", error_code="OutOfMemory", message="CUDA out of memory")
    ml_client.jobs.create_or_update(command_job("oom"))
    emulator.advance(3.25)  # a quarter into Running; the job fails halfway (Outcome.after=0.5)
    partial = len(emulator.metrics("oom")["loss"])
    assert 0 < partial < emulator.total_steps
    emulator.advance(5)
    assert ml_client.jobs.get("oom").status == "Failed"
    final = len(emulator.metrics("oom")["loss"])
    assert partial < final < emulator.total_steps  # steps stop where the job died
    emulator.advance(5)
    assert len(emulator.metrics("oom")["loss"]) == final
    assert any("OutOfMemory" in line for line in emulator.logs("oom"))


def test_cancel_is_an_lro_polled_to_canceled(emulator, ml_client):
    ml_client.jobs.create_or_update(command_job("to-cancel"))
    emulator.advance(3)
    assert ml_client.jobs.get("to-cancel").status == "Running"
    ml_client.jobs.begin_cancel("to-cancel").result()
    cancel = emulator.requests_to(r"/jobs/to-cancel/cancel$", "POST")[0]
    assert (cancel.status, cancel.api_version) == (202, "2023-04-01-preview")
    assert emulator.requests_to(r"/mfeOperationResults/", "GET")[-1].status == 200
    assert ml_client.jobs.get("to-cancel").status == "CancelRequested"
    emulator.advance(1)
    assert ml_client.jobs.get("to-cancel").status == "Canceled"


def test_scripted_cancel(emulator, ml_client):
    emulator.script_job("sc", kind="cancel", at="Preparing")
    ml_client.jobs.create_or_update(command_job("sc"))
    emulator.advance(states=6)
    assert ml_client.jobs.get("sc").status == "Canceled"


def test_computes_marketplace_and_serverless(emulator, ml_client):
    c = ml_client.compute.begin_create_or_update(
        AmlCompute(name="a100", size="Standard_NC24ads_A100_v4", max_instances=2)
    ).result()
    assert c.provisioning_state == "Succeeded" and c.size == "Standard_NC24ads_A100_v4"
    assert emulator.requests_to(r"/mfeOperationsStatus/", "GET")  # the poller followed Azure-AsyncOperation
    assert [x.name for x in ml_client.compute.list()] == ["a100"]
    assert ml_client.compute.get("a100").max_instances == 2

    sub = ml_client.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name="llama", model_id="azureml://registries/azureml-meta/models/Llama-2-7b")
    ).result()
    assert sub.status == "subscribed"
    assert ml_client.marketplace_subscriptions.get("llama").provisioning_state == "succeeded"

    ep = ml_client.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="phi4-ep", model_id="azureml://registries/azureml/models/Phi-4")
    ).result()
    # the inference URL is the emulator's own (it answers chat completions: tests/emulator/test_endpoints.py)
    assert ep.provisioning_state == "succeeded" and ep.scoring_uri.startswith(emulator.base_url)
    assert ep.scoring_uri.endswith("/serverless/phi4-ep")
    assert ml_client.serverless_endpoints.get("phi4-ep").name == "phi4-ep"
    assert not emulator.unmatched


def test_missing_job_is_resource_not_found(emulator, ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.jobs.get("nope")


def test_unknown_route_is_an_azure_shaped_404_and_recorded(emulator, ml_client):
    with pytest.raises(HttpResponseError) as e:
        ml_client.batch_endpoints.get("batch-endpoint")
    assert e.value.status_code == 404
    gaps = emulator.unmatched
    assert gaps and gaps[0].path.endswith("/batchEndpoints/batch-endpoint")


def test_environment_label_latest_resolves_to_the_newest_version(emulator, ml_client):
    emulator.add_asset("environments", "azft-train", "1", {"image": "mcr.microsoft.com/azureml/curated/acft:1"})
    emulator.add_asset("environments", "azft-train", "2", {"image": "mcr.microsoft.com/azureml/curated/acft:2"})
    job = command(name="env-latest", command="python train.py", environment="azft-train@latest", compute="gpu")
    ml_client.jobs.create_or_update(job)
    put = emulator.requests_to(r"/jobs/env-latest$", "PUT")[0]
    assert put.body["properties"]["environmentId"].endswith("/environments/azft-train/versions/2")

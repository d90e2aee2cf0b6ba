"""Serverless endpoints (maas) and managed online endpoints (maap) through azure-ai-ml's ``MLClient``, on Azure or
on the mock backend's emulated workspace: create (with the azft tags that carry the deadline), keys, delete, list.

azure-ai-ml is imported inside functions only. Every SDK call goes through ``azft.azure.errors.call`` (one error
mapping, secrets scrubbed).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from azft.azure.errors import call, is_not_found, map_error
from azft.azure.sdk import quiet as quiet_sdk
from azft.errors import UsageError

DEPLOYMENT_NAME = "azft"


@contextlib.contextmanager
def workspace_client(backend: str, options: dict[str, Any]) -> Iterator[Any]:
    """The ``MLClient`` of the workspace a job's backend uses (the mock: inside one session of its saved
    workspace, so what is created here is there for the next command)."""
    from azft.backends.base import get_backend

    b: Any = get_backend(backend, **options)
    if backend == "mock":
        try:
            with b.workspace.session():
                yield b.inner(options.get("target") or "maas").ml_client
        finally:
            b.close()
        return
    yield b.ml_client


@dataclass
class JobModel:
    name: str
    version: str
    asset_id: str  # the id an endpoint/deployment refers to
    base: str  # the catalog id the job fine-tuned (its azft.model tag)
    target: str  # maas | maap


def job_model(ml: Any, job: str) -> JobModel:
    """The model a finished Azure job registered, found the way the job names it."""
    with quiet_sdk():
        entity = call(f"reading job {job}", ml.jobs.get, job)
    raw = getattr(entity, "status", None)
    status = str(getattr(raw, "value", raw) or "")
    if "." in status:  # an enum's str()
        status = status.rsplit(".", 1)[-1].title()
    if status.upper() == "COMPLETED":
        status = "Completed"
    if status != "Completed":
        raise UsageError(
            f"job {job!r} is {status or 'not finished'}, not Completed: there is no model to deploy yet",
            hint=f"`azft wait {job}` and try again",
        )
    tags = dict(getattr(entity, "tags", None) or {})
    name = None
    out = (getattr(entity, "outputs", None) or {}).get("registered_model")
    if out is not None:
        name = getattr(out, "name", None)
    for key in ("model_name", "registered_model_name"):  # azft's pipeline: what its register step registers
        if name:
            break
        inp = (getattr(entity, "inputs", None) or {}).get(key)
        name = inp if isinstance(inp, str) else (getattr(inp, "_data", None) or getattr(inp, "value", None))
    if not name:
        raise UsageError(f"job {job!r} names no registered model (no registered_model output, no model_name input)")
    with quiet_sdk():
        try:
            model = ml.models.get(str(name), label="latest")
        except Exception as e:
            if is_not_found(e):
                raise UsageError(
                    f"job {job!r} completed but its model {name!r} is not registered in the workspace",
                    hint="Azure registers it when the job's last step ends; retry in a minute",
                ) from None
            raise
    return JobModel(
        name=str(name),
        version=str(model.version),
        asset_id=str(model.id),
        base=tags.get("azft.model", ""),
        target=tags.get("azft.target", "maas"),
    )


def serverless_model_id(ml: Any, model: JobModel) -> str:
    """The id a serverless endpoint takes for a workspace's fine-tuned model:
    ``azureml://locations/{region}/workspaces/{workspace guid}/models/{name}/versions/{version}``, the form the
    serverless fine-tuning guide deploys with (MicrosoftDocs/azure-ai-docs ``articles/ai-foundry/how-to/
    fine-tune-serverless.md``, "Deploy the model as a serverless endpoint")."""
    with quiet_sdk():
        ws = call("reading the workspace", ml.workspaces.get, ml.workspace_name)
    guid = getattr(ws, "_workspace_id", None)
    if not guid or not getattr(ws, "location", None):
        return model.asset_id
    return f"azureml://locations/{ws.location}/workspaces/{guid}/models/{model.name}/versions/{model.version}"


def create_serverless(ml: Any, name: str, model: JobModel, tags: dict[str, str]) -> str:
    from azure.ai.ml.entities import ServerlessEndpoint

    model_id = serverless_model_id(ml, model)
    with quiet_sdk():
        ep = ServerlessEndpoint(name=name, model_id=model_id, tags=tags)
        made = call(
            f"creating serverless endpoint {name}", lambda: ml.serverless_endpoints.begin_create_or_update(ep).result()
        )
    return str(made.scoring_uri).rstrip("/") + "/v1/chat/completions"


def create_online(ml: Any, name: str, model: JobModel, instance_type: str, tags: dict[str, str]) -> str:
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    # azure-ai-ml prints progress dots on stdout while a deployment is created: they go to stderr, so stdout stays
    # the command's output (``--output json``)
    with quiet_sdk(), contextlib.redirect_stdout(sys.stderr):
        endpoint = ManagedOnlineEndpoint(
            name=name, auth_mode="key", tags=tags, description=f"azft: fine-tuned {model.base or model.name}"
        )
        made = call(
            f"creating online endpoint {name}", lambda: ml.online_endpoints.begin_create_or_update(endpoint).result()
        )
        dep = ManagedOnlineDeployment(
            name=DEPLOYMENT_NAME,
            endpoint_name=name,
            model=f"azureml:{model.name}:{model.version}",
            instance_type=instance_type,
            instance_count=1,
            tags=tags,
        )
        try:
            call(
                f"creating deployment {DEPLOYMENT_NAME} of {name} on {instance_type}",
                lambda: ml.online_deployments.begin_create_or_update(dep).result(),
            )
        except BaseException:
            delete(ml, "online", name)  # no endpoint left billing for a deployment that never came up
            raise
        made.traffic = {DEPLOYMENT_NAME: 100}
        call(f"routing traffic of {name}", lambda: ml.online_endpoints.begin_create_or_update(made).result())
    return str(made.scoring_uri)


def endpoint_key(ml: Any, kind: str, name: str) -> str:
    with quiet_sdk():
        ops = ml.serverless_endpoints if kind == "serverless" else ml.online_endpoints
        keys = call(f"reading the keys of {name}", ops.get_keys, name)
    return str(keys.primary_key)


def scoring_url(ml: Any, kind: str, name: str) -> str:
    """The endpoint's current URL (read again: the mock workspace's port changes between commands)."""
    with quiet_sdk():
        if kind == "serverless":
            ep = call(f"reading serverless endpoint {name}", ml.serverless_endpoints.get, name)
            return str(ep.scoring_uri).rstrip("/") + "/v1/chat/completions"
        ep = call(f"reading online endpoint {name}", ml.online_endpoints.get, name)
        return str(ep.scoring_uri)


def delete(ml: Any, kind: str, name: str) -> bool:
    """Delete an endpoint (an online endpoint's deployments go with it); False when it was already gone."""
    with quiet_sdk():
        ops = ml.serverless_endpoints if kind == "serverless" else ml.online_endpoints
        try:
            ops.begin_delete(name).result()
        except Exception as e:
            if is_not_found(e):
                return False
            raise map_error(e, f"deleting endpoint {name}") from None
    return True


def tagged_endpoints(ml: Any) -> list[dict[str, Any]]:
    """The workspace's endpoints azft made (an ``azft.job`` tag), serverless and online, with their tags."""
    out = []
    with quiet_sdk():
        for kind, ops in (("serverless", ml.serverless_endpoints), ("online", ml.online_endpoints)):
            for ep in call(f"listing {kind} endpoints", lambda o=ops: list(o.list())):
                tags = dict(getattr(ep, "tags", None) or {})
                if "azft.job" in tags:
                    out.append({"name": ep.name, "kind": kind, "tags": tags})
    return out

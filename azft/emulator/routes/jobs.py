"""Jobs: create (idempotent PUT, 409 on a different body), read, list with paging, cancel as an LRO, and the run
history the SDK and azft read a job's error, logs and metrics from."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azft.emulator.lifecycle import TERMINAL, EmulatedJob, Outcome
from azft.emulator.routes.base import WS, Route
from azft.emulator.wire import PROVIDER, HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

_JOB = WS + r"/jobs/(?P<name>[^/]+)"
_TYPE = "workspaces/jobs"


def comparable(body: dict) -> dict:
    """A job body without the fields a re-submission may change (tags, description, display name)."""
    b = json.loads(json.dumps(body))
    props = b.get("properties", {})
    for k in ("tags", "description", "displayName"):
        props.pop(k, None)
    return b


def find(emu: Emulator, name: str) -> EmulatedJob:
    job = emu.jobs.get(name)
    if job is None:
        raise HttpError(404, "UserError", f"Job '{name}' was not found in workspace {emu.workspace_name}.")
    return job


def job_resource(emu: Emulator, job: EmulatedJob) -> dict[str, Any]:
    """The job as Azure returns it: the body sent, plus id, type, systemData, status and services."""
    out = json.loads(json.dumps(job.body))
    out["id"] = emu.store.arm_id("jobs", job.name)
    out["name"] = job.name
    out["type"] = f"{PROVIDER}/workspaces/jobs"
    created = datetime.fromtimestamp(job.created_wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out.setdefault("systemData", {}).update(
        {"createdAt": created, "createdBy": "azft emulator", "createdByType": "User"}
    )
    props = out.setdefault("properties", {})
    props["status"] = job.status(emu.clock.now())
    if props["status"] == "Completed":
        register_outputs(emu, job)
    props.setdefault("experimentName", "Default")
    if props.get("jobType") in ("Command", "Pipeline", "Sweep", "FineTuning"):
        props["services"] = {
            "Studio": {
                "jobServiceType": "Studio",
                "endpoint": f"https://ml.azure.com/runs/{job.name}?wsid={quote(emu.workspace_id)}",
            },
            "Tracking": {
                "jobServiceType": "Tracking",
                "endpoint": f"azureml://{emu.location}.api.azureml.ms/mlflow/v1.0{emu.workspace_id}",
            },
        }
    return out


def output_models(body: dict) -> list[str]:
    """The model names a job registers when it completes: a fine-tuning job's ``mlflow_model``/``custom_model``
    outputs with an ``assetName``; a pipeline's ``model_name`` (or ``registered_model_name``) input, which azft's
    ``register_model`` step registers."""
    props = body.get("properties") or {}
    names = [
        o.get("assetName")
        for o in (props.get("outputs") or {}).values()
        if isinstance(o, dict) and o.get("jobOutputType") in ("mlflow_model", "custom_model")
    ]
    if props.get("jobType") == "Pipeline":
        for key in ("model_name", "registered_model_name"):
            literal = (props.get("inputs") or {}).get(key)
            if isinstance(literal, dict) and literal.get("value"):
                names.append(literal["value"])
                break
    return [str(n) for n in names if n]


def register_outputs(emu: Emulator, job: EmulatedJob) -> None:
    """A completed job's models, registered as Azure registers them (version 1, the job named in ``jobName``)."""
    for name in output_models(job.body):
        if not any(n == name for n, _ in emu.store.assets["models"]):
            emu.store.put_version(
                "models",
                name,
                "1",
                {
                    "properties": {
                        "modelType": "mlflow_model",
                        "jobName": job.name,
                        "tags": {},
                        "properties": {},
                        "flavors": {},
                        "modelUri": f"azureml://jobs/{job.name}/outputs/registered_model",
                    }
                },
            )


def mark_managed(body: dict) -> None:
    """A fine-tuning job on the customer's compute (a ``computeId`` or instance types) is one Azure marks
    ``_fineTuningJobType: MaaP`` in its properties (Azure/azure-sdk-assets, recordings
    ``finetuning_job/e2e_tests/test_maap_finetuning_job.py*``, 201 of the PUT)."""
    props = body.get("properties") or {}
    if props.get("jobType") != "FineTuning":
        return
    if props.get("computeId") or ((props.get("resources") or {}).get("instanceTypes")):
        props["properties"] = {**(props.get("properties") or {}), "_fineTuningJobType": "MaaP"}


_JOB_OUTPUT = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)")


def _bad(target: str, message: str) -> HttpError:
    return HttpError(
        400, "UserError", message, details=[{"code": "InvalidPipelineStep", "target": target, "message": message}]
    )


def check_steps(emu: Emulator, body: dict) -> None:
    """A pipeline's steps against the workspace components they name: the component exists, every input the step sets is
    one the component declares, every required input (not optional, no default) is set. A step input naming
    another job's output (``azureml://jobs/<job>/outputs/<output>``) names a job of this workspace and one of its
    outputs: a guess, labelled as one, that Azure refuses at submission what could only fail when the step runs."""
    for step_name, step in ((body.get("properties") or {}).get("jobs") or {}).items():
        if not isinstance(step, dict) or not str(step.get("componentId") or "").startswith("/subscriptions/"):
            continue  # a registry component (azureml://registries/...) is not this workspace's to check
        target = f"properties.jobs.{step_name}"
        ref = str(step["componentId"]).split("/components/")[-1].split("/versions/")
        found = emu.store.assets["components"].get((ref[0], ref[1])) if len(ref) == 2 else None
        if found is None:
            raise _bad(target + ".componentId", f"Component {step['componentId']} was not found.")
        declared = ((found.get("properties") or {}).get("componentSpec") or {}).get("inputs") or {}
        given = step.get("inputs") or {}
        for name, value in given.items():
            if name not in declared:
                raise _bad(f"{target}.inputs.{name}", f"'{name}' is not an input of the step's component.")
            uri = value.get("uri") if isinstance(value, dict) else None
            hit = _JOB_OUTPUT.match(str(uri or ""))
            if hit:
                other = emu.jobs.get(hit["job"])
                outputs = ((other.body.get("properties") or {}).get("outputs") or {}) if other else {}
                if other is None or hit["output"] not in outputs:
                    raise _bad(
                        f"{target}.inputs.{name}",
                        f"{uri}: job '{hit['job']}' "
                        + ("was not found." if other is None else f"has no output '{hit['output']}'."),
                    )
        for name, spec in declared.items():
            if isinstance(spec, dict) and not spec.get("optional") and "default" not in spec and name not in given:
                raise _bad(f"{target}.inputs.{name}", f"Required input '{name}' of the step's component is not set.")


def put_job(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    name, body = m["name"], rec.body
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise HttpError(400, "UserError", "The request body must be a JSON object with 'properties'.")
    if not body["properties"].get("jobType"):
        raise HttpError(400, "UserError", "properties.jobType is required.")
    body = json.loads(json.dumps(body))
    mark_managed(body)
    if body["properties"].get("jobType") == "Pipeline":
        check_steps(emu, body)
    existing = emu.jobs.get(name)
    if existing is not None:
        if comparable(existing.body) != comparable(body):
            raise HttpError(
                409,
                "UserError",
                f"A job named '{name}' already exists with different properties; "
                "job names are unique within a workspace.",
            )
        existing.body.setdefault("properties", {})["tags"] = body["properties"].get("tags", {})
        return Response(200, job_resource(emu, existing))
    outcome = emu._named_outcomes.pop(name, None) or (
        emu._pending_outcomes.pop(0) if emu._pending_outcomes else Outcome()
    )
    job = EmulatedJob(
        name=name,
        body=body,
        created_at=emu.clock.now(),
        created_wall=time.time(),
        outcome=outcome,
        state_seconds=dict(emu.state_seconds),
        total_steps=emu.total_steps,
        api_version=rec.api_version,
    )
    emu.jobs[name] = job
    return Response(201, job_resource(emu, job))


def get_job(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, job_resource(emu, find(emu, m["name"])))


def list_jobs(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    jobs = sorted(emu.jobs.values(), key=lambda j: j.created_wall, reverse=True)
    items = [job_resource(emu, j) for j in jobs]
    job_type = rec.query.get("jobType")
    if job_type:
        items = [i for i in items if i["properties"].get("jobType", "").lower() == job_type.lower()]
    return emu.store.page(rec, items)


def cancel_job(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    job = find(emu, m["name"])
    if job.status(emu.clock.now()) in TERMINAL:
        return Response(200, None)
    if job.cancel_requested_at is None:
        job.cancel_requested_at = emu.clock.now()
    op = emu.store.new_operation()
    headers = emu.store.op_headers(op, rec.api_version or "2023-04-01-preview", location=True)
    headers.pop("Azure-AsyncOperation")
    return Response(202, None, headers)


ROUTES = [
    Route("PUT", _JOB + r"$", "jobs.put", put_job, resource_type=_TYPE, body="JobBase"),
    Route("GET", _JOB + r"$", "jobs.get", get_job, resource_type=_TYPE),
    Route("GET", WS + r"/jobs$", "jobs.list", list_jobs, resource_type=_TYPE),
    Route("POST", _JOB + r"/cancel$", "jobs.cancel", cancel_job, resource_type=_TYPE),
]

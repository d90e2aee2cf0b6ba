"""Run history and run metrics (the data-plane services ``discoveryUrl`` points at), as Azure serves them.

- ``GET /history/v1.0/{ws}/runs/{run}``: the run, with ``error`` (an ``ErrorResponse``) once it failed.
- ``GET /history/v1.0/{ws}/runs/{run}/details``: ``logFiles``, each a read-only SAS URL to a blob under
  ``ExperimentRun/dcid.<run>/`` in the workspace's storage (here the emulator's own Blob service).
- ``POST /metric/v2.0/{ws}/runs/{run}/list``: the metric definitions (``metricKey.name``, ``columns``).
- ``POST /metric/v2.0/{ws}/runs/{run}/full`` with ``{"metricName"}``: every value, one per step, as ``MetricV2``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from azft.emulator.routes.base import WS, Route
from azft.emulator.wire import HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

_RUN = r"^/history/v1\.0" + WS[1:] + r"/runs/(?P<name>[^/]+)"
_METRIC = r"^/metric/v2\.0" + WS[1:] + r"/runs/(?P<name>[^/]+)"
LOG_CONTAINER = "azureml"
STD_LOG = "user_logs/std_log.txt"


def _job(emu: Emulator, name: str):
    job = emu.jobs.get(name)
    if job is None:
        raise HttpError(404, "UserError", f"Run '{name}' was not found.")
    return job


def get_run(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    job = _job(emu, m["name"])
    now = emu.clock.now()
    body: dict[str, Any] = {
        "runId": job.name,
        "status": job.status(now),
        "runType": "azureml.emulator",
        "properties": {},
        "tags": {},
    }
    err = job.error(now)
    if err:
        body["error"] = {"error": {"code": err["code"], "message": err["message"]}}
    return Response(200, body)


def get_details(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    """The run's log files: what the job has logged so far, written to storage and handed out by SAS URL."""
    job = _job(emu, m["name"])
    now = emu.clock.now()
    log_files: dict[str, str] = {}
    lines = job.logs(now)
    if job.steps_done(now) or job.status(now) in ("Running", "Finalizing", "Completed", "Failed", "Canceled"):
        blob = f"ExperimentRun/dcid.{job.name}/{STD_LOG}"
        emu.blob_store.create_container(LOG_CONTAINER, exist_ok=True)
        emu.blob_store.put(LOG_CONTAINER, blob, ("\n".join(lines) + "\n").encode())
        container_url = emu.blob_service.container_url(emu.base_url, LOG_CONTAINER)
        token = emu.blob_service.signer.token(LOG_CONTAINER, "r")
        log_files[STD_LOG] = f"{container_url}/{blob}?{token}"
    return Response(
        200, {"runId": job.name, "status": job.status(now), "logFiles": log_files, "properties": {}, "tags": {}}
    )


def list_metrics(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    job = _job(emu, m["name"])
    metrics = job.metrics(emu.clock.now())
    return Response(
        200,
        {
            "value": [
                {"metricKey": {"namespace": "", "name": k, "labels": [], "columnNames": [k]}, "columns": {k: "Double"}}
                for k, v in metrics.items()
                if v
            ]
        },
    )


def full_metric(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    job = _job(emu, m["name"])
    body = rec.body if isinstance(rec.body, dict) else {}
    name = body.get("metricName")
    if not name:
        raise HttpError(400, "UserError", "metricName is required.")
    points = job.metrics(emu.clock.now()).get(name)
    if points is None:
        raise HttpError(404, "UserError", f"Metric '{name}' was not found for run '{job.name}'.")
    created = datetime.fromtimestamp(job.created_wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Response(
        200,
        {
            "name": name,
            "columns": {name: "Double"},
            "namespace": "",
            "value": [
                {
                    "metricId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{job.name}/{name}/{s}")),
                    "createdUtc": created,
                    "step": s,
                    "data": {name: v},
                }
                for s, v in points
            ],
        },
    )


ROUTES = [
    Route("GET", _RUN + r"$", "history.run", get_run, auth="token"),
    Route("GET", _RUN + r"/details$", "history.details", get_details, auth="token"),
    Route("POST", _METRIC + r"/list$", "metrics.list", list_metrics, auth="token"),
    Route("POST", _METRIC + r"/full$", "metrics.full", full_metric, auth="token"),
]

"""Run history (the data-plane service ``discoveryUrl`` points at): a job's run with its error."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azft.emulator.routes import WS, Route
from azft.emulator.wire import HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

_RUNS = r"^/history/v1\.0" + WS[1:] + r"/runs/(?P<name>[^/]+)"


def _job(emu: Emulator, name: str):
    job = emu.jobs.get(name)
    if job is None:
        raise HttpError(404, "UserError", f"Run '{name}' was not found.")
    return job


def get_run(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    job = _job(emu, m["name"])
    now = emu.clock.now()
    body: dict[str, Any] = {"runId": job.name, "status": job.status(now), "runType": "azureml.emulator",
                            "properties": {}, "tags": {}}
    err = job.error(now)
    if err:
        body["error"] = {"error": {"code": err["code"], "message": err["message"]}}
    return Response(200, body)


ROUTES = [
    Route("GET", _RUNS + r"$", "history.run", get_run, auth="token"),
]

"""The control API under ``/_emulator/`` (no authentication): what a test or the standalone emulator uses to read
jobs, metrics, logs and requests, inject faults, script outcomes, move the clock and reset."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING

from azft.emulator.faults import FAULT_KEYS, Fault
from azft.emulator.routes.base import Route
from azft.emulator.wire import HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

PREFIX = "/_emulator/"


def _body(rec: RecordedRequest) -> dict:
    return rec.body if isinstance(rec.body, dict) else {}


def _job(emu: Emulator, name: str):
    job = emu.jobs.get(name)
    if job is None:
        raise HttpError(404, "UserError", f"no job named {name!r}")
    return job


def health(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, {"ok": True})


def requests(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, {"value": [r.to_dict() for r in emu.requests if not r.path.startswith(PREFIX)]})


def actions(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, {"value": list(emu.permissions.performed)})


def jobs(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    now = emu.clock.now()
    return Response(
        200,
        {
            "value": [
                {"name": j.name, "status": j.status(now), "jobType": j.body.get("properties", {}).get("jobType")}
                for j in emu.jobs.values()
            ]
        },
    )


def job(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    j, now = _job(emu, m["name"]), emu.clock.now()
    return Response(
        200,
        {
            "name": j.name,
            "status": j.status(now),
            "error": j.error(now),
            "steps": j.steps_done(now),
            "totalSteps": j.total_steps,
            "body": j.body,
        },
    )


def metrics(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    j = _job(emu, m["name"])
    return Response(200, {k: [list(p) for p in v] for k, v in j.metrics(emu.clock.now()).items()})


def logs(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    j = _job(emu, m["name"])
    return Response(
        200, ("\n".join(j.logs(emu.clock.now())) + "\n").encode(), {"Content-Type": "text/plain; charset=utf-8"}
    )


def advance(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    body = _body(rec)
    try:
        emu.advance(body.get("seconds"), states=body.get("states"))
    except (TypeError, ValueError) as e:
        raise HttpError(400, "BadRequest", str(e)) from None
    return Response(200, {"now": emu.clock.now()})


def faults(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    body = _body(rec)
    if set(body) - FAULT_KEYS or "route_regex" not in body:
        raise HttpError(400, "BadRequest", f"fault needs route_regex; allowed keys: {sorted(FAULT_KEYS)}")
    try:
        fault = Fault(**body)
    except (TypeError, ValueError, re.error) as e:
        raise HttpError(400, "BadRequest", str(e)) from None
    emu.faults.append(fault)
    return Response(201, fault.to_dict())


def outcomes(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    body = _body(rec)
    try:
        o = emu.script_job(
            body.get("job"),
            body.get("kind", "fail"),
            body.get("at", "Running"),
            body.get("error_code"),
            body.get("message"),
            float(body.get("after", 0.5)),
            body.get("diverge_after"),
        )
    except (TypeError, ValueError) as e:
        raise HttpError(400, "BadRequest", str(e)) from None
    return Response(201, asdict(o))


def reset(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    emu.reset()
    return Response(200, {"ok": True})


_J = r"^/_emulator/jobs/(?P<name>[^/]+)"
ROUTES = [
    Route("GET", r"^/_emulator/health$", "control.health", health, auth=False),
    Route("GET", r"^/_emulator/requests$", "control.requests", requests, auth=False),
    Route("GET", r"^/_emulator/actions$", "control.actions", actions, auth=False),
    Route("GET", r"^/_emulator/jobs$", "control.jobs", jobs, auth=False),
    Route("GET", _J + r"$", "control.job", job, auth=False),
    Route("GET", _J + r"/metrics$", "control.metrics", metrics, auth=False),
    Route("GET", _J + r"/logs$", "control.logs", logs, auth=False),
    Route("POST", r"^/_emulator/advance$", "control.advance", advance, auth=False),
    Route("POST", r"^/_emulator/faults$", "control.faults", faults, auth=False),
    Route("POST", r"^/_emulator/outcomes$", "control.outcomes", outcomes, auth=False),
    Route("POST", r"^/_emulator/reset$", "control.reset", reset, auth=False),
]

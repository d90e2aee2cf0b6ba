"""Long-running operation status (``Azure-AsyncOperation``) and result (``Location``) endpoints."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from azft.emulator.routes.base import OPS, Route
from azft.emulator.wire import RecordedRequest, Response, now_iso

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator


def status(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    op = emu.store.operation(m["op"])
    done = op.poll()
    body = {"id": rec.path, "name": op.id, "status": "Succeeded" if done else "InProgress", "startTime": now_iso()}
    return Response(200, body, {} if done else emu.store.delay_header())


def result(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    op = emu.store.operation(m["op"])
    if op.poll():
        return Response(200, None)
    return Response(202, None, {"Location": emu.store.url(rec.path, **rec.query), **emu.store.delay_header()})


ROUTES = [
    Route(
        "GET",
        OPS + r"/mfeOperationsStatus/(?P<op>[^/]+)$",
        "operations.status",
        status,
        resource_type="locations/mfeOperationsStatus",
    ),
    Route(
        "GET",
        OPS + r"/mfeOperationResults/(?P<op>[^/]+)$",
        "operations.result",
        result,
        resource_type="locations/mfeOperationResults",
    ),
]

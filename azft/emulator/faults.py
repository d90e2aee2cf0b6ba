"""Injected faults: a status (with ``Retry-After``), a dropped connection or a delay on matching requests."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from azft.emulator.blobs import BLOB_PREFIX
from azft.emulator.wire import DROP, RecordedRequest, Response, azure_error

STATUS_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
FAULT_KEYS = frozenset(
    {"route_regex", "method", "status", "retry_after", "times", "drop_connection", "delay", "error_code", "skip"}
)


@dataclass
class Fault:
    """A fault injected into matching requests, ``times`` times (None = every time)."""

    route_regex: str
    method: str | None = None
    status: int | None = None
    retry_after: float | None = None
    times: int | None = 1
    drop_connection: bool = False
    delay: float | None = None
    error_code: str | None = None
    hits: int = 0
    #: Let this many matching requests through first: ``Fault(".", skip=n)`` hits the request number n+1 of a
    #: sequence whose paths carry fresh random names each time (operation ids, anonymous code, blob containers).
    skip: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        self._re = re.compile(self.route_regex, re.IGNORECASE)
        if self.status is None and not self.drop_connection and not self.delay:
            raise ValueError("a fault needs a status, drop_connection=True or a delay")

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if not self._re.search(path):
            return False
        if self.seen < self.skip:
            self.seen += 1
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def answer(self, rec: RecordedRequest) -> Response | object | None:
        """What a matching request gets: a response, ``DROP``, or None (only delayed: handle it normally)."""
        if self.delay:
            time.sleep(self.delay)
        if self.drop_connection:
            return DROP
        if self.status is None:
            return None
        headers = {}
        if self.retry_after is not None:
            ra = self.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
        code = self.error_code or STATUS_CODES.get(self.status, "InternalServerError")
        message = f"Injected fault: HTTP {self.status} ({code})."
        if rec.path.startswith(BLOB_PREFIX + "/"):  # the Blob service answers in its own XML dialect
            from azft.emulator.blobs import BlobError

            err = BlobError(self.status, code, message)
            return Response(
                self.status,
                err.body() if rec.method != "HEAD" else b"",
                {**headers, "x-ms-error-code": code, "Content-Type": "application/xml"},
            )
        return Response(self.status, azure_error(code, message), headers)

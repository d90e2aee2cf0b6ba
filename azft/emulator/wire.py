"""The emulator's wire layer: recorded requests, responses, Azure-shaped errors and the HTTPS request handler.

Nothing here knows a route: the handler parses a request, hands it to ``Emulator.dispatch`` (or
``dispatch_blob`` for the Blob service under ``/_blob/``) and writes back what comes out.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from azft.emulator.blobs import BLOB_PREFIX

log = logging.getLogger("azft.emulator")

PROVIDER = "Microsoft.MachineLearningServices"
DROP = object()  # a handler result meaning "close the connection without answering"

#: Headers that carry credentials besides Authorization: recorded as present, never with their value.
SECRET_HEADERS = frozenset({"x-azureml-token", "x-ms-authorization-auxiliary", "ocp-apim-subscription-key", "api-key"})
#: Query parameters that carry credentials (a SAS signature): recorded as present, never with their value.
SECRET_QUERY = frozenset({"sig", "signature"})


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def azure_error(code: str, message: str, details: list | None = None) -> dict[str, Any]:
    """An ARM error body: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details or []}}


@dataclass
class RecordedRequest:
    """One request as the emulator saw it. ``headers`` never holds ``Authorization``; other credential headers
    (``x-azureml-token``) are kept with the value ``[redacted]``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    route: str | None = None
    status: int | None = None  # None when the connection was dropped on purpose
    fault: bool = False
    time: float = field(default_factory=time.time)
    #: The query as sent, SAS signature included: only the Blob service reads it; never recorded or serialized.
    raw_query: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw_query", None)
        return d


class Response:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


class HttpError(Exception):
    """Raised by a handler: answered as ``status`` with an ARM error body (``details`` optional)."""

    def __init__(
        self, status: int, code: str, message: str, details: list | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.status, azure_error(self.code, self.message, self.details), dict(self.headers))


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms delayed-ACK stalls
    protocol_version = "HTTP/1.1"
    server_version = "azft-emulator/1"
    emulator: Any  # the Emulator, set on the bound subclass
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _record(self, path: str, query: dict[str, str], raw: bytes) -> RecordedRequest:
        headers = {
            k: ("[redacted]" if k.lower() in SECRET_HEADERS else v)
            for k, v in self.headers.items()
            if k.lower() != "authorization"
        }
        recorded_query = {k: ("[redacted]" if k.lower() in SECRET_QUERY else v) for k, v in query.items()}
        if path.startswith(BLOB_PREFIX + "/"):  # blob bodies are data, not JSON: recorded by size only
            return RecordedRequest(
                self.command, path, recorded_query, headers, f"<{len(raw)} bytes>" if raw else None, raw_query=query
            )
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        return RecordedRequest(self.command, path, recorded_query, headers, body, raw_query=query)

    def _handle(self) -> None:
        path, _, qs = self.path.partition("?")
        path = unquote(path)
        query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        raw = self._read_body()
        rec = self._record(path, query, raw)
        auth = self.headers.get("Authorization")
        if path.startswith(BLOB_PREFIX + "/"):
            result = self.emulator.dispatch_blob(rec, raw, dict(self.headers.items()), auth)
        else:
            result = self.emulator.dispatch(rec, auth)
        if result is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        assert isinstance(result, Response)
        rec.status = result.status
        self._write(result)

    def _write(self, result: Response) -> None:
        if isinstance(result.body, bytes):
            payload = result.body
            ctype = result.headers.pop("Content-Type", "application/octet-stream")
        elif result.body is None:
            payload, ctype = b"", None
        else:
            payload = json.dumps(result.body).encode()
            ctype = "application/json; charset=utf-8"
        self.send_response(result.status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if not any(k.lower() == "x-ms-request-id" for k in result.headers):
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
        length = result.headers.pop("Content-Length", None)  # HEAD of a blob: its size, with no body
        for k, v in result.headers.items():
            self.send_header(k, v)
        self.send_header(
            "Content-Length", str(length if length is not None and self.command == "HEAD" else len(payload))
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


def make_server(emulator: Any, host: str, port: int, context: ssl.SSLContext) -> ThreadingHTTPServer:
    """A threading HTTPS server whose TLS handshake runs in the worker thread, tracking open connections so
    ``stop()`` can close idle keep-alive ones held by client pools."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def finish_request(self, request, client_address):
            try:
                tls = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
            with emulator._lock:
                emulator._connections.add(tls)
            try:
                self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                with emulator._lock:
                    emulator._connections.discard(tls)
                try:
                    tls.close()
                except OSError:
                    pass

        def handle_error(self, request, client_address):  # keep test output quiet
            log.debug("emulator connection error from %s", client_address)

    handler = type("_BoundHandler", (Handler,), {"emulator": emulator})
    return _Server((host, port), handler)

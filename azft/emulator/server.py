"""A loopback HTTPS emulator of the Azure ML REST API, for the real ``MLClient``.

It serves the routes azure-ai-ml 1.35 calls for azft's flows (workspace, datastores, jobs with cancel LRO and
paging, computes, components, codes with ``startPendingUpload``, marketplace subscriptions, serverless endpoints, run
history) plus a minimal Blob service under ``/_blob/`` (``azft.emulator.blobs``) that takes the SDK's code uploads
through the SAS URIs it hands out and azft's own data uploads with bearer tokens, records every
request (minus the ``Authorization`` header), moves jobs through their lifecycle on a controllable clock, and injects
faults per route. Unknown routes answer 404 with an Azure-shaped error body and are recorded in ``unmatched``.

Control endpoints under ``/_emulator/`` (no authentication) expose the same controls over HTTP, for the standalone
``python -m azft.emulator``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from azft.emulator.blobs import BLOB_PREFIX, BlobService, BlobStore
from azft.emulator.credential import FakeCredential
from azft.emulator.lifecycle import (
    LIFECYCLE,
    TERMINAL,
    Clock,
    EmulatedJob,
    ManualClock,
    Outcome,
)
from azft.emulator.tls import TestCA, make_test_ca

log = logging.getLogger("azft.emulator")

#: api-versions azure-ai-ml 1.35.2 sends for azft's flows (see the wire notes); others get 400 so gaps show.
API_VERSIONS: frozenset[str] = frozenset(
    {
        "2023-04-01",
        "2023-04-01-preview",
        "2023-08-01-preview",
        "2024-01-01-preview",
        "2024-10-01-preview",
        "2025-01-01-preview",
    }
)

_PROVIDER = "Microsoft.MachineLearningServices"
_WS = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/(?P<ws>[^/]+)"
)
_ASSET_KINDS = ("components", "codes", "environments", "models", "data")
_ASSET = r"/(?P<kind>components|codes|environments|models|data)/(?P<name>[^/]+)"
_OPS = r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<loc>[^/]+)"
_DROP = object()  # a handler result meaning "close the connection without answering"


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def azure_error(code: str, message: str, details: list | None = None) -> dict[str, Any]:
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


@dataclass
class _Operation:
    """A long-running operation: answers 'in progress' ``polls`` times, then done."""

    id: str
    polls: int
    on_done: Callable[[], None] | None = None
    done: bool = False

    def poll(self) -> bool:
        if self.polls > 0:
            self.polls -= 1
            return False
        if not self.done:
            self.done = True
            if self.on_done:
                self.on_done()
        return True


class Response:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


_DEFAULT_STATE_SECONDS = {
    "NotStarted": 1.0,
    "Queued": 1.0,
    "Preparing": 1.0,
    "Running": 1.0,
    "Finalizing": 1.0,
    "CancelRequested": 1.0,
}


class Emulator:
    """The Azure ML REST emulator. Use as a context manager, or ``start()`` / ``stop()``.

    ``clock="manual"`` (default) keeps every job where it is until ``advance()``; ``clock="real"`` moves jobs on
    their own every ``seconds_per_state`` seconds.
    """

    _instances = itertools.count(1)

    def __init__(
        self,
        *,
        subscription_id: str = "00000000-0000-4000-8000-000000000001",
        resource_group: str = "rg-azft",
        workspace: str = "ws-azft",
        location: str = "eastus2",
        clock: str | Clock = "manual",
        seconds_per_state: float = 1.0,
        state_seconds: dict[str, float] | None = None,
        total_steps: int = 50,
        page_size: int = 20,
        lro_polls: int = 1,
        lro_retry_after: int | None = None,
        storage_account: str = "azftstorage",
        blob_container: str | None = None,
        blob_endpoint: str | None = None,
        blob_root: str | os.PathLike[str] | None = None,
        storage_suffix: str = "core.windows.net",
        api_versions: Iterable[str] = API_VERSIONS,
        ca: TestCA | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace
        self.location = location
        if isinstance(clock, Clock):
            self.clock = clock
        elif clock == "manual":
            self.clock = ManualClock()
        elif clock == "real":
            self.clock = Clock()
        else:
            raise ValueError("clock must be 'manual', 'real' or a Clock")
        self.state_seconds = {k: float(seconds_per_state) for k in _DEFAULT_STATE_SECONDS}
        self.state_seconds.update(state_seconds or {})
        self.total_steps = total_steps
        self.page_size = page_size
        self.lro_polls = lro_polls
        self.lro_retry_after = lro_retry_after
        self.storage_account = storage_account
        self.workspace_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription_id}/{resource_group}/{workspace}"))
        self.blob_container = blob_container or f"azureml-blobstore-{self.workspace_guid}"
        self.blob_endpoint = blob_endpoint
        #: The emulator's own Blob service (``/_blob/<account>/...``): code uploads through a SAS from
        #: ``startPendingUpload`` land here, in memory or under ``blob_root``.
        self.blob_store = BlobStore(blob_root)
        self.blob_service = BlobService(self.blob_store, storage_account)
        self.storage_suffix = storage_suffix
        self.api_versions = frozenset(api_versions)
        self.host = host
        self._port = port
        self._ca = ca
        self._own_ca = ca is None
        self.instance = next(self._instances)

        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, EmulatedJob] = {}
        self.computes: dict[str, dict[str, Any]] = {}
        #: Versioned assets by kind ("components", "codes", "environments", "models", "data"): {(name, version): body}
        self.assets: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in _ASSET_KINDS}
        self.components = self.assets["components"]
        self.codes = self.assets["codes"]
        self.environments = self.assets["environments"]
        self.marketplace_subscriptions: dict[str, dict[str, Any]] = {}
        self.serverless_endpoints: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self._pending_outcomes: list[Outcome] = []
        self._named_outcomes: dict[str, Outcome] = {}
        self._operations: dict[str, _Operation] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._routes = self._build_routes()

    # ------------------------------------------------------------------------------------------------------------
    # lifecycle of the server
    @property
    def ca(self) -> TestCA:
        if self._ca is None:
            self._ca = make_test_ca()
        return self._ca

    @property
    def ca_pem_path(self) -> str:
        return str(self.ca.ca_pem_path)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/{_PROVIDER}"
            f"/workspaces/{self.workspace_name}"
        )

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        context = self.ca.server_context()
        emulator = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request, client_address):  # TLS handshake in the worker thread
                try:
                    tls = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    request.close()
                    return
                with emulator._lock:
                    emulator._connections.add(tls)
                try:
                    self.RequestHandlerClass(tls, client_address, self)
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

        handler = type("_BoundHandler", (_Handler,), {"emulator": self})
        self._server = _Server((self.host, self._port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="azft-emulator", daemon=True
        )
        self._thread.start()
        log.info("Azure ML emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for c in conns:  # close idle keep-alive connections held by client pools
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)
        if self._own_ca and self._ca is not None:  # a CA made for this instance goes with it
            import shutil

            shutil.rmtree(self._ca.directory, ignore_errors=True)
            self._ca = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget requests, jobs, assets, faults and scripted outcomes (the server and its port stay)."""
        with self._lock:
            self.requests.clear()
            self.jobs.clear()
            self.computes.clear()
            for store in self.assets.values():
                store.clear()
            self.marketplace_subscriptions.clear()
            self.serverless_endpoints.clear()
            self.faults.clear()
            self._pending_outcomes.clear()
            self._named_outcomes.clear()
            self._operations.clear()
            if self.blob_store.root is None:
                self.blob_store.clear()

    # ------------------------------------------------------------------------------------------------------------
    # clients
    def cloud_metadata(self) -> dict[str, str]:
        return {
            "azure_portal": "https://portal.azure.com/",
            "resource_manager": self.base_url + "/",
            "active_directory": "https://login.microsoftonline.com/",
            "aml_resource_id": "https://ml.azure.com/",
            "storage_endpoint": self.storage_suffix,
            "registry_discovery_endpoint": self.base_url + "/",
        }

    def cloud_name(self) -> str:
        return f"AzftEmulator{self.instance}x{self.port}"

    def make_credential(self) -> FakeCredential:
        return FakeCredential()

    def make_ml_client(
        self,
        retry_total: int = 0,
        *,
        credential: Any = None,
        retry_backoff_factor: float = 0.01,
        **kwargs: Any,
    ):
        """A real ``MLClient`` aimed at this emulator over HTTPS.

        ``MLClient`` writes ``AZUREML_CURRENT_CLOUD`` into the environment; it is restored right after construction
        so clients created later without ``cloud=`` keep targeting public Azure.
        """
        from azure.ai.ml import MLClient

        previous = os.environ.get("AZUREML_CURRENT_CLOUD")
        kwargs.setdefault("connection_verify", self.ca_pem_path)
        kwargs.setdefault("enable_telemetry", False)
        # show_progress must stay on: with it off, azure-ai-ml 1.35 drops the error of a failed code-folder blob
        # upload and then waits forever for the file count to add up (azft silences the bars, not the errors)
        kwargs.setdefault("show_progress", True)
        kwargs.setdefault("polling_interval", 0)
        try:
            return MLClient(
                credential or self.make_credential(),
                self.subscription_id,
                self.resource_group,
                self.workspace_name,
                cloud=self.cloud_name(),
                cloud_metadata=self.cloud_metadata(),
                retry_total=retry_total,
                retry_backoff_factor=retry_backoff_factor,
                **kwargs,
            )
        finally:
            if previous is None:
                os.environ.pop("AZUREML_CURRENT_CLOUD", None)
            else:
                os.environ["AZUREML_CURRENT_CLOUD"] = previous

    def env(self) -> dict[str, str]:
        """Environment variables that point azft (``azft.azure.workspace``) at this emulator."""
        out = {
            "AZFT_AZURE_ENDPOINT": self.base_url,
            "AZFT_AZURE_CA_BUNDLE": self.ca_pem_path,
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_RESOURCE_GROUP": self.resource_group,
            "AZUREML_WORKSPACE_NAME": self.workspace_name,
        }
        # data uploads go to the configured blob endpoint (Azurite), else to the emulator's own Blob service
        out["AZFT_BLOB_ENDPOINT"] = self.blob_endpoint or self.own_blob_endpoint
        return out

    @property
    def own_blob_endpoint(self) -> str:
        """The account URL of the emulator's own Blob service (path-style, bearer tokens or SAS)."""
        return f"{self.base_url}{BLOB_PREFIX}/{self.storage_account}"

    # ------------------------------------------------------------------------------------------------------------
    # controls
    def inject(
        self,
        route_regex: str,
        method: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        times: int | None = 1,
        drop_connection: bool = False,
        delay: float | None = None,
        error_code: str | None = None,
        skip: int = 0,
    ) -> Fault:
        """Make the next ``times`` requests whose path matches ``route_regex`` fail (or stall, or drop), after
        letting ``skip`` of them through."""
        fault = Fault(route_regex, method, status, retry_after, times, drop_connection, delay, error_code,
                      skip=skip)
        with self._lock:
            self.faults.append(fault)
        return fault

    def script_job(
        self,
        name: str | None = None,
        kind: str = "fail",
        at: str = "Running",
        error_code: str | None = None,
        message: str | None = None,
        after: float = 0.5,
    ) -> Outcome:
        """Decide how a job ends: ``kind`` fail/cancel/complete at state ``at``.

        With ``name`` the outcome applies to that job (existing or future); without, to the next job created.
        """
        outcome = Outcome(kind=kind, at=at, error_code=error_code, message=message, after=after)
        with self._lock:
            if name is None:
                self._pending_outcomes.append(outcome)
            elif name in self.jobs:
                self.jobs[name].outcome = outcome
            else:
                self._named_outcomes[name] = outcome
        return outcome

    def advance(self, seconds: float | None = None, *, states: int | None = None) -> None:
        """Move the manual clock by ``seconds``, or by ``states`` times the longest state duration."""
        if seconds is None:
            seconds = (states if states is not None else 1) * max(self.state_seconds.values())
        self.clock.advance(seconds)

    def job_status(self, name: str) -> str:
        with self._lock:
            return self._job(name).status(self.clock.now())

    def job_error(self, name: str) -> dict[str, str] | None:
        with self._lock:
            return self._job(name).error(self.clock.now())

    def metrics(self, name: str) -> dict[str, list[tuple[int, float]]]:
        with self._lock:
            return self._job(name).metrics(self.clock.now())

    def logs(self, name: str) -> list[str]:
        with self._lock:
            return self._job(name).logs(self.clock.now())

    def add_compute(self, name: str, vm_size: str = "Standard_NC24ads_A100_v4", max_nodes: int = 1) -> dict:
        body = {
            "location": self.location,
            "properties": {
                "computeType": "AmlCompute",
                "computeLocation": self.location,
                "properties": {
                    "vmSize": vm_size,
                    "vmPriority": "Dedicated",
                    "scaleSettings": {"maxNodeCount": max_nodes, "minNodeCount": 0,
                                      "nodeIdleTimeBeforeScaleDown": "PT120S"},
                },
            },
        }
        with self._lock:
            self.computes[name] = self._arm_resource("computes", name, body, provisioning="Succeeded")
            return self.computes[name]

    def add_asset(self, kind: str, name: str, version: str, properties: dict[str, Any] | None = None) -> dict:
        """Pre-create a versioned asset (e.g. ``add_asset("environments", "azft-train", "3", {"image": ...})``)."""
        kind = _asset_kind(kind)
        with self._lock:
            resource = self._arm_resource(f"{kind}/{name}", name, {"properties": dict(properties or {})},
                                          provisioning="Succeeded", version=version)
            resource["id"] = self._arm_id(kind, name, version)
            self.assets[kind][(name, version)] = resource
            return resource

    def requests_to(self, pattern: str, method: str | None = None) -> list[RecordedRequest]:
        rx = re.compile(pattern, re.IGNORECASE)
        with self._lock:
            return [r for r in self.requests if rx.search(r.path) and (method is None or r.method == method.upper())]

    @property
    def unmatched(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.route is None and not r.path.startswith("/_emulator/")]

    # ------------------------------------------------------------------------------------------------------------
    # internals
    def _job(self, name: str) -> EmulatedJob:
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"no job named {name!r} in the emulator") from None

    def _arm_id(self, kind: str, name: str, version: str | None = None) -> str:
        rid = f"{self.workspace_id}/{kind}/{name}"
        return f"{rid}/versions/{version}" if version is not None else rid

    def _system_data(self) -> dict[str, str]:
        now = _now_iso()
        return {
            "createdAt": now,
            "createdBy": "azft emulator",
            "createdByType": "User",
            "lastModifiedAt": now,
            "lastModifiedBy": "azft emulator",
            "lastModifiedByType": "User",
        }

    def _arm_resource(self, kind: str, name: str, body: dict, provisioning: str | None = None,
                      version: str | None = None) -> dict:
        out = dict(body or {})
        out["id"] = self._arm_id(kind, name, version)
        out["name"] = version if version is not None else name
        out["type"] = f"{_PROVIDER}/workspaces/{kind}" + ("/versions" if version is not None else "")
        out.setdefault("systemData", self._system_data())
        props = dict(out.get("properties") or {})
        if provisioning is not None:
            props["provisioningState"] = provisioning
        out["properties"] = props
        return out

    def _url(self, path: str, **query: str) -> str:
        return f"{self.base_url}{path}" + (("?" + urlencode(query)) if query else "")

    def _new_operation(self, on_done: Callable[[], None] | None = None) -> _Operation:
        op = _Operation(id=uuid.uuid4().hex, polls=self.lro_polls, on_done=on_done)
        self._operations[op.id] = op
        return op

    def _op_headers(self, op: _Operation, api_version: str, location: bool = False) -> dict[str, str]:
        base = f"/subscriptions/{self.subscription_id}/providers/{_PROVIDER}/locations/{self.location}"
        headers = {
            "Azure-AsyncOperation": self._url(f"{base}/mfeOperationsStatus/{op.id}", **{"api-version": api_version}),
        }
        headers.update(self._lro_delay_header())
        if location:
            headers["Location"] = self._url(f"{base}/mfeOperationResults/{op.id}", **{"api-version": api_version})
        return headers

    def _lro_delay_header(self) -> dict[str, str]:
        # The generated clients parse Retry-After on LRO responses as an integer; without the header the poller
        # waits ``polling_interval`` (make_ml_client sets 0).
        return {} if self.lro_retry_after is None else {"Retry-After": str(int(self.lro_retry_after))}

    def _job_resource(self, job: EmulatedJob) -> dict[str, Any]:
        now = self.clock.now()
        out = json.loads(json.dumps(job.body))
        out["id"] = self._arm_id("jobs", job.name)
        out["name"] = job.name
        out["type"] = f"{_PROVIDER}/workspaces/jobs"
        out.setdefault("systemData", {}).update(
            {"createdAt": datetime.fromtimestamp(job.created_wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
             "createdBy": "azft emulator", "createdByType": "User"}
        )
        props = out.setdefault("properties", {})
        props["status"] = job.status(now)
        props.setdefault("experimentName", "Default")
        if props.get("jobType") in ("Command", "Pipeline", "Sweep", "FineTuning"):
            props["services"] = {
                "Studio": {
                    "jobServiceType": "Studio",
                    "endpoint": f"https://ml.azure.com/runs/{job.name}?wsid={quote(self.workspace_id)}",
                },
                "Tracking": {
                    "jobServiceType": "Tracking",
                    "endpoint": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                },
            }
        return out

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, Callable[..., Any], Any]]:
        """(method, path regex, route name, handler, auth): auth True = ARM (bearer + api-version), "token" = bearer
        only (data plane), False = none (discovery and control endpoints)."""
        r: list[tuple[str, str, str, Callable[..., Any], Any]] = [
            ("GET", _WS + r"$", "workspaces.get", self._h_workspace, True),
            ("GET", _WS + r"/datastores$", "datastores.list", self._h_datastores_list, True),
            ("GET", _WS + r"/datastores/(?P<name>[^/]+)$", "datastores.get", self._h_datastore_get, True),
            ("PUT", _WS + r"/jobs/(?P<name>[^/]+)$", "jobs.put", self._h_job_put, True),
            ("GET", _WS + r"/jobs/(?P<name>[^/]+)$", "jobs.get", self._h_job_get, True),
            ("GET", _WS + r"/jobs$", "jobs.list", self._h_jobs_list, True),
            ("POST", _WS + r"/jobs/(?P<name>[^/]+)/cancel$", "jobs.cancel", self._h_job_cancel, True),
            ("PUT", _WS + r"/computes/(?P<name>[^/]+)$", "computes.put", self._h_compute_put, True),
            ("GET", _WS + r"/computes/(?P<name>[^/]+)$", "computes.get", self._h_compute_get, True),
            ("DELETE", _WS + r"/computes/(?P<name>[^/]+)$", "computes.delete", self._h_compute_delete, True),
            ("GET", _WS + r"/computes$", "computes.list", self._h_computes_list, True),
            ("PUT", _WS + _ASSET + r"/versions/(?P<version>[^/]+)$", "assets.put", self._h_asset_put, True),
            ("GET", _WS + _ASSET + r"/versions/(?P<version>[^/]+)$", "assets.get", self._h_asset_get, True),
            ("GET", _WS + _ASSET + r"/versions$", "assets.versions", self._h_asset_versions, True),
            ("POST", _WS + _ASSET + r"/versions/(?P<version>[^/]+)/startPendingUpload$", "assets.startPendingUpload",
             self._h_pending_upload, True),
            ("GET", _WS + _ASSET + r"$", "assets.container", self._h_asset_container, True),
            ("PUT", _WS + r"/marketplaceSubscriptions/(?P<name>[^/]+)$", "marketplace.put", self._h_mkt_put, True),
            ("GET", _WS + r"/marketplaceSubscriptions/(?P<name>[^/]+)$", "marketplace.get", self._h_mkt_get, True),
            ("DELETE", _WS + r"/marketplaceSubscriptions/(?P<name>[^/]+)$", "marketplace.delete",
             self._h_mkt_delete, True),
            ("GET", _WS + r"/marketplaceSubscriptions$", "marketplace.list", self._h_mkt_list, True),
            ("PUT", _WS + r"/serverlessEndpoints/(?P<name>[^/]+)$", "serverless.put", self._h_sls_put, True),
            ("GET", _WS + r"/serverlessEndpoints/(?P<name>[^/]+)$", "serverless.get", self._h_sls_get, True),
            ("DELETE", _WS + r"/serverlessEndpoints/(?P<name>[^/]+)$", "serverless.delete", self._h_sls_delete, True),
            ("GET", _WS + r"/serverlessEndpoints$", "serverless.list", self._h_sls_list, True),
            ("POST", _WS + r"/serverlessEndpoints/(?P<name>[^/]+)/listKeys$", "serverless.listKeys",
             self._h_sls_keys, True),
            ("GET", _OPS + r"/mfeOperationsStatus/(?P<op>[^/]+)$", "operations.status", self._h_op_status, True),
            ("GET", _OPS + r"/mfeOperationResults/(?P<op>[^/]+)$", "operations.result", self._h_op_result, True),
            ("GET", r"^/discovery$", "discovery", self._h_discovery, False),
            ("GET", r"^/history/v1\.0" + _WS[1:] + r"/runs/(?P<name>[^/]+)$", "history.run", self._h_history_run,
             "token"),
            ("GET", r"^/_emulator/health$", "control.health", lambda q, m: Response(200, {"ok": True}), False),
            ("GET", r"^/_emulator/requests$", "control.requests", self._c_requests, False),
            ("GET", r"^/_emulator/jobs$", "control.jobs", self._c_jobs, False),
            ("GET", r"^/_emulator/jobs/(?P<name>[^/]+)$", "control.job", self._c_job, False),
            ("GET", r"^/_emulator/jobs/(?P<name>[^/]+)/metrics$", "control.metrics", self._c_metrics, False),
            ("GET", r"^/_emulator/jobs/(?P<name>[^/]+)/logs$", "control.logs", self._c_logs, False),
            ("POST", r"^/_emulator/advance$", "control.advance", self._c_advance, False),
            ("POST", r"^/_emulator/faults$", "control.faults", self._c_faults, False),
            ("POST", r"^/_emulator/outcomes$", "control.outcomes", self._c_outcomes, False),
            ("POST", r"^/_emulator/reset$", "control.reset", self._c_reset, False),
        ]
        return [(m, re.compile(rx, re.IGNORECASE), name, h, auth) for m, rx, name, h, auth in r]

    # -- dispatch ------------------------------------------------------------------------------------------------
    def _record_and_fault(self, rec: RecordedRequest) -> Response | object | None:
        """Record the request; the response of an injected fault (or _DROP), or None to handle it normally."""
        with self._lock:
            self.requests.append(rec)
            fault = None
            if not rec.path.startswith("/_emulator/"):
                fault = next((f for f in self.faults if f.matches(rec.method, rec.path)), None)
                if fault:
                    fault.hits += 1
                    rec.fault = True
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop_connection:
            return _DROP
        if fault.status is not None:
            headers = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            code = fault.error_code or _STATUS_CODES.get(fault.status, "InternalServerError")
            if rec.path.startswith(BLOB_PREFIX + "/"):  # the Blob service answers in its own XML dialect
                from azft.emulator.blobs import BlobError

                err = BlobError(fault.status, code, f"Injected fault: HTTP {fault.status} ({code}).")
                return Response(fault.status, err.body() if rec.method != "HEAD" else b"",
                                {**headers, "x-ms-error-code": code, "Content-Type": "application/xml"})
            return Response(fault.status, azure_error(code, f"Injected fault: HTTP {fault.status} ({code})."),
                            headers)
        return None

    def _dispatch_blob(self, rec: RecordedRequest, raw: bytes, headers: dict[str, str],
                       authorization: str | None) -> Response | object:
        """A request to the emulator's Blob service (``/_blob/...``); faults apply as to every other route."""
        rec.route = "blob"
        early = self._record_and_fault(rec)
        if early is not None:
            return early
        resp = self.blob_service.handle(rec.method, rec.path, rec.raw_query, headers, raw, authorization)
        return Response(resp.status, resp.body, dict(resp.headers))

    def _dispatch(self, rec: RecordedRequest, authorization: str | None) -> Response | object:
        early = self._record_and_fault(rec)
        if early is not None:
            return early
        path_matched = False
        for method, rx, name, handler, needs_auth in self._routes:
            m = rx.match(rec.path)
            if not m:
                continue
            path_matched = True
            if method != rec.method:
                continue
            rec.route = name
            if needs_auth and not (authorization or "").startswith("Bearer "):
                return Response(401, azure_error(
                    "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or is not "
                    "a bearer token."), {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/"'})
            if needs_auth is True:  # ARM routes: api-version checked too (data-plane routes have none)
                av = rec.api_version
                if av not in self.api_versions:
                    return Response(400, azure_error(
                        "InvalidApiVersionParameter",
                        f"The api-version '{av}' is invalid. The supported versions are "
                        f"'{', '.join(sorted(self.api_versions))}'."))
                groups = m.groupdict()
                if "ws" in groups and not self._is_our_workspace(groups):
                    return Response(404, azure_error(
                        "ResourceNotFound",
                        f"The Resource '{_PROVIDER}/workspaces/{groups['ws']}' under resource group "
                        f"'{groups['rg']}' was not found."))
            with self._lock:
                try:
                    return handler(rec, m)
                except _HttpError as e:
                    return Response(e.status, azure_error(e.code, e.message))
        if path_matched:
            return Response(405, azure_error("MethodNotAllowed", f"{rec.method} is not allowed on {rec.path}."))
        return Response(404, azure_error(
            "NoRouteInEmulator" if not rec.path.startswith("/subscriptions/") else "ResourceNotFound",
            f"The azft emulator has no route for {rec.method} {rec.path} (api-version {rec.api_version})."))

    def _is_our_workspace(self, g: dict[str, str]) -> bool:
        return (
            g["sub"].lower() == self.subscription_id.lower()
            and g["rg"].lower() == self.resource_group.lower()
            and g["ws"].lower() == self.workspace_name.lower()
        )

    # -- ARM handlers (called with the lock held) -----------------------------------------------------------------
    def _workspace_body(self) -> dict[str, Any]:
        sub, rg = self.subscription_id, self.resource_group
        return {
            "id": self.workspace_id,
            "name": self.workspace_name,
            "type": f"{_PROVIDER}/workspaces",
            "location": self.location,
            "kind": "Default",
            "tags": {},
            "sku": {"name": "Basic", "tier": "Basic"},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_OID, self.workspace_guid)),
                         "tenantId": "72f988bf-0000-4000-8000-00000000a2f7"},
            "systemData": self._system_data(),
            "properties": {
                "friendlyName": self.workspace_name,
                "description": "azft emulator workspace",
                "provisioningState": "Succeeded",
                "workspaceId": self.workspace_guid,
                "discoveryUrl": f"{self.base_url}/discovery",
                "storageAccount": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage"
                f"/storageAccounts/{self.storage_account}",
                "keyVault": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/kv-azft",
                "applicationInsights": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/microsoft.insights"
                "/components/ai-azft",
                "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                "hbiWorkspace": False,
                "publicNetworkAccess": "Enabled",
                "v1LegacyMode": False,
                "storageHnsEnabled": False,
            },
        }

    def _h_workspace(self, rec: RecordedRequest, m: re.Match) -> Response:
        return Response(200, self._workspace_body())

    def _datastore_body(self) -> dict[str, Any]:
        if not self.blob_endpoint:  # the default datastore's container exists in the emulator's own Blob service
            self.blob_store.create_container(self.blob_container, exist_ok=True)
        return self._arm_resource("datastores", "workspaceblobstore", {
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": self.storage_account,
                "containerName": self.blob_container,
                "endpoint": self.storage_suffix,
                "protocol": "https",
                "credentials": {"credentialsType": "None"},
                "isDefault": True,
                "serviceDataAccessAuthIdentity": "None",
                "description": "Default blob datastore of the azft emulator workspace",
                "tags": {},
                "properties": {},
            }
        })

    def _h_datastores_list(self, rec: RecordedRequest, m: re.Match) -> Response:
        return Response(200, {"value": [self._datastore_body()]})

    def _h_datastore_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        if m["name"] != "workspaceblobstore":
            raise _HttpError(404, "UserError", f"Datastore {m['name']} not found in workspace {self.workspace_name}.")
        return Response(200, self._datastore_body())

    # jobs
    def _h_job_put(self, rec: RecordedRequest, m: re.Match) -> Response:
        name = m["name"]
        body = rec.body
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise _HttpError(400, "UserError", "The request body must be a JSON object with 'properties'.")
        if not body["properties"].get("jobType"):
            raise _HttpError(400, "UserError", "properties.jobType is required.")
        existing = self.jobs.get(name)
        if existing is not None:
            if _comparable(existing.body) != _comparable(body):
                raise _HttpError(409, "UserError",
                                 f"A job named '{name}' already exists with different properties; job names are "
                                 "unique within a workspace.")
            existing.body.setdefault("properties", {})["tags"] = body["properties"].get("tags", {})
            return Response(200, self._job_resource(existing))
        outcome = self._named_outcomes.pop(name, None) or (self._pending_outcomes.pop(0) if self._pending_outcomes
                                                          else Outcome())
        job = EmulatedJob(name=name, body=json.loads(json.dumps(body)), created_at=self.clock.now(),
                          created_wall=time.time(), outcome=outcome, state_seconds=dict(self.state_seconds),
                          total_steps=self.total_steps, api_version=rec.api_version)
        self.jobs[name] = job
        return Response(201, self._job_resource(job))

    def _h_job_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"Job '{m['name']}' was not found in workspace {self.workspace_name}.")
        return Response(200, self._job_resource(job))

    def _page(self, rec: RecordedRequest, items: list[dict]) -> Response:
        skip = int(rec.query.get("$skipToken") or 0)
        page = items[skip: skip + self.page_size]
        body: dict[str, Any] = {"value": page}
        if skip + self.page_size < len(items):
            q = {k: v for k, v in rec.query.items() if k != "$skipToken"}
            q["$skipToken"] = str(skip + self.page_size)
            body["nextLink"] = self._url(rec.path, **q)
        return Response(200, body)

    def _h_jobs_list(self, rec: RecordedRequest, m: re.Match) -> Response:
        jobs = sorted(self.jobs.values(), key=lambda j: j.created_wall, reverse=True)
        job_type = rec.query.get("jobType")
        items = [self._job_resource(j) for j in jobs]
        if job_type:
            items = [i for i in items if i["properties"].get("jobType", "").lower() == job_type.lower()]
        return self._page(rec, items)

    def _h_job_cancel(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"Job '{m['name']}' was not found in workspace {self.workspace_name}.")
        if job.status(self.clock.now()) in TERMINAL:
            return Response(200, None)
        if job.cancel_requested_at is None:
            job.cancel_requested_at = self.clock.now()
        op = self._new_operation()
        headers = self._op_headers(op, rec.api_version or "2023-04-01-preview", location=True)
        headers.pop("Azure-AsyncOperation")
        return Response(202, None, headers)

    # computes
    def _lro_put(self, store: dict[str, dict], kind: str, rec: RecordedRequest, name: str,
                 extra: Callable[[dict], None] | None = None) -> Response:
        body = rec.body if isinstance(rec.body, dict) else {}
        created = name not in store
        resource = self._arm_resource(kind, name, body, provisioning="Creating" if created else "Updating")
        if extra:
            extra(resource)
        store[name] = resource
        op = self._new_operation(on_done=lambda: resource["properties"].update(provisioningState="Succeeded"))
        return Response(201 if created else 200, resource, self._op_headers(op, rec.api_version or ""))

    def _get_from(self, store: dict[str, dict], what: str, name: str) -> Response:
        if name not in store:
            raise _HttpError(404, "ResourceNotFound" if what != "Job" else "UserError",
                             f"{what} '{name}' was not found in workspace {self.workspace_name}.")
        return Response(200, store[name])

    def _lro_delete(self, store: dict[str, dict], what: str, rec: RecordedRequest, name: str) -> Response:
        if name not in store:
            return Response(204, None)
        op = self._new_operation(on_done=lambda: store.pop(name, None))
        return Response(202, None, self._op_headers(op, rec.api_version or "", location=True))

    def _h_compute_put(self, rec: RecordedRequest, m: re.Match) -> Response:
        def extra(res: dict) -> None:
            res.setdefault("location", self.location)
            res["properties"].setdefault("computeLocation", self.location)
        return self._lro_put(self.computes, "computes", rec, m["name"], extra)

    def _h_compute_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._get_from(self.computes, "Compute", m["name"])

    def _h_compute_delete(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._lro_delete(self.computes, "Compute", rec, m["name"])

    def _h_computes_list(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._page(rec, list(self.computes.values()))

    # versioned assets: components (incl. anonymous), codes, environments, models, data
    def _h_asset_put(self, rec: RecordedRequest, m: re.Match) -> Response:
        kind, key = _asset_kind(m["kind"]), (m["name"], m["version"])
        store = self.assets[kind]
        body = rec.body if isinstance(rec.body, dict) else {}
        created = key not in store
        resource = self._arm_resource(f"{kind}/{m['name']}", m["name"], body, provisioning="Succeeded",
                                      version=m["version"])
        resource["id"] = self._arm_id(kind, m["name"], m["version"])
        store.pop(key, None)
        store[key] = resource  # insertion order = creation order ("latest" is the last one)
        return Response(201 if created else 200, resource)

    def _h_asset_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        kind, key = _asset_kind(m["kind"]), (m["name"], m["version"])
        if key not in self.assets[kind]:
            raise _HttpError(404, "UserError", f"{kind} {m['name']}:{m['version']} was not found.")
        return Response(200, self.assets[kind][key])

    def _h_asset_versions(self, rec: RecordedRequest, m: re.Match) -> Response:
        kind = _asset_kind(m["kind"])
        wanted = rec.query.get("hash")
        if wanted:
            # A content-hash lookup spans the workspace, as Azure's does: anonymous code gets a fresh random name
            # on every submit, and the hash is what finds an earlier upload of the same folder.
            items = [v for v in self.assets[kind].values()
                     if (v.get("properties", {}).get("properties") or {}).get("hash_sha256") == wanted
                     or v.get("properties", {}).get("contentHash") == wanted]
        else:
            items = [v for (n, _), v in self.assets[kind].items() if n == m["name"]]
        items.reverse()  # newest first, as `$orderBy=createdtime desc` asks
        top = rec.query.get("$top")
        if top and top.isdigit():
            items = items[: int(top)]
        return self._page(rec, items)

    def _h_asset_container(self, rec: RecordedRequest, m: re.Match) -> Response:
        kind = _asset_kind(m["kind"])
        versions = [ver for (n, ver) in self.assets[kind] if n == m["name"]]
        if not versions:
            raise _HttpError(404, "UserError", f"{kind} {m['name']} was not found.")
        return Response(200, self._arm_resource(kind, m["name"], {
            "properties": {"latestVersion": versions[-1], "description": "", "tags": {}, "properties": {}}}))

    def _h_pending_upload(self, rec: RecordedRequest, m: re.Match) -> Response:
        """``startPendingUpload``: a container SAS on the emulator's own Blob service, as Azure hands out for code
        (``blobReferenceForConsumption``). One container per asset version, so a retried upload finds its blobs."""
        kind = _asset_kind(m["kind"])
        body = rec.body if isinstance(rec.body, dict) else {}
        upload_type = body.get("pendingUploadType") or "TemporaryBlobReference"
        if upload_type != "TemporaryBlobReference":
            raise _HttpError(400, "UserError", f"pendingUploadType {upload_type!r} is not supported.")
        container = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.workspace_id}/{kind}/{m['name']}/{m['version']}"))
        self.blob_store.create_container(container, exist_ok=True)
        sub, rg = self.subscription_id, self.resource_group
        return Response(200, {
            "blobReferenceForConsumption": {
                "blobUri": self.blob_service.container_url(self.base_url, container),
                "storageAccountArmId": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage"
                                       f"/storageAccounts/{self.storage_account}",
                "credential": {"credentialType": "SAS",
                               "sasUri": self.blob_service.sas_url(self.base_url, container)},
            },
            "pendingUploadId": body.get("pendingUploadId") or str(uuid.uuid4()),
            "pendingUploadType": upload_type,
        })

    # marketplace subscriptions and serverless endpoints
    def _h_mkt_put(self, rec: RecordedRequest, m: re.Match) -> Response:
        def extra(res: dict) -> None:
            model_id = res["properties"].get("modelId", "")
            res["properties"].setdefault("marketplaceSubscriptionStatus", "Subscribed")
            res["properties"].setdefault("marketplacePlan", {
                "publisherId": "azureml", "offerId": model_id.rstrip("/").split("/")[-1] or "model",
                "planId": "standard"})
        return self._lro_put(self.marketplace_subscriptions, "marketplaceSubscriptions", rec, m["name"], extra)

    def _h_mkt_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._get_from(self.marketplace_subscriptions, "Marketplace subscription", m["name"])

    def _h_mkt_delete(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._lro_delete(self.marketplace_subscriptions, "Marketplace subscription", rec, m["name"])

    def _h_mkt_list(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._page(rec, list(self.marketplace_subscriptions.values()))

    def _h_sls_put(self, rec: RecordedRequest, m: re.Match) -> Response:
        name = m["name"]

        def extra(res: dict) -> None:
            res.setdefault("location", self.location)
            res["properties"].setdefault("authMode", "Key")
            res["properties"]["inferenceEndpoint"] = {"uri": f"https://{name}.{self.location}.models.ai.azure.com"}
            res["properties"]["endpointState"] = "Online"
        return self._lro_put(self.serverless_endpoints, "serverlessEndpoints", rec, name, extra)

    def _h_sls_get(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._get_from(self.serverless_endpoints, "Serverless endpoint", m["name"])

    def _h_sls_delete(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._lro_delete(self.serverless_endpoints, "Serverless endpoint", rec, m["name"])

    def _h_sls_list(self, rec: RecordedRequest, m: re.Match) -> Response:
        return self._page(rec, list(self.serverless_endpoints.values()))

    def _h_sls_keys(self, rec: RecordedRequest, m: re.Match) -> Response:
        self._get_from(self.serverless_endpoints, "Serverless endpoint", m["name"])
        # Deterministic, obviously fake keys: tests can check they never reach logs.
        return Response(200, {"primaryKey": f"emulator-primary-{m['name']}",
                              "secondaryKey": f"emulator-secondary-{m['name']}"})

    # operations
    def _h_op_status(self, rec: RecordedRequest, m: re.Match) -> Response:
        op = self._operations.get(m["op"])
        if op is None:
            raise _HttpError(404, "ResourceNotFound", f"Operation {m['op']} was not found.")
        done = op.poll()
        body = {"id": rec.path, "name": op.id, "status": "Succeeded" if done else "InProgress",
                "startTime": _now_iso()}
        return Response(200, body, {} if done else self._lro_delay_header())

    def _h_op_result(self, rec: RecordedRequest, m: re.Match) -> Response:
        op = self._operations.get(m["op"])
        if op is None:
            raise _HttpError(404, "ResourceNotFound", f"Operation {m['op']} was not found.")
        if op.poll():
            return Response(200, None)
        return Response(202, None, {"Location": self._url(rec.path, **rec.query), **self._lro_delay_header()})

    def _h_discovery(self, rec: RecordedRequest, m: re.Match) -> Response:
        b = self.base_url
        return Response(200, {k: b for k in ("api", "catalog", "experimentation", "gallery", "history",
                                             "hyperdrive", "labeling", "modelmanagement", "pipelines",
                                             "studiometadata")})

    def _h_history_run(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"Run '{m['name']}' was not found.")
        now = self.clock.now()
        body: dict[str, Any] = {"runId": job.name, "status": job.status(now), "runType": "azureml.emulator",
                                "properties": {}, "tags": {}}
        err = job.error(now)
        if err:
            body["error"] = {"error": {"code": err["code"], "message": err["message"]}}
        return Response(200, body)

    # -- control endpoints ----------------------------------------------------------------------------------------
    def _c_requests(self, rec: RecordedRequest, m: re.Match) -> Response:
        return Response(200, {"value": [r.to_dict() for r in self.requests if not r.path.startswith("/_emulator/")]})

    def _c_jobs(self, rec: RecordedRequest, m: re.Match) -> Response:
        now = self.clock.now()
        return Response(200, {"value": [{"name": j.name, "status": j.status(now),
                                         "jobType": j.body.get("properties", {}).get("jobType")}
                                        for j in self.jobs.values()]})

    def _c_job(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"no job named {m['name']!r}")
        now = self.clock.now()
        return Response(200, {"name": job.name, "status": job.status(now), "error": job.error(now),
                              "steps": job.steps_done(now), "totalSteps": job.total_steps, "body": job.body})

    def _c_metrics(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"no job named {m['name']!r}")
        return Response(200, {k: [list(p) for p in v] for k, v in job.metrics(self.clock.now()).items()})

    def _c_logs(self, rec: RecordedRequest, m: re.Match) -> Response:
        job = self.jobs.get(m["name"])
        if job is None:
            raise _HttpError(404, "UserError", f"no job named {m['name']!r}")
        return Response(200, ("\n".join(job.logs(self.clock.now())) + "\n").encode(),
                        {"Content-Type": "text/plain; charset=utf-8"})

    def _c_advance(self, rec: RecordedRequest, m: re.Match) -> Response:
        body = rec.body if isinstance(rec.body, dict) else {}
        try:
            self.advance(body.get("seconds"), states=body.get("states"))
        except (TypeError, ValueError) as e:
            raise _HttpError(400, "BadRequest", str(e)) from None
        return Response(200, {"now": self.clock.now()})

    def _c_faults(self, rec: RecordedRequest, m: re.Match) -> Response:
        body = rec.body if isinstance(rec.body, dict) else {}
        allowed = {"route_regex", "method", "status", "retry_after", "times", "drop_connection", "delay",
                   "error_code", "skip"}
        unknown = set(body) - allowed
        if unknown or "route_regex" not in body:
            raise _HttpError(400, "BadRequest", f"fault needs route_regex; allowed keys: {sorted(allowed)}")
        try:
            fault = Fault(**body)
        except (TypeError, ValueError, re.error) as e:
            raise _HttpError(400, "BadRequest", str(e)) from None
        self.faults.append(fault)
        return Response(201, fault.to_dict())

    def _c_outcomes(self, rec: RecordedRequest, m: re.Match) -> Response:
        body = rec.body if isinstance(rec.body, dict) else {}
        try:
            o = self.script_job(body.get("job"), body.get("kind", "fail"), body.get("at", "Running"),
                                body.get("error_code"), body.get("message"), float(body.get("after", 0.5)))
        except (TypeError, ValueError) as e:
            raise _HttpError(400, "BadRequest", str(e)) from None
        return Response(201, asdict(o))

    def _c_reset(self, rec: RecordedRequest, m: re.Match) -> Response:
        self.reset()
        return Response(200, {"ok": True})


def _asset_kind(kind: str) -> str:
    return next(k for k in _ASSET_KINDS if k.lower() == kind.lower())


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_STATUS_CODES = {
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


def _comparable(body: dict) -> dict:
    """A job body without the fields a re-submission may change (tags, description, display name)."""
    b = json.loads(json.dumps(body))
    props = b.get("properties", {})
    for k in ("tags", "description", "displayName"):
        props.pop(k, None)
    return b


#: Headers that carry credentials besides Authorization: recorded as present, never with their value.
_SECRET_HEADERS = frozenset({"x-azureml-token", "x-ms-authorization-auxiliary", "ocp-apim-subscription-key",
                             "api-key"})
#: Query parameters that carry credentials (a SAS signature): recorded as present, never with their value.
_SECRET_QUERY = frozenset({"sig", "signature"})


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms delayed-ACK stalls
    protocol_version = "HTTP/1.1"
    server_version = "azft-emulator/1"
    emulator: Emulator  # set on the bound subclass
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

    def _handle(self) -> None:
        path, _, qs = self.path.partition("?")
        path = unquote(path)
        query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        raw = self._read_body()
        headers = {k: ("[redacted]" if k.lower() in _SECRET_HEADERS else v)
                   for k, v in self.headers.items() if k.lower() != "authorization"}
        recorded_query = {k: ("[redacted]" if k.lower() in _SECRET_QUERY else v) for k, v in query.items()}
        if path.startswith(BLOB_PREFIX + "/"):
            # blob bodies are data, not JSON: recorded by size only
            rec = RecordedRequest(self.command, path, recorded_query, headers,
                                  f"<{len(raw)} bytes>" if raw else None, raw_query=query)
            result = self.emulator._dispatch_blob(rec, raw, dict(self.headers.items()),
                                                  self.headers.get("Authorization"))
        else:
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            rec = RecordedRequest(self.command, path, recorded_query, headers, body, raw_query=query)
            result = self.emulator._dispatch(rec, self.headers.get("Authorization"))
        if result is _DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        assert isinstance(result, Response)
        rec.status = result.status
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
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        length = result.headers.pop("Content-Length", None)  # HEAD of a blob: its size, with no body
        for k, v in result.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length if length is not None and self.command == "HEAD"
                                               else len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


__all__ = ["API_VERSIONS", "LIFECYCLE", "Emulator", "Fault", "RecordedRequest", "azure_error"]

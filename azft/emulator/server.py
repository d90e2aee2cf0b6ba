"""A loopback HTTPS emulator of the Azure ML REST API, for the real ``MLClient``.

It serves the routes azure-ai-ml 1.35 calls for azft's flows (``azft.emulator.routes``: workspace, datastores, jobs
with cancel LRO and paging, computes, components, codes with ``startPendingUpload``, marketplace subscriptions,
serverless endpoints, run history) plus a minimal Blob service under ``/_blob/`` (``azft.emulator.blobs``). Every
request body is held to Azure's REST contract (``azft.emulator.contract``) before it is accepted; every request is
recorded (minus the ``Authorization`` header); jobs move through their lifecycle on a controllable clock; faults are
injected per route. Unknown routes answer 404 with an Azure-shaped error body and are recorded in ``unmatched``.

The control API under ``/_emulator/`` (``azft.emulator.control``) exposes the same controls over HTTP, for the
standalone ``python -m azft.emulator``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from typing import Any

from azft.emulator.blobs import BlobError, BlobService, BlobStore
from azft.emulator.clients import EmulatorClients
from azft.emulator.faults import Fault
from azft.emulator.lifecycle import LIFECYCLE, Clock, EmulatedJob, ManualClock, Outcome
from azft.emulator.permissions import Permissions
from azft.emulator.routes import Router, all_routes
from azft.emulator.store import ResourceStore, asset_kind
from azft.emulator.tls import TestCA, make_test_ca
from azft.emulator.wire import PROVIDER, RecordedRequest, Response, azure_error, make_server

log = logging.getLogger("azft.emulator")

#: api-versions azure-ai-ml sends for azft's flows (see the wire notes; online endpoints and deployments go out at
#: 2022-02-01-preview); others get Azure's ``NoRegisteredProviderFound`` answer, naming the version.
API_VERSIONS: frozenset[str] = frozenset(
    {
        "2022-02-01-preview",
        "2023-04-01",
        "2023-04-01-preview",
        "2023-08-01-preview",
        "2024-01-01-preview",
        "2024-10-01-preview",
        "2025-01-01-preview",
    }
)

_STATES = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing", "CancelRequested")


class Emulator(EmulatorClients):
    """The Azure ML REST emulator. Use as a context manager, or ``start()`` / ``stop()``.

    ``clock="manual"`` (default) keeps every job where it is until ``advance()``; ``clock="real"`` moves jobs on
    their own every ``seconds_per_state`` seconds. ``strict=True`` (default) refuses request bodies Azure's
    contract refuses; ``roles`` (built-in role names) or ``allowed_actions`` (default: all) limit what the caller's identity
    may do (``azft.emulator.permissions``).
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
        strict: bool = True,
        allowed_actions: Iterable[str] | None = None,
        roles: Iterable[str] | None = None,
        ca: TestCA | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace
        self.location = location
        self.clock = _make_clock(clock)
        self.state_seconds = {k: float(seconds_per_state) for k in _STATES}
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
        self.strict = strict
        self.permissions = Permissions(allowed_actions, roles=roles)
        self.host = host
        self._port = port
        self._ca = ca
        self._own_ca = ca is None
        self.instance = next(self._instances)

        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, EmulatedJob] = {}
        self.store = ResourceStore(self)
        self.faults: list[Fault] = []
        self._pending_outcomes: list[Outcome] = []
        self._named_outcomes: dict[str, Outcome] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.served: list[Any] = []  # fixtures answering routes (azft.emulator.fixtures.ServedFixture)
        self._router = Router(all_routes())
        self._contract: Any = None

    # -- the resources, by kind ---------------------------------------------------------------------------------
    @property
    def computes(self) -> dict[str, dict[str, Any]]:
        return self.store.collection("computes")

    @property
    def marketplace_subscriptions(self) -> dict[str, dict[str, Any]]:
        return self.store.collection("marketplaceSubscriptions")

    @property
    def serverless_endpoints(self) -> dict[str, dict[str, Any]]:
        return self.store.collection("serverlessEndpoints")

    @property
    def assets(self) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
        """Versioned assets by kind ("components", "codes", "environments", "models", "data")."""
        return self.store.assets

    @property
    def components(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.store.assets["components"]

    @property
    def codes(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.store.assets["codes"]

    @property
    def environments(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.store.assets["environments"]

    @property
    def contract(self) -> Any:
        """Azure's REST contract, read from azure-ai-ml's generated models on first use."""
        if self._contract is None:
            from azft.emulator.contract import Contract

            self._contract = Contract.load()
        return self._contract

    # -- lifecycle of the server --------------------------------------------------------------------------------
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
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/{PROVIDER}"
            f"/workspaces/{self.workspace_name}"
        )

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._server = make_server(self, self.host, self._port, self.ca.server_context())
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
        """Forget requests, jobs, resources, faults, scripted outcomes and performed actions (the server, its port
        and its settings stay)."""
        with self._lock:
            self.requests.clear()
            self.jobs.clear()
            self.store.clear()
            self.faults.clear()
            self._pending_outcomes.clear()
            self._named_outcomes.clear()
            self.permissions.clear()
            self.served.clear()
            if self.blob_store.root is None:
                self.blob_store.clear()

    # -- controls -----------------------------------------------------------------------------------------------
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
        fault = Fault(route_regex, method, status, retry_after, times, drop_connection, delay, error_code, skip=skip)
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
        diverge_after: int | None = None,
    ) -> Outcome:
        """Decide how a job ends: ``kind`` fail/cancel/complete at state ``at``; ``diverge_after``: its losses rise
        after that step.

        With ``name`` the outcome applies to that job (existing or future); without, to the next job created.
        """
        outcome = Outcome(
            kind=kind, at=at, error_code=error_code, message=message, after=after, diverge_after=diverge_after
        )
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

    def serve_fixture(self, fixture: str, *, name: str | None = None, times: int | None = None, **values: str):
        """Answer the fixture's route (for resource ``name``, or any) with Azure's recorded response, ``times``
        times (None = always). ``values`` fill the fixture's placeholders besides the workspace's own."""
        from azft.emulator.fixtures import ServedFixture, load

        doc = load(fixture)
        served = ServedFixture(fixture, doc["route"], name, times, doc=doc)
        served.doc["values"] = values
        with self._lock:
            self.served.append(served)
        return served

    def fixture_answer(self, route: str, resource: str | None) -> Response | None:
        """The response of a served fixture for this route and resource, if one applies (called by the router
        once the request passed every check)."""
        served = next((s for s in self.served if s.matches(route, resource)), None)
        if served is None:
            return None
        values = {
            "workspace_id": self.workspace_id,
            "location": self.location,
            "name": resource or "",
            **served.doc.get("values", {}),
        }
        status, headers, body = served.answer(values)
        return Response(status, body, headers)

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
                    "scaleSettings": {
                        "maxNodeCount": max_nodes,
                        "minNodeCount": 0,
                        "nodeIdleTimeBeforeScaleDown": "PT120S",
                    },
                },
            },
        }
        with self._lock:
            self.computes[name] = self.store.shape("computes", name, body, provisioning="Succeeded")
            return self.computes[name]

    def add_asset(self, kind: str, name: str, version: str, properties: dict[str, Any] | None = None) -> dict:
        """Pre-create a versioned asset (e.g. ``add_asset("environments", "azft-train", "3", {"image": ...})``)."""
        with self._lock:
            return self.store.put_version(asset_kind(kind), name, version, {"properties": dict(properties or {})})[1]

    def requests_to(self, pattern: str, method: str | None = None) -> list[RecordedRequest]:
        rx = re.compile(pattern, re.IGNORECASE)
        with self._lock:
            return [r for r in self.requests if rx.search(r.path) and (method is None or r.method == method.upper())]

    @property
    def unmatched(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.route is None and not r.path.startswith("/_emulator/")]

    @property
    def performed_actions(self) -> list[str]:
        """The Azure RBAC actions requests performed ("Microsoft.MachineLearningServices/workspaces/jobs/write")."""
        return list(self.permissions.performed)

    # -- dispatch -----------------------------------------------------------------------------------------------
    def _job(self, name: str) -> EmulatedJob:
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"no job named {name!r} in the emulator") from None

    def is_our_workspace(self, g: dict[str, str]) -> bool:
        return (
            g["sub"].lower() == self.subscription_id.lower()
            and g["rg"].lower() == self.resource_group.lower()
            and g["ws"].lower() == self.workspace_name.lower()
        )

    def _record_and_fault(self, rec: RecordedRequest) -> Response | object | None:
        """Record the request; the response of an injected fault (or DROP), or None to handle it normally."""
        with self._lock:
            self.requests.append(rec)
            fault = None
            if not rec.path.startswith("/_emulator/"):
                fault = next((f for f in self.faults if f.matches(rec.method, rec.path)), None)
                if fault:
                    fault.hits += 1
                    rec.fault = True
        return fault.answer(rec) if fault is not None else None

    def dispatch_blob(
        self, rec: RecordedRequest, raw: bytes, headers: dict[str, str], authorization: str | None
    ) -> Response | object:
        """A request to the emulator's Blob service (``/_blob/...``); faults apply as to every other route."""
        rec.route = "blob"
        early = self._record_and_fault(rec)
        if early is not None:
            return early
        signed = "sig" in {k.lower() for k in (rec.raw_query or {})}
        if not self.permissions.check_blob(rec.method, rec.path, signed):
            err = BlobError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
            return Response(403, err.body(), {"x-ms-error-code": err.code, "Content-Type": "application/xml"})
        resp = self.blob_service.handle(rec.method, rec.path, rec.raw_query, headers, raw, authorization)
        return Response(resp.status, resp.body, dict(resp.headers))

    def dispatch(self, rec: RecordedRequest, authorization: str | None) -> Response | object:
        early = self._record_and_fault(rec)
        if early is not None:
            return early
        return self._router.dispatch(self, rec, authorization)


def _make_clock(clock: str | Clock) -> Clock:
    if isinstance(clock, Clock):
        return clock
    if clock == "manual":
        return ManualClock()
    if clock == "real":
        return Clock()
    raise ValueError("clock must be 'manual', 'real' or a Clock")


__all__ = ["API_VERSIONS", "LIFECYCLE", "Emulator", "Fault", "RecordedRequest", "azure_error"]

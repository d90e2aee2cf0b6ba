"""The `mock` backend: the real maas/maap code against an Azure ML emulator started in this process.

``azft submit spec.yaml --backend mock`` runs exactly what ``--backend maas`` (or ``maap``, from ``mock.target``)
runs — the same job builders, the same ``MLClient`` calls over HTTPS — but the workspace is
``azft.emulator.Emulator``. Jobs move through NotStarted → Queued → Preparing → Running → Finalizing → Completed on
a wall clock (``mock.seconds_per_state`` seconds each), simulated loss curves are served as the job's metrics, and
every request that would have gone to Azure is saved, secrets redacted, in ``.azft/mock/jobs/<job>/requests.json``
(``JobInfo.extra["requests_file"]``, ``job.artifacts()``) for the orchestrator to log as an MLflow artifact.

Commands run in separate processes (``azft submit`` then ``azft status JOB``), so the emulated workspace lives on
disk in ``.azft/mock/state.json`` (written atomically, mode 0600, under a lock): jobs with their creation times and
scripted outcomes, clusters and subscriptions. Each command starts a fresh emulator, loads that state (under a file lock), works, and
saves it; a job's state is a function of the clock, so every process gives the same answer. Data files are
"uploaded" into ``.azft/mock/datastore/`` (content-addressed like the real datastore) unless a blob endpoint is
configured (``blob_endpoint=`` or ``AZFT_MOCK_BLOB_ENDPOINT``, e.g. Azurite). With ``mock.target: maap`` the SDK
uploads each component's code through the emulator's ``startPendingUpload`` SAS into its Blob service, which keeps
the blobs in ``.azft/mock/datastore/`` too: a later process finds the code by its content hash and uploads nothing.

Faults (``mock.faults`` in the spec, or ``faults=`` from flags) belong to the submission that asked for them: HTTP
faults affect that submit's own requests and are dropped when it ends (unused hits do not spill into later, unrelated
commands such as ``azft list``); job outcomes (``job_error``, ``cancel``) are scripted on that job only. What a CI sees:

=====================  ==========================================================================  =========
kind                   what happens                                                                exit code
=====================  ==========================================================================  =========
job_error              the job fails at ``state`` with ``error`` (QuotaExceeded, Unauthorized,     1
                       ModelNotAvailableInRegion, OutOfMemory, UserError for invalid_data)
cancel                 the job is cancelled at ``state``                                           3
http_error 429/5xx     ``times`` requests on ``route`` answer ``status`` (with ``retry_after``);   0
                       azure-core retries them (more than 4 in a row exhaust the retries: 4)
http_error 4xx         the request fails for good (401 unauthorized, 403, 404, 409...)             4
drop_connection        ``times`` connections are reset; retried like 5xx                           0
slow_response          ``times`` answers come ``delay`` seconds late                               0
diverge                the job completes, but its losses rise after ``step`` (early stopping,      0
                       loss alerts)
=====================  ==========================================================================  =========
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from azft.azure.upload import BlobUploader, DirectoryUploader
from azft.backends.azureml import AzureBackend, AzureJob, requests_to_json
from azft.backends.base import Backend, JobInfo
from azft.errors import UsageError
from azft.redact import redact
from azft.state import check_job_name, mock_dir, write_private

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan

STATE_VERSION = 1
#: The emulated workspace when neither the spec, ``AZURE_*`` nor ``config.json`` names one.
DEFAULT_WORKSPACE = {
    "subscription_id": "00000000-0000-4000-8000-000000000001",
    "resource_group": "rg-azft",
    "workspace": "ws-azft",
    "region": "eastus2",
}
DEFAULT_SOURCE = "the mock backend's default emulated workspace"
MOCK_RETRY_TOTAL = 4
MOCK_RETRY_BACKOFF = 0.05
#: Fault error names (spec) → the Azure error codes a failed job reports.
JOB_ERROR_CODES = {
    "quota_exceeded": ("QuotaExceeded", None),
    "unauthorized": ("Unauthorized", None),
    "model_not_available_in_region": ("ModelNotAvailableInRegion", None),
    "out_of_memory": ("OutOfMemory", None),
    "invalid_data": (
        "UserError",
        "Invalid training data: line 1 of the training file is not a valid chat example "
        '(expected {"messages": [...]}).',
    ),
}


def _wall_clock():
    from azft.emulator.lifecycle import Clock

    class WallClock(Clock):
        """Seconds since the epoch: the same clock in every process, so saved jobs keep their timelines."""

        def now(self) -> float:
            return time.time()

    return WallClock()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class MockWorkspace:
    """An emulator whose workspace state is kept in a directory between processes."""

    def __init__(self, root: Optional[Path] = None, seconds_per_state: float = 1.0, ref: Any = None):
        base = Path(root) if root else mock_dir()
        #: The workspace this emulator plays (resolved like the real one's); each has its own saved state.
        self.ref = ref
        self.root = base if ref is None or _is_default(ref) else base / "workspaces" / _workspace_dirname(ref)
        self.seconds_per_state = seconds_per_state
        self._emulator = None
        self._depth = 0
        #: One session at a time in this process too (a sweep submits from several threads): the holder's thread
        #: re-enters, the others wait their turn, as other processes do on the file lock.
        self._thread_lock = threading.RLock()

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def emulator(self):
        with self._thread_lock:
            return self._started_emulator()

    def _started_emulator(self):
        if self._emulator is None:
            from azft.emulator.server import Emulator

            # blobs (component code uploaded through startPendingUpload SAS URIs) live next to the directory
            # datastore, so a later process finds an upload by its content hash like Azure does
            ref = self.ref
            identity = (
                {}
                if ref is None
                else {
                    "subscription_id": ref.subscription_id,
                    "resource_group": ref.resource_group,
                    "workspace": ref.workspace,
                    "location": ref.region or DEFAULT_WORKSPACE["region"],
                }
            )
            self._emulator = Emulator(
                clock=_wall_clock(),
                seconds_per_state=self.seconds_per_state,
                ca=self._ca(),
                lro_retry_after=0.01,
                blob_root=self.root / "datastore",
                **identity,
            )
            self._emulator.start()
            self._load()
        return self._emulator

    def _ca(self):
        from azft.emulator.tls import TestCA, make_test_ca

        d = self.root / "ca"
        paths = (d / "ca.pem", d / "cert.pem", d / "key.pem")
        if all(p.is_file() for p in paths):
            return TestCA(directory=d, ca_pem_path=paths[0], cert_pem_path=paths[1], key_pem_path=paths[2])
        return make_test_ca(d)

    def stop(self) -> None:
        with self._thread_lock:
            if self._emulator is not None:
                self._emulator.stop()
                self._emulator = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Load the saved workspace, run one command against it, save it; one process at a time.

        Re-entrant: a nested session (a status that reads metrics) joins the one already open; another thread's
        session waits until this one is saved.
        """
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.emulator
                finally:
                    self._depth -= 1
                return
            with self._file_session() as em:
                yield em

    @contextlib.contextmanager
    def _file_session(self) -> Iterator[Any]:
        with _locked(self.root / "lock"):
            em = self.emulator
            self._load()
            em.requests.clear()
            self._depth = 1
            try:
                yield em
            finally:
                self._depth = 0
                self._save()

    # -- persistence ---------------------------------------------------------------------------------------------
    def _load(self) -> None:
        from azft.emulator.lifecycle import EmulatedJob, Outcome
        from azft.emulator.server import Fault

        em = self._emulator
        if not self.state_file.is_file():
            return
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{self.state_file}: the mock workspace state is unreadable ({exc})",
                hint=f"delete {self.root} to start a fresh mock workspace",
            ) from None
        em.jobs.clear()
        for j in state.get("jobs", []):
            em.jobs[j["name"]] = EmulatedJob(
                name=j["name"],
                body=j["body"],
                created_at=j["created_at"],
                created_wall=j["created_wall"],
                outcome=Outcome(**j["outcome"]),
                state_seconds=j["state_seconds"],
                cancel_requested_at=j.get("cancel_requested_at"),
                total_steps=j.get("total_steps", 50),
                api_version=j.get("api_version"),
            )
        for attr in ("computes", "marketplace_subscriptions", "serverless_endpoints"):
            store = getattr(em, attr)
            store.clear()
            store.update(state.get(attr, {}))
        for kind, items in (state.get("named") or {}).items():  # online endpoints, their deployments, ...
            store = em.store.collection(kind)
            store.clear()
            store.update(items)
        for attr in ("components", "codes"):
            store = getattr(em, attr)
            store.clear()
            for key, value in state.get(attr, {}).items():
                name, _, version = key.rpartition("|")
                store[(name, version)] = value
        em.faults.clear()
        for f in state.get("faults", []):
            fault = Fault(**{k: v for k, v in f.items() if k != "hits"})
            fault.hits = f.get("hits", 0)
            em.faults.append(fault)

    def _save(self) -> None:
        from dataclasses import asdict

        em = self._emulator
        if em is None:
            return
        state = {
            "version": STATE_VERSION,
            "jobs": [
                {
                    "name": j.name,
                    "body": j.body,
                    "created_at": j.created_at,
                    "created_wall": j.created_wall,
                    "outcome": asdict(j.outcome),
                    "state_seconds": j.state_seconds,
                    "cancel_requested_at": j.cancel_requested_at,
                    "total_steps": j.total_steps,
                    "api_version": j.api_version,
                }
                for j in em.jobs.values()
            ],
            "computes": em.computes,
            "marketplace_subscriptions": em.marketplace_subscriptions,
            "serverless_endpoints": em.serverless_endpoints,
            "named": {
                k: v
                for k, v in em.store.named.items()
                if k not in ("computes", "marketplaceSubscriptions", "serverlessEndpoints")
            },
            "components": {f"{n}|{v}": body for (n, v), body in em.components.items()},
            "codes": {f"{n}|{v}": body for (n, v), body in em.codes.items()},
            "faults": [f.to_dict() for f in em.faults if f.times is None or f.hits < f.times],
        }
        write_private(self.state_file, json.dumps(state, default=str))

    # -- per-job request logs -----------------------------------------------------------------------------------
    def requests_file(self, job: str) -> Path:
        return self.root / "jobs" / check_job_name(job) / "requests.json"

    def record(self, job: str, command: str, records: list[Any]) -> Path:
        """Append a command's requests (secrets redacted) to the job's requests.json."""
        path = self.requests_file(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = []
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except ValueError:
                existing = []
        for r in requests_to_json(records):
            r["command"] = command
            existing.append(redact(r))
        write_private(path, json.dumps(existing, indent=1))
        return path


def _is_default(ref: Any) -> bool:
    return all(getattr(ref, k) == DEFAULT_WORKSPACE[k] for k in ("subscription_id", "resource_group", "workspace"))


def _workspace_dirname(ref: Any) -> str:
    """A directory name for a workspace: readable, and safe whatever characters the names hold."""
    import hashlib
    import re

    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", ref.workspace)[:40] or "ws"
    return f"{readable}-{hashlib.sha256(ref.arm_id.lower().encode()).hexdigest()[:12]}"


def resolve_mock_workspace(explicit: Optional[dict] = None) -> Any:
    """The workspace the mock emulates: the same order as maas/maap, then the default emulated workspace."""
    from azft.azure.workspace import FIELDS, resolve_workspace

    return resolve_workspace(
        {k: v for k, v in (explicit or {}).items() if k in FIELDS},
        defaults=DEFAULT_WORKSPACE,
        defaults_source=DEFAULT_SOURCE,
    )


def _inner_class(target: str):
    if target == "maas":
        from azft.backends.maas import MaasBackend

        return MaasBackend
    if target == "maap":
        from azft.backends.maap import MaapBackend

        return MaapBackend
    raise UsageError(f"mock.target must be maas or maap, not {target!r}")


class MockJob(AzureJob):
    """An AzureJob whose every call runs inside a mock workspace session (load state, call, save, record)."""

    def __init__(self, mock: "MockBackend", inner: AzureBackend, name: str, **kwargs: Any):
        self._mock = mock
        super().__init__(inner, name, **kwargs)
        self.backend = "mock"

    @property  # type: ignore[override]
    def _backend(self) -> AzureBackend:
        """The real backend aimed at the mock workspace's current emulator (a new one after ``close()``)."""
        return self._mock.inner(self._target)

    @_backend.setter
    def _backend(self, backend: AzureBackend) -> None:
        self._target = backend.target

    def info(self) -> JobInfo:
        with self._mock._command(self.name, "status"):
            info = super().info()
        info.backend = "mock"
        info.extra["requests_file"] = str(self._mock.workspace.requests_file(self.name))
        return info

    def cancel(self) -> None:
        with self._mock._command(self.name, "cancel"):
            super().cancel()

    def _read_logs(self) -> list[str]:
        # one session per read of run history (state loaded, requests recorded): a follow sees the clock move
        with self._mock._command(self.name, None):
            return super()._read_logs()

    def metrics_history(self) -> dict[str, list[tuple[int, float]]]:
        with self._mock._command(self.name, None):
            return self._backend.job_metrics(self.name)

    def artifacts(self) -> list[Path]:
        p = self._mock.workspace.requests_file(self.name)
        return [p] if p.is_file() else []


class MockBackend(Backend):
    name = "mock"
    uses_workspace = True
    listed_by_default = True
    lookup_keys = ("workspace", "target")

    @classmethod
    def target_for(cls, spec: Any) -> str:
        return spec.mock.target

    def __init__(
        self,
        target: Optional[str] = None,
        seconds_per_state: Optional[float] = None,
        faults: Optional[list] = None,
        state_dir: Optional[str] = None,
        blob_endpoint: Optional[str] = None,
        retry_total: int = MOCK_RETRY_TOTAL,
        on_event: Any = None,
        workspace: Optional[dict] = None,
        **options: Any,
    ):
        self.target = target
        self.seconds_per_state = seconds_per_state
        self.extra_faults = list(faults or [])
        #: The Azure ML workspace being emulated, resolved like maas/maap resolve theirs.
        self.ws_ref = resolve_mock_workspace(workspace)
        self.workspace = MockWorkspace(
            Path(state_dir) if state_dir else None,
            seconds_per_state if seconds_per_state is not None else 1.0,
            ref=self.ws_ref,
        )
        self.blob_endpoint = blob_endpoint or os.environ.get("AZFT_MOCK_BLOB_ENDPOINT")
        self.retry_total = retry_total
        self.on_event = on_event
        self.options = options
        self._inner: dict[str, AzureBackend] = {}

    # -- the real backend, aimed at the emulator -------------------------------------------------------------
    def inner(self, target: str) -> AzureBackend:
        with self.workspace._thread_lock:
            return self._inner_locked(target)

    def _inner_locked(self, target: str) -> AzureBackend:
        if target not in self._inner:
            em = self.workspace.emulator
            client = em.make_ml_client(retry_total=self.retry_total, retry_backoff_factor=MOCK_RETRY_BACKOFF)
            if self.blob_endpoint:
                uploader = BlobUploader(
                    credential=em.make_credential(),
                    blob_endpoint=self.blob_endpoint,
                    progress=False,
                    connection_verify=em.ca_pem_path,
                )
            else:
                uploader = DirectoryUploader(self.workspace.root / "datastore")
            cls = _inner_class(target)
            kwargs: dict[str, Any] = {
                "ml_client": client,
                "uploader": uploader,
                "on_event": self.on_event,
                "ca_bundle": em.ca_pem_path,
            }
            if target == "maap":
                kwargs["create_missing_cluster"] = True
            backend = cls(**kwargs)
            backend._ws_ref = self.ws_ref
            backend.name = "mock"
            backend.poll_interval = 1.0
            self._inner[target] = backend
        return self._inner[target]

    @contextlib.contextmanager
    def _command(self, job: Optional[str], command: Optional[str]) -> Iterator[Any]:
        with self.workspace.session() as em:
            try:
                yield em
            finally:
                if job and command and em.requests:
                    self.workspace.record(job, command, list(em.requests))

    def _target_of(self, name: str) -> str:
        if self.target:
            return self.target
        job = self.workspace.emulator.jobs.get(name)
        if job is not None:
            props = job.body.get("properties", {})
            managed = (props.get("properties") or {}).get("_fineTuningJobType") == "MaaP"
            return "maas" if props.get("jobType") == "FineTuning" and not managed else "maap"
        return "maas"

    # -- faults -------------------------------------------------------------------------------------------------
    def _apply_http_faults(self, em: Any, faults: list) -> None:
        for f in faults:
            f = _fault_dict(f)
            kind = f.get("kind")
            if kind == "http_error":
                em.inject(
                    f.get("route", "jobs"),
                    method=f.get("method"),
                    status=f.get("status", 503),
                    retry_after=f.get("retry_after"),
                    times=f.get("times", 1),
                )
            elif kind == "drop_connection":
                em.inject(f.get("route", "jobs"), method=f.get("method"), drop_connection=True, times=f.get("times", 1))
            elif kind == "slow_response":
                em.inject(
                    f.get("route", "jobs"), method=f.get("method"), delay=f.get("delay", 2.0), times=f.get("times", 1)
                )

    def _script_outcome(self, em: Any, faults: list, name: str) -> None:
        found = [_fault_dict(f) for f in faults]
        diverge = next((f.get("step", 10) for f in found if f.get("kind") == "diverge"), None)
        for f in found:
            if f.get("kind") == "job_error":
                code, message = JOB_ERROR_CODES[f.get("error", "out_of_memory")]
                em.script_job(name, "fail", f.get("state", "Running"), code, message, diverge_after=diverge)
                return
            if f.get("kind") == "cancel":
                em.script_job(name, "cancel", f.get("state", "Running"), diverge_after=diverge)
                return
        if diverge is not None:
            em.script_job(name, "complete", diverge_after=diverge)

    # -- Backend protocol ---------------------------------------------------------------------------------------
    def destination(self) -> dict[str, Any]:
        return {**self.ws_ref.to_dict(), "emulated": True}

    def lookup_options(self, plan: "Plan") -> dict[str, Any]:
        return {"workspace": self.ws_ref.values(), "target": plan.target}

    def render(self, plan: "Plan") -> dict:
        """What the emulated maas/maap backend would send: the same job it renders for Azure."""
        return _inner_class(plan.target)().render(plan)

    def submit(self, plan: "Plan", *, force: bool = False) -> MockJob:
        target = self.target or plan.target
        if target not in ("maas", "maap"):
            target = plan.spec.mock.target
        if plan.target != target:
            raise UsageError(
                f"this plan targets {plan.target}, but the mock backend was asked for {target}",
                hint="set mock.target in the spec",
            )
        seconds = self.seconds_per_state if self.seconds_per_state is not None else plan.spec.mock.seconds_per_state
        faults = [*plan.spec.mock.faults, *self.extra_faults]
        backend = self.inner(target)
        recorded_name = plan.job_name
        with self._command(None, None) as em:
            for state in list(em.state_seconds):
                em.state_seconds[state] = float(seconds)
            before = list(em.faults)
            self._apply_http_faults(em, faults)
            backend.before_create = lambda p, name: self._script_outcome(em, faults, name)
            from azft.emulator.permissions import Permissions

            everything = em.permissions
            if plan.spec.mock.roles is not None:
                if target == "maap" and not plan.spec.compute.create_cluster:
                    backend.prepare(plan)  # the cluster an infra deployment provides, made with the deployer's rights
                    em.requests.clear()  # ... and not one of the identity's requests
                em.permissions = Permissions(roles=plan.spec.mock.roles)
            try:
                job = backend.submit(plan, force=force)
                recorded_name = job.name
            finally:
                backend.before_create = None
                em.permissions = everything
                em.faults[:] = before  # this submission's HTTP faults end with it
                if em.requests:
                    self.workspace.record(
                        plan.job_name if recorded_name is None else recorded_name, "submit", list(em.requests)
                    )
        return MockJob(self, backend, job.name, upload=job.upload, existed=job.existed)

    def get_job(self, name: str) -> MockJob:
        check_job_name(name)
        with self._command(name, None):
            target = self._target_of(name)
            if name not in self.workspace.emulator.jobs:
                raise UsageError(
                    f"no mock job named {name!r} in {self.workspace.root}",
                    hint="`azft list --backend mock` shows the mock workspace's jobs",
                )
        return MockJob(self, self.inner(target), name)

    def list_jobs(self, limit: int = 50) -> list[JobInfo]:
        if not self.workspace.state_file.is_file():
            return []
        backend = self.inner(self.target or "maas")
        with self._command(None, None):
            infos = backend.list_jobs(limit=limit)
        for i in infos:
            i.backend = "mock"
        return infos

    def close(self) -> None:
        self.workspace.stop()
        self._inner.clear()  # their clients point at the stopped emulator's port


def _fault_dict(f: Any) -> dict:
    if hasattr(f, "model_dump"):
        return f.model_dump()
    if isinstance(f, dict):
        return f
    raise UsageError(f"a mock fault must be a mapping, got {type(f).__name__}")

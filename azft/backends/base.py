"""The backend protocol and the one Job handle every backend returns.

A backend turns a Plan into a running job (``submit``) and can find that job again later by its name
(``get_job``), so ``azft status/wait/logs/cancel`` work in a new process. Modeled on MLflow Projects'
``SubmittedRun``: one handle, local or remote.
"""

from __future__ import annotations

import enum
import importlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan


class JobStatus(str, enum.Enum):
    """Azure ML's job states. A state azft does not know (a newer service, or ``Created`` from the REST examples)
    keeps its own name and counts as not finished."""

    CREATED = "Created"  # the job exists and has not started (Azure's REST examples for FineTuning jobs)
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    PROVISIONING = "Provisioning"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"
    PAUSED = "Paused"
    UNKNOWN = "Unknown"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)

    @classmethod
    def parse(cls, value: str | None) -> "JobStatus":
        if not value:
            return cls.UNKNOWN
        return cls(str(value))

    @classmethod
    def _missing_(cls, value: object) -> "JobStatus | None":
        if not isinstance(value, str) or not value.strip():
            return None
        for s in cls:
            if s.value.lower() == value.lower():
                return s
        # a state this version of azft does not know: shown under its own name, never terminal
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member


@dataclass
class JobInfo:
    """A snapshot of a job, the same shape for every backend (what `azft status --output json` prints)."""

    name: str
    backend: str
    status: JobStatus
    created: str | None = None
    studio_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from azft.render import timestamp

        d = dict(self.__dict__)
        d["status"] = self.status.value
        d["created"] = timestamp(self.created)
        return d


class Job(ABC):
    """Handle to a submitted job. Every backend returns a subclass of this."""

    backend: str
    name: str

    @abstractmethod
    def info(self) -> JobInfo:
        """Fetch the current state (one round trip for remote backends)."""

    def status(self) -> JobStatus:
        return self.info().status

    @abstractmethod
    def cancel(self) -> None: ...

    @abstractmethod
    def logs(self, follow: bool = False) -> Iterator[str]:
        """Yield log lines; with follow, keep yielding until the job ends."""

    def metrics_history(self) -> dict[str, list[tuple[int, float]]]:
        """Per-step metrics when the backend knows them: {"loss": [(step, value), ...]}."""
        return {}

    def wait(
        self,
        timeout: float | None = None,
        poll_interval: float = 5.0,
        on_update: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Poll until the job ends or ``timeout`` seconds pass. Safe to interrupt and call again."""
        from azft.errors import JobCancelledError

        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            info = self.info()
            if on_update and (last is None or info.status != last):
                on_update(info)
            last = info.status
            if info.status.terminal:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise JobCancelledError(
                    f"timed out after {timeout:g}s waiting for job {self.name} (still {info.status.value})",
                    hint=f"the job keeps running; `azft wait {self.name}` resumes watching it",
                )
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic())))


class Backend(ABC):
    """A place jobs run. A new backend is one module plus one line in ``BACKENDS``.

    Modeled on SkyPilot's backend interface: the backend, not the plan, decides what its dry-run shows
    (``render``), so the plan stays a pure description of the job.
    """

    name: str
    #: The backend talks to an Azure ML workspace: its options carry the spec's ``azure:`` section.
    uses_workspace: bool = False
    #: ``azft list`` without ``--backend`` shows its jobs (their state is on this machine).
    listed_by_default: bool = False

    @classmethod
    def target_for(cls, spec: Any) -> str:
        """The path whose rules the plan checks (the mock backend emulates maas or maap)."""
        return cls.name

    @abstractmethod
    def render(self, plan: "Plan") -> Any:
        """The dry-run: what ``submit(plan)`` would send or run, as plain data (no network, nothing written)."""

    @abstractmethod
    def submit(self, plan: "Plan", *, force: bool = False) -> Job:
        """Run the plan. Idempotent: an identical plan finds the existing job unless ``force``."""

    @abstractmethod
    def get_job(self, name: str) -> Job: ...

    @abstractmethod
    def list_jobs(self, limit: int = 50) -> list[JobInfo]: ...

    #: The constructor options ``lookup_options`` records (what ``azft status JOB`` passes back).
    lookup_keys: tuple[str, ...] = ()

    def destination(self) -> dict[str, Any] | None:
        """Where a submit would go (the Azure ML workspace and where each value came from); None for this machine."""
        return None

    def lookup_options(self, plan: "Plan") -> dict[str, Any]:
        """Constructor options that find a submitted job again from another process (kept with the submission)."""
        return {}


#: The registry: every list of backends (CLI choices, plan, CI helpers) derives from it.
BACKENDS: dict[str, str] = {
    "local": "azft.backends.local:LocalBackend",
    "maas": "azft.backends.maas:MaasBackend",
    "maap": "azft.backends.maap:MaapBackend",
    "mock": "azft.backends.mock:MockBackend",
}


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    from azft.errors import UsageError

    try:
        target = BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKENDS)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_backend(name: str, **kwargs: Any) -> Backend:
    return backend_class(name)(**kwargs)

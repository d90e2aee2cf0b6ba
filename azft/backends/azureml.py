"""What the maas and maap backends share: submit (idempotent), the job handle, uploads, error mapping.

Submit, in order, with nothing uploaded or created until every check passed:

1. ``GET jobs/<name>`` — the name comes from the spec's content hash, so a CI retry finds its job and stops here
   (no upload, no PUT). ``force`` submits a new job under a suffixed name instead.
2. The workspace's region (``GET workspace``) against the catalog's serverless regions (maas).
3. Target preparation: the marketplace subscription of a third-party model (maas); the cluster exists with an
   allowed VM size, or is created with min 0 nodes (maap).
4. Local data files go to the default datastore under ``azft/data/<sha256>/<name>``; a blob already there is
   skipped, so a re-submit uploads zero bytes.
5. ``PUT jobs/<name>`` with the entity from ``azft.azure.jobs``.

Transient failures (429 with Retry-After, 5xx, connection resets) are retried by azure-core's ``RetryPolicy``
configured on the ``MLClient``; what still fails becomes ``azft.errors.AzureError`` (exit 4) with a message that
says what to do.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from azft.azure.errors import HINTS_BY_TARGET, call, is_not_found, job_error_text, map_error
from azft.azure.sdk import client_credential, run_history, run_history_client
from azft.azure.upload import BlobUploader, DatastoreInfo, Uploader, UploadResult
from azft.azure.sdk import quiet as quiet_sdk
from azft.backends.base import Backend, Job, JobInfo, JobStatus
from azft.errors import AzftError, AzureError, IncompatibleError, UsageError
from azft.metrics import canonical
from azft.render import timestamp

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan


def _norm_region(region: str) -> str:
    return region.lower().replace(" ", "")


def parse_status(value: Any) -> JobStatus:
    """The SDK hands back its own enum (``JobStatus.NOT_STARTED``) or a string; both map to ours."""
    return JobStatus.parse(getattr(value, "value", value))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@contextlib.contextmanager
def sdk_console() -> Iterator[None]:
    """Keep azure-ai-ml's console decoration off stderr while a call runs.

    Its code upload prints a progress bar per folder (``show_progress`` must stay on: with it off, azure-ai-ml
    1.35 loses the error of a failed blob upload and waits forever), a colour reset and blank lines. Those are
    dropped; whatever else it prints still reaches stderr afterwards (secrets redacted).
    """
    import io
    import sys

    from azft.redact import redact_text

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        try:
            yield
        finally:
            text = "\n".join(
                line
                for line in _ANSI.sub("", buf.getvalue()).splitlines()
                if line.strip() and not line.startswith("Uploading ")
            )
            if text:
                print(redact_text(text), file=sys.stderr)


_CA_LOCK = threading.RLock()


@contextlib.contextmanager
def trust_ca(ca_bundle: Optional[str]) -> Iterator[None]:
    """Trust ``ca_bundle`` on top of the usual roots while the block runs (nothing happens without one).

    ``jobs.create_or_update`` of a pipeline uploads each component's ``code:`` folder through azure-storage-blob
    clients that azure-ai-ml builds itself from a SAS URI, without the ``MLClient``'s ``connection_verify``. Those
    clients verify TLS through ``requests``, which reads ``REQUESTS_CA_BUNDLE``: for the duration of the call it
    names a bundle of the roots already in use (``REQUESTS_CA_BUNDLE`` or certifi's) plus ``ca_bundle``.
    """
    if not ca_bundle:
        yield
        return
    import hashlib
    import os
    import tempfile

    import certifi

    with _CA_LOCK:
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        base = previous if previous and Path(previous).is_file() else certifi.where()
        try:
            pem = Path(base).read_bytes().rstrip(b"\n") + b"\n" + Path(ca_bundle).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"the CA bundle {ca_bundle} cannot be read ({exc.strerror})",
                hint="AZFT_AZURE_CA_BUNDLE must name the emulator's CA certificate (PEM)",
            ) from None
        target = Path(tempfile.gettempdir()) / f"azft-ca-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
        if not target.is_file() or target.read_bytes() != pem:
            tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
            tmp.write_bytes(pem)
            os.replace(tmp, target)
        os.environ["REQUESTS_CA_BUNDLE"] = str(target)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous


def where_it_runs(job: Any) -> dict[str, Any]:
    """A fine-tuning job's compute, instance types, queue tier and Azure's own job kind (``_fineTuningJobType``:
    MaaP on the user's compute), as Azure returns them; empty for what a job does not say."""
    out: dict[str, Any] = {}
    props = getattr(job, "properties", None) or {}
    kind = props.get("_fineTuningJobType") if isinstance(props, dict) else None
    if kind:
        out["finetuning_job_type"] = kind
    compute = getattr(job, "compute", None)
    if isinstance(compute, str) and compute:
        out["compute"] = compute.rsplit("/", 1)[-1]
    types = getattr(getattr(job, "resources", None), "instance_types", None)
    if types and isinstance(types, (list, tuple)):
        out["instance_types"] = [str(t) for t in types]
    tier = getattr(getattr(job, "queue_settings", None), "job_tier", None)
    if tier:
        out["job_tier"] = str(tier)[:1].upper() + str(tier)[1:]  # Azure's spelling (the SDK lower-cases it)
    return out


# ----------------------------------------------------------------------------------------------------------------
# The job handle
# ----------------------------------------------------------------------------------------------------------------


class AzureJob(Job):
    """A job in an Azure ML workspace (or the emulator standing in for one)."""

    def __init__(
        self, backend: "AzureBackend", name: str, *, upload: Optional[UploadResult] = None, existed: bool = False
    ):
        self._backend = backend
        self.backend = backend.name
        self.name = name
        self.upload = upload
        self.existed = existed

    # -- state --------------------------------------------------------------------------------------------------
    def _entity(self):
        with quiet_sdk():
            return call(f"reading job {self.name}", self._backend.ml_client.jobs.get, self.name)

    def info(self) -> JobInfo:
        job = self._entity()
        status = parse_status(getattr(job, "status", None))
        created = None
        ctx = getattr(job, "creation_context", None)
        if ctx is not None and getattr(ctx, "created_at", None):
            created = timestamp(ctx.created_at)
        outputs: dict[str, str] = {}
        for key, out in (getattr(job, "outputs", None) or {}).items():
            name = getattr(out, "name", None) or getattr(out, "path", None)
            if name:
                outputs[key] = str(name)
        tags = dict(getattr(job, "tags", None) or {})
        info = JobInfo(
            name=self.name,
            backend=self.backend,
            status=status,
            created=created,
            studio_url=getattr(job, "studio_url", None),
            outputs=outputs,
            mlflow_run_id=tags.get("azft.mlflow_run_id"),
            extra={"target": self._backend.target, "job_type": getattr(job, "type", None), **where_it_runs(job)},
        )
        if self.upload is not None:
            info.extra["bytes_uploaded"] = self.upload.bytes_uploaded
        if self.existed:
            info.extra["existing"] = True
        if status in (JobStatus.FAILED, JobStatus.CANCELED):
            info.outputs = {}  # declared, never written: a failed job registered no model
        if status == JobStatus.FAILED:
            code, message = self._backend.job_error(self.name)
            info.error_code = code
            info.error = job_error_text(code, message, self.name, target=self._backend.target)
        if status == JobStatus.COMPLETED:
            info.metrics = {k: v[-1][1] for k, v in self.metrics_history().items() if v}
        self._backend.decorate_info(info)
        return info

    def cancel(self) -> None:
        with quiet_sdk():
            poller = call(f"cancelling job {self.name}", self._backend.ml_client.jobs.begin_cancel, self.name)
            if poller is not None and hasattr(poller, "result"):
                call(f"cancelling job {self.name}", poller.result)
        self._backend.after_command()

    def logs(self, follow: bool = False) -> Iterator[str]:
        seen = 0
        while True:
            lines = self._read_logs()
            for line in lines[seen:]:
                yield line
            seen = max(seen, len(lines))
            if not follow:
                return
            if self.info().status.terminal:
                for line in self._read_logs()[seen:]:
                    yield line
                return
            time.sleep(self._backend.poll_interval)

    def _read_logs(self) -> list[str]:
        return self._backend.job_logs(self.name)

    def metrics_history(self) -> dict[str, list[tuple[int, float]]]:
        return self._backend.job_metrics(self.name)

    def artifacts(self) -> list[Path]:
        return self._backend.job_artifacts(self.name)


# ----------------------------------------------------------------------------------------------------------------
# The backend
# ----------------------------------------------------------------------------------------------------------------


class AzureBackend(Backend):
    """Shared by MaasBackend and MaapBackend; subclasses set ``name``/``target`` and ``prepare()``."""

    name = "azure"
    target = "maas"
    poll_interval = 5.0
    uses_workspace = True
    lookup_keys = ("workspace",)

    def __init__(
        self,
        workspace: Optional[dict] = None,
        credential: Any = None,
        ml_client: Any = None,
        uploader: Optional[Uploader] = None,
        on_event: Optional[Callable[[str], None]] = None,
        retry_total: Optional[int] = None,
        progress: bool = True,
        ca_bundle: Optional[str] = None,
        **options: Any,
    ):
        import os

        self.workspace = dict(workspace or {})
        #: A CA certificate to trust besides the public roots (a loopback emulator's), for every HTTPS call of a
        #: submit, including the storage clients azure-ai-ml creates itself to upload component code.
        self.ca_bundle = ca_bundle or os.environ.get("AZFT_AZURE_CA_BUNDLE") or None
        self.credential = credential
        self._ml_client = ml_client
        self._uploader = uploader
        self.on_event = on_event or (lambda msg: None)
        self.retry_total = retry_total
        self.progress = progress
        self.options = options
        self._region: Optional[str] = None
        self._ws_ref: Any = None
        #: Called after the existence check, right before the job is created (the mock scripts outcomes here).
        self.before_create: Optional[Callable[["Plan", str], None]] = None

    # -- clients ------------------------------------------------------------------------------------------------
    def workspace_ref(self):
        """The workspace a submit goes to: the spec's ``azure:`` values, then ``AZURE_*``, then ``config.json``."""
        if self._ws_ref is None:
            from azft.azure import workspace as wsmod

            if self._ml_client is not None and not self.workspace:
                c = self._ml_client
                given = "the MLClient given to the backend"
                self._ws_ref = wsmod.WorkspaceRef(
                    c.subscription_id,
                    c.resource_group_name,
                    c.workspace_name,
                    None,
                    {"subscription_id": given, "resource_group": given, "workspace": given},
                )
            else:
                self._ws_ref = wsmod.resolve_workspace({k: v for k, v in self.workspace.items() if k in wsmod.FIELDS})
        return self._ws_ref

    def destination(self) -> dict[str, Any]:
        """Where a submit would go and where each value came from (for the plan); never raises."""
        try:
            return self.workspace_ref().to_dict()
        except AzftError as exc:
            return {"error": exc.message, "hint": exc.hint}

    def lookup_options(self, plan: "Plan") -> dict[str, Any]:
        """The workspace the job went to, every value resolved: a later command in another shell finds it there."""
        where = self.destination()
        return {} if "error" in where else {"workspace": {k: v for k, v in where.items() if k != "sources"}}

    @property
    def ml_client(self):
        if self._ml_client is None:
            from azft.azure import workspace as wsmod

            ws = self.workspace_ref()
            kwargs: dict[str, Any] = {}
            if self.retry_total is not None:
                kwargs["retry_total"] = self.retry_total
            self._ml_client = wsmod.make_ml_client(ws, credential=self.credential, **kwargs)
            if self.credential is None:
                self.credential = client_credential(self._ml_client)
        return self._ml_client

    @property
    def uploader(self) -> Uploader:
        if self._uploader is None:
            verify = None
            import os

            verify = os.environ.get("AZFT_AZURE_CA_BUNDLE") or None
            self._uploader = BlobUploader(
                credential=self.credential or client_credential(self.ml_client),
                progress=self.progress,
                connection_verify=verify,
            )
        return self._uploader

    # -- the dry-run ----------------------------------------------------------------------------------------------
    def render(self, plan: "Plan") -> dict:
        """The Azure ML job exactly as a submit sends it, as the YAML-able dict ``load_job`` reads back."""
        from azft.azure import jobs

        return jobs.render(plan)

    # -- hooks for subclasses and the mock ------------------------------------------------------------------------
    def prepare(self, plan: "Plan") -> None:
        """Target-specific steps before data upload (marketplace subscription, cluster)."""

    def decorate_info(self, info: JobInfo) -> None:
        """Add backend-specific fields to a JobInfo (the mock adds its requests file)."""

    def after_command(self) -> None:
        """Called after a command that changed remote state (the mock saves its emulator here)."""

    def job_artifacts(self, name: str) -> list[Path]:
        return []

    # -- submit -------------------------------------------------------------------------------------------------
    def _exists(self, name: str) -> bool:
        try:
            with quiet_sdk():
                self.ml_client.jobs.get(name)
            return True
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise map_error(exc, f"looking up job {name}") from None

    def _check_target(self, plan: "Plan") -> None:
        if plan.target != self.target:
            raise UsageError(
                f"this plan targets {plan.target}, not {self.target}",
                hint=f"make the plan with --backend {self.target}",
            )
        if not plan.ok:
            raise IncompatibleError(
                f"cannot run {plan.spec.name} on {plan.backend}: " + "; ".join(plan.verdict.reasons),
                hint=("what works instead: " + "; ".join(plan.verdict.alternatives))
                if plan.verdict.alternatives
                else None,
            )

    def workspace_region(self) -> Optional[str]:
        """The workspace's Azure region as Azure reports it (one GET, cached), checked against the declared one.

        A region given in the spec (or ``AZURE_LOCATION`` / ``config.json``) that is not where the workspace is
        stops the submit before anything is uploaded: the catalog checks in the plan were made for that region.
        """
        if self._region:
            return self._region
        try:
            with quiet_sdk():
                ws = self.ml_client.workspaces.get(self.ml_client.workspace_name)
        except Exception as exc:
            raise map_error(exc, "reading the workspace") from None
        actual = getattr(ws, "location", None)
        ref = self.workspace_ref()
        declared = ref.region
        if declared and actual and _norm_region(declared) != _norm_region(actual):
            raise UsageError(
                f"{ref.sources.get('region', 'the spec')} says region {declared}, but workspace "
                f"{self.ml_client.workspace_name} is in {actual}; nothing was uploaded",
                hint=f"set azure.region: {actual} (or remove it), or point azure.workspace at a workspace in {declared}",
            )
        self._region = actual or declared
        return self._region

    def default_datastore(self) -> DatastoreInfo:
        from azft.azure.upload import datastore_info

        with quiet_sdk():
            return datastore_info(self.ml_client)

    def upload_data(self, plan: "Plan") -> UploadResult:
        local = [d for d in plan.data if d.local]
        if not local:
            return UploadResult()
        from azft.azure.upload import DATASTORE

        datastore = self.default_datastore()
        if datastore.datastore != DATASTORE:
            raise AzureError(
                f"the workspace's default datastore is {datastore.datastore}, not {DATASTORE}",
                hint="azft uploads data to workspaceblobstore; restore it as the default datastore",
            )
        result = self.uploader.upload(local, datastore)
        if result.bytes_uploaded:
            self.on_event(f"uploaded {result.files_uploaded} file(s), {result.bytes_uploaded} bytes")
        elif result.files_skipped:
            self.on_event("data already uploaded (content-addressed); nothing to upload")
        return result

    def submit(self, plan: "Plan", *, force: bool = False) -> AzureJob:
        self._check_target(plan)
        name = plan.job_name
        if self._exists(name):
            if not force:
                self.on_event(f"job {name} already exists; not submitting it again (use --force for a new one)")
                return AzureJob(self, name, existed=True)
            name = f"{plan.job_name}-{secrets.token_hex(3)}"
            plan.job_name = name
        self.check_region(plan)
        self.prepare(plan)
        upload = self.upload_data(plan)
        from azft.azure import jobs

        job = jobs.build_job(plan)
        if self.before_create:
            self.before_create(plan, name)
        with quiet_sdk(), trust_ca(self.ca_bundle), sdk_console(), self._own_hints():
            created = call(f"submitting job {name}", self.ml_client.jobs.create_or_update, job)
        self.on_event(f"submitted {getattr(created, 'name', name)}")
        self.after_command()
        return AzureJob(self, name, upload=upload)

    @contextlib.contextmanager
    def _own_hints(self) -> Iterator[None]:
        """An Azure refusal keeps its code; its hint becomes this backend's when the code means something else here."""
        try:
            yield
        except AzureError as e:
            hint = HINTS_BY_TARGET.get(self.target, {}).get(getattr(e, "code", None) or "")
            if hint:
                e.hint = hint
            raise

    def check_region(self, plan: "Plan") -> None:
        """Serverless regions are enforced before any upload; maap trains wherever the cluster is."""

    # -- lookup -------------------------------------------------------------------------------------------------
    def get_job(self, name: str) -> AzureJob:
        from azft.state import check_job_name

        check_job_name(name)
        if not self._exists(name):
            raise UsageError(
                f"no job named {name!r} in workspace {self.ml_client.workspace_name}",
                hint="`azft list --backend " + self.name + "` shows the workspace's jobs",
            )
        return AzureJob(self, name)

    def list_jobs(self, limit: int = 50) -> list[JobInfo]:
        out: list[JobInfo] = []
        try:
            with quiet_sdk():
                for job in self.ml_client.jobs.list():
                    tags = dict(getattr(job, "tags", None) or {})
                    if "azft.spec_hash" not in tags:
                        continue
                    out.append(
                        JobInfo(
                            name=job.name,
                            backend=self.name,
                            status=parse_status(job.status),
                            created=timestamp(getattr(getattr(job, "creation_context", None), "created_at", None)),
                            studio_url=getattr(job, "studio_url", None),
                            mlflow_run_id=tags.get("azft.mlflow_run_id"),
                        )
                    )
                    if out[-1].status == JobStatus.FAILED:  # the Azure code, as `azft status` shows it
                        code, message = self.job_error(job.name)
                        out[-1].error_code, out[-1].error = (
                            code,
                            job_error_text(code, message, job.name, target=self.target),
                        )
                    if len(out) >= limit:
                        break
        except AzftError:
            raise
        except Exception as exc:
            raise map_error(exc, "listing jobs") from None
        return out

    # -- errors, logs and metrics of a job ---------------------------------------------------------------------
    def job_error(self, name: str) -> tuple[Optional[str], Optional[str]]:
        """The Azure error of a failed job, from run history."""
        try:
            with quiet_sdk():
                run = run_history(self.ml_client).get_run(name)
        except Exception:
            return None, None
        err = getattr(run, "error", None)
        inner = getattr(err, "error", None) or err
        code = getattr(inner, "code", None)
        message = getattr(inner, "message", None)
        return code, message

    def job_logs(self, name: str) -> list[str]:
        """The job's user logs from run history (std_log files), or a line saying why there are none."""
        try:
            with quiet_sdk():
                details = run_history(self.ml_client).get_run_details(name)
            files = dict(getattr(details, "log_files", None) or {})
        except Exception as exc:
            return [f"(logs are not available: run history could not be read: {map_error(exc, 'reading logs')})"]
        lines: list[str] = []
        for fname, url in sorted(files.items()):
            if "std_log" not in fname and "user_logs" not in fname:
                continue
            try:
                context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
                with urllib.request.urlopen(url, timeout=30, context=context) as resp:
                    lines.extend(resp.read().decode("utf-8", "replace").splitlines())
            except OSError as exc:
                lines.append(f"({fname} could not be downloaded: {type(exc).__name__})")
        if not lines:
            lines.append("(no user logs yet: the job has not started running)")
        return lines

    def job_metrics(self, name: str) -> dict[str, list[tuple[int, float]]]:
        """Per-step metrics of the job under azft's metric names (azft/metrics.py): from the workspace's run-history
        metric service (where Azure ML keeps what a job logs to MLflow), else from its MLflow endpoint (needs the
        azureml-mlflow package)."""
        return canonical(self._job_metrics(name))

    def _job_metrics(self, name: str) -> dict[str, list[tuple[int, float]]]:
        try:
            return self._run_history_metrics(name)
        except Exception as exc:
            first = type(exc).__name__
        try:
            import azureml.mlflow  # noqa: F401
        except ImportError:
            self.on_event(
                f"per-step metrics could not be read from run history ({first}); only final metrics are shown"
            )
            return {}
        try:
            from mlflow.tracking import MlflowClient

            with quiet_sdk():
                ws = self.ml_client.workspaces.get(self.ml_client.workspace_name)
            client = MlflowClient(tracking_uri=ws.mlflow_tracking_uri)
            run = client.get_run(name)
            return {k: [(m.step, m.value) for m in client.get_metric_history(name, k)] for k in run.data.metrics}
        except Exception as exc:
            self.on_event(f"metrics could not be read from the workspace's MLflow: {type(exc).__name__}")
            return {}

    def _run_history_metrics(self, name: str) -> dict[str, list[tuple[int, float]]]:
        """``POST /metric/v2.0/.../runs/{run}/list``, then ``.../full`` per metric, over the pipeline of the SDK's own
        run-history client (the one ``jobs.stream`` uses: same credential, TLS and retry settings)."""
        from azure.core.rest import HttpRequest

        client = run_history_client(self.ml_client)
        ws = (
            f"/metric/v2.0/subscriptions/{self.ml_client.subscription_id}/resourceGroups/"
            f"{self.ml_client.resource_group_name}/providers/Microsoft.MachineLearningServices/workspaces/"
            f"{self.ml_client.workspace_name}/runs/{name}"
        )

        def post(path: str, body: dict) -> dict:
            resp = client.send_request(HttpRequest("POST", client.format_url(ws + path), json=body))
            resp.raise_for_status()
            return resp.json()

        out: dict[str, list[tuple[int, float]]] = {}
        with quiet_sdk():
            keys = [(d.get("metricKey") or {}).get("name") for d in post("/list", {}).get("value", [])]
            for key in filter(None, keys):
                values = post("/full", {"metricName": key}).get("value", [])
                out[key] = [
                    (int(v.get("step") or 0), float(v["data"][key]))
                    for v in values
                    if isinstance((v.get("data") or {}).get(key), (int, float))
                ]
        return out


def requests_to_json(records: list[Any]) -> list[dict]:
    """Recorded emulator requests as JSON-able dicts with every secret redacted."""
    from azft.redact import redact

    out = []
    for r in records:
        d = r.to_dict() if hasattr(r, "to_dict") else dict(r)
        d["headers"] = {
            k: v
            for k, v in (d.get("headers") or {}).items()
            if k.lower()
            not in (
                "x-ms-client-request-id",
                "date",
                "host",
                "content-length",
                "user-agent",
                "accept-encoding",
                "connection",
            )
        }
        out.append(redact(d))
    return json.loads(json.dumps(out, default=str))

"""The connection to an MLflow tracking store, and the on-disk journal of writes waiting for it.

:class:`azft.tracking.Tracker` turns every public write into a list of operations and hands them to
:meth:`TrackingStore.execute`. They are applied to MLflow right away when the tracking store answers; otherwise (or
from the first one that fails with a transient error) they are appended to an on-disk journal
(:mod:`azft.tracking.buffer`) and the user is told. Every call first replays what is pending, and ``flush()`` does it
on demand, so a run is written once the server is back. All operations are idempotent, so replaying after a crash
never duplicates anything.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from azft.errors import AzureError, UsageError
from azft.redact import redact_text
from azft.state import state_dir
from azft.tracking.buffer import Journal

TAG_PREFIX = "azft."
TAG_BACKEND = "azft.backend"
TAG_JOB = "azft.job_name"
TAG_URL = "azft.studio_url"
TAG_MODEL = "azft.model"
TAG_METHOD = "azft.method"
TAG_TASK = "azft.task"
TAG_SPEC_HASH = "azft.spec_hash"
TAG_SUBMISSION = "azft.submission_id"
TAG_STATUS = "azft.status"
TAG_OUTPUT_PREFIX = "azft.output."

_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
_METRICS_PER_BATCH = 1000
# MLflow error codes that mean "try again later" rather than "this request is wrong"
_TRANSIENT_CODES = {
    "INTERNAL_ERROR",
    "TEMPORARILY_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "SERVICE_UNDER_MAINTENANCE",
    "WORKSPACE_TEMPORARILY_UNAVAILABLE",
}


def _notify(message: str) -> None:
    """A one-line warning on stderr (rich when available, so it matches the rest of the CLI)."""
    try:
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/yellow] {message}")
    except Exception:  # pragma: no cover - rich is a dependency; a broken terminal must not break tracking
        print(f"warning: {message}", file=sys.stderr)


class _Rejected(Exception):
    """The tracking store refused an operation for good (not a connectivity problem)."""


def _is_transient(exc: BaseException) -> bool:
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover
        return True
    if isinstance(exc, _Rejected):
        return False
    if isinstance(exc, MlflowException):
        return exc.error_code in _TRANSIENT_CODES
    return True


def _short(exc: BaseException) -> str:
    text = redact_text(" ".join(str(exc).split()))
    return text[:200] + ("…" if len(text) > 200 else "")


class TrackingStore:
    """One MLflow tracking store (``tracking_uri``, already resolved) and the journal in ``buffer_dir`` that keeps
    the writes it could not take. ``is_default_store``: azft's local SQLite store, whose experiments keep their
    artifacts under ``.azft/mlartifacts``."""

    def __init__(
        self,
        tracking_uri: str,
        buffer_dir: Path,
        *,
        is_default_store: bool = False,
        request_timeout: float = 10.0,
        probe_timeout: float = 3.0,
        quiet: bool = False,
    ):
        self.tracking_uri = tracking_uri
        self.is_default_store = is_default_store
        self.buffer_dir = buffer_dir
        self.journal = Journal(buffer_dir, tracking_uri)
        self.request_timeout = request_timeout
        self.probe_timeout = probe_timeout
        self.quiet = quiet
        self._client_obj: Any = None
        self._experiment_ids: dict[str, str] = {}
        self._warned = False
        self.last_error: str | None = None

    @property
    def scheme(self) -> str:
        return self.tracking_uri.split(":", 1)[0].lower() if ":" in self.tracking_uri else "file"

    @property
    def display_uri(self) -> str:
        return redact_text(self.tracking_uri)

    def client(self) -> Any:
        if self._client_obj is None:
            if self.scheme == "azureml":
                import importlib.util

                if importlib.util.find_spec("azureml") is None or importlib.util.find_spec("azureml.mlflow") is None:
                    raise UsageError(
                        "an azureml:// tracking URI needs the azureml-mlflow plugin",
                        hint="pip install 'azft[azureml-mlflow]' (or use the workspace's https MLflow URI)",
                    )
            if self.scheme == "sqlite":
                db = self.tracking_uri.split("sqlite:///", 1)[-1]
                if db and db != ":memory:":
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
            from mlflow import MlflowClient

            try:
                self._client_obj = MlflowClient(tracking_uri=self.tracking_uri)
            except Exception as exc:
                if _is_transient(exc):
                    raise
                raise UsageError(
                    f"cannot use MLflow tracking URI {self.display_uri}: {_short(exc)}",
                    hint="pass --tracking-uri or set MLFLOW_TRACKING_URI to an http(s)://, sqlite:/// or "
                    "azureml:// URI",
                ) from None
        return self._client_obj

    @contextmanager
    def fast_fail(self) -> Iterator[None]:
        """Keep MLflow's HTTP retries short (its defaults retry for minutes) unless the user tuned them, and its
        database-migration notices quiet, while the block runs; both restored after.

        MLflow reads its HTTP retry settings only from the environment (its client takes no such parameters), so
        the variables the user has not set are set for the block and removed again."""
        import logging

        loggers = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        wanted = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(1, self.request_timeout))),
            # MLflow prints "View run ... at" on stdout when a run ends; azft's stdout may be JSON
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }
        added = [k for k in wanted if k not in os.environ]
        for k in added:
            os.environ[k] = wanted[k]
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)

    def available(self) -> bool:
        """Whether the tracking store answers now (a quick ``/health`` probe for servers)."""
        if self.scheme not in ("http", "https"):
            return True
        import requests

        try:
            resp = requests.get(self.tracking_uri.rstrip("/") + "/health", timeout=self.probe_timeout)
        except requests.RequestException as exc:
            self.last_error = _short(exc)
            return False
        if resp.status_code >= 500:
            self.last_error = f"HTTP {resp.status_code} from {self.display_uri}"
            return False
        return True

    def experiment_id(self, name: str) -> str:
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        from mlflow.exceptions import MlflowException

        client = self.client()
        exp = client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if self.is_default_store:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"
                root = state_dir() / "mlartifacts" / safe
                root.mkdir(parents=True, exist_ok=True)
                location = root.as_uri()
            try:
                exp_id = client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp_id = client.get_experiment_by_name(name).experiment_id
        else:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            exp_id = exp.experiment_id
        self._experiment_ids[name] = exp_id
        return exp_id

    def resolve(self, run_id: str) -> str | None:
        """The MLflow run id behind ``run_id`` (a placeholder maps to its run once it has been created)."""
        return self.journal.resolve(run_id)

    def _run(self, ref: str) -> str:
        real = self.journal.resolve(ref)
        if real is None:
            raise _Rejected(f"run {ref} was never created")
        return real

    def _apply(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        getattr(self, f"_apply_{kind}")(op)

    def _apply_create_run(self, op: dict[str, Any]) -> None:
        placeholder = op["run"]
        if self.journal.resolve(placeholder):
            return
        client = self.client()
        exp_id = self.experiment_id(op["experiment"])
        found = client.search_runs([exp_id], filter_string=f"tags.`{TAG_SUBMISSION}` = '{placeholder}'", max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            run = client.create_run(exp_id, start_time=op["start_time"], tags=op["tags"], run_name=op.get("run_name"))
            run_id = run.info.run_id
        self.journal.record_run(placeholder, run_id)

    def _apply_params(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Param

        run_id = self._run(op["run"])
        items = list(op["params"].items())
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self.client().log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + _PARAMS_PER_BATCH]])

    def _apply_tags(self, op: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        run_id = self._run(op["run"])
        self.client().log_batch(run_id, tags=[RunTag(k, v) for k, v in op["tags"].items()])

    def _existing_steps(self, run_id: str, key: str) -> dict[int, list[float]]:
        steps: dict[int, list[float]] = {}
        for m in self.client().get_metric_history(run_id, key):
            steps.setdefault(int(m.step), []).append(m.value)
        return steps

    def _log_metric_rows(self, run_id: str, rows: list[Any]) -> None:
        for i in range(0, len(rows), _METRICS_PER_BATCH):
            self.client().log_batch(run_id, metrics=rows[i : i + _METRICS_PER_BATCH])

    def _apply_metrics(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run_id = self._run(op["run"])
        rows = []
        for key, points in op["history"].items():
            present = self._existing_steps(run_id, key)
            by_step: dict[int, tuple[float, int]] = {}
            for step, value, ts in points:
                by_step[int(step)] = (float(value), int(ts))
            for step, (value, ts) in sorted(by_step.items()):
                if step not in present:
                    rows.append(Metric(key, value, ts, step))
        self._log_metric_rows(run_id, rows)

    def _apply_final(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        client = self.client()
        run_id = self._run(op["run"])
        rows = []
        for key, value in op["metrics"].items():
            present = self._existing_steps(run_id, key)
            last = max(present) if present else 0
            if present and float(value) in present[last]:
                continue
            rows.append(Metric(key, float(value), op["ts"], last))
        self._log_metric_rows(run_id, rows)
        tags = {TAG_STATUS: op["status"]}
        tags.update({TAG_OUTPUT_PREFIX + k: v for k, v in op.get("outputs", {}).items()})
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id, status=op["status"], end_time=op["end_time"])

    def _apply_artifact(self, op: dict[str, Any]) -> None:
        client = self.client()
        run_id = self._run(op["run"])
        artifact_path = op.get("artifact_path")
        if "blob" in op:
            path = Path(op["blob"])
            if not path.exists():
                raise _Rejected(f"buffered artifact {path} is missing")
            client.log_artifact(run_id, str(path), artifact_path)
        elif "text" in op:
            with tempfile.TemporaryDirectory(prefix="azft-artifact-") as tmp:
                path = Path(tmp) / op["name"]
                path.write_text(op["text"], encoding="utf-8")
                client.log_artifact(run_id, str(path), artifact_path)
        else:
            path = Path(op["src"])
            if not path.exists():
                raise _Rejected(f"artifact {path} no longer exists")
            client.log_artifact(run_id, str(path), artifact_path)

    # -- the journal ----------------------------------------------------------------------------------------------
    def _reject(self, op: dict[str, Any], exc: BaseException) -> None:
        self.journal.dir.mkdir(parents=True, exist_ok=True)
        with open(self.journal.dir / "rejected.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"op": {k: v for k, v in op.items() if k != "text"}, "error": _short(exc)}) + "\n")
        if not self.quiet:
            _notify(
                f"MLflow at {self.display_uri} refused a {op['op'].replace('_', ' ')} write for run {op['run']}: "
                f"{_short(exc)} (kept in {self.journal.dir / 'rejected.jsonl'})"
            )

    def _queue(self, ops: list[dict[str, Any]], reason: str | None) -> None:
        self.journal.append(ops)
        if not self.quiet and not self._warned:
            self._warned = True
            why = f" ({reason})" if reason else ""
            _notify(
                f"MLflow tracking at {self.display_uri} is not answering{why}; {len(self.journal.pending())} "
                f"write(s) kept in {self.journal.dir} and sent automatically when it is back "
                f"(or run `azft runs flush`). The job itself is not affected."
            )

    def _flush_locked(self) -> int:
        ops = self.journal.pending()
        if not ops:
            return 0
        if not self.available():
            return 0
        sent = 0
        with self.fast_fail():
            for op in ops:
                try:
                    self._apply(op)
                except Exception as exc:
                    if _is_transient(exc):
                        self.last_error = _short(exc)
                        break
                    self._reject(op, exc)
                self.journal.mark_applied(op["id"])
                sent += 1
        remaining = len(self.journal.pending())
        if remaining == 0:
            self.journal.compact()
        if sent and not self.quiet:
            runs = self.journal.load_state()["runs"]
            mapped = sorted(
                {
                    f"{op['run']} -> {runs[op['run']]}"
                    for op in ops[:sent]
                    if op["op"] == "create_run" and op["run"] in runs
                }
            )
            extra = f"; runs created: {', '.join(mapped)}" if mapped else ""
            left = f"; {remaining} still pending" if remaining else ""
            _notify(f"sent {sent} buffered MLflow write(s) to {self.display_uri}{extra}{left}")
        if remaining == 0:
            self._warned = False
        return sent

    def flush(self) -> int:
        """Replay buffered writes; returns how many were sent. Safe to call any time, from any process."""
        with self.journal.locked():
            return self._flush_locked()

    def pending_count(self) -> int:
        return len(self.journal.pending())

    def execute(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            op.setdefault("id", os.urandom(12).hex())
        with self.journal.locked():
            self._flush_locked()
            if self.journal.pending():
                self._queue(ops, self.last_error)
                return
            if not self.available():
                self._queue(ops, self.last_error)
                return
            with self.fast_fail():
                for i, op in enumerate(ops):
                    try:
                        self._apply(op)
                    except UsageError:
                        raise
                    except Exception as exc:
                        if _is_transient(exc):
                            self.last_error = _short(exc)
                            self._queue(ops[i:], self.last_error)
                            return
                        self._reject(op, exc)

    def read(self) -> Any:
        """The client, after replaying pending writes; a clear AzureError when the store does not answer."""
        self.flush()
        if not self.available():
            raise AzureError(
                f"MLflow tracking at {self.display_uri} is not answering ({self.last_error})",
                hint="start the tracking server or pass --tracking-uri",
            )
        return self.client()

    def pending_submissions(self) -> list[dict[str, Any]]:
        """The ``create_run`` operations still waiting in the journal."""
        return [op for op in self.journal.pending() if op["op"] == "create_run"]

"""One MLflow run per submission, on every backend, that survives a tracking server being down.

Every public write (``start_submission``, ``log_metrics``, ``log_final``, ``log_artifact``) becomes a list of
operations. They are applied to MLflow right away when the tracking store answers; otherwise (or from the first one
that fails with a transient error) they are appended to an on-disk journal (:mod:`azft.tracking.buffer`) and the user
is told. Every call first replays what is pending, and ``flush()`` does it on demand, so a run is written once the
server is back. All operations are idempotent, so replaying after a crash never duplicates anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from azft.errors import AzureError, UsageError
from azft.tracking.buffer import Journal, new_placeholder
from azft.tracking.params import flatten, select_params
from azft.redact import redact, redact_text
from azft.state import state_dir

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

MAX_TAG_CHARS = 5000
_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
_METRICS_PER_BATCH = 1000

_STATUS = {
    "finished": "FINISHED",
    "completed": "FINISHED",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "canceled": "KILLED",
    "cancelled": "KILLED",
}
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
_TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".txt", ".log", ".md", ".csv", ".cfg", ".ini", ".toml", ".env"}
_MAX_REDACT_BYTES = 64 * 1024 * 1024


def default_tracking_uri() -> str:
    """``sqlite:///<cwd>/.azft/mlflow.db``.

    A SQLite store rather than MLflow's ``./mlruns`` file store: the file store is deprecated in MLflow 3, cannot
    run the searches ``azft runs`` needs efficiently (every query walks thousands of small files), and is not a
    format ``mlflow server`` / ``mlflow ui --backend-store-uri`` keep supporting. SQLite needs no server, is safe for
    the training process and azft writing at the same time, and the same file opens with
    ``mlflow ui --backend-store-uri sqlite:///.azft/mlflow.db``.
    """
    return "sqlite:///" + (state_dir() / "mlflow.db").as_posix()


def resolve_tracking_uri(tracking_uri: str | None) -> tuple[str, bool]:
    """(URI, whether it is azft's default local store)."""
    if tracking_uri:
        return tracking_uri, False
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, False
    return default_tracking_uri(), True


def normalize_status(status: Any) -> str:
    """MLflow run status from an MLflow status or an azft/Azure job status (``Completed`` -> ``FINISHED``)."""
    value = getattr(status, "value", status)
    key = str(value).strip().lower()
    if key in _STATUS:
        return _STATUS[key]
    raise UsageError(
        f"unknown final status {value!r}",
        hint="use FINISHED, FAILED or KILLED (or a job status: Completed, Failed, Canceled)",
    )


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _leaf(flat: Mapping[str, str], name: str) -> str | None:
    if name in flat:
        return flat[name]
    for key, value in flat.items():
        if key.endswith("." + name):
            return value
    return None


def _model_name(spec: Mapping[str, Any], flat: Mapping[str, str]) -> str:
    model = spec.get("model")
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        for k in ("name", "id", "hub_id", "path"):
            if isinstance(model.get(k), str):
                return model[k]
    return _leaf(flat, "model") or ""


def _spec_tags(spec: Mapping[str, Any]) -> dict[str, str]:
    for holder in (spec, spec.get("metadata") if isinstance(spec.get("metadata"), Mapping) else {}):
        tags = holder.get("tags") if isinstance(holder, Mapping) else None
        if isinstance(tags, Mapping):
            return {str(k): str(v) for k, v in tags.items()}
    return {}


def _now_ms() -> int:
    return int(time.time() * 1000)


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


class Tracker:
    """Records submissions in MLflow.

    ``tracking_uri``: an MLflow tracking URI (``http(s)://`` server, ``sqlite:///``, ``azureml://`` with the
    ``azureml-mlflow`` extra). None means ``MLFLOW_TRACKING_URI`` when set, else azft's local store
    (``sqlite:///<cwd>/.azft/mlflow.db``, artifacts under ``.azft/mlartifacts``; see :func:`default_tracking_uri`).
    ``buffer_dir``: where writes wait while the store is unreachable (default ``.azft/mlflow-buffer``).
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        buffer_dir: Path | None = None,
        *,
        request_timeout: float = 10.0,
        probe_timeout: float = 3.0,
        quiet: bool = False,
    ):
        if not experiment or not str(experiment).strip():
            raise UsageError("an MLflow experiment name is required", hint="set `experiment:` in the spec")
        self.tracking_uri, self.is_default_store = resolve_tracking_uri(tracking_uri)
        self.experiment = str(experiment)
        self.buffer_dir = Path(buffer_dir) if buffer_dir else state_dir() / "mlflow-buffer"
        self.journal = Journal(self.buffer_dir, self.tracking_uri)
        self.request_timeout = request_timeout
        self.probe_timeout = probe_timeout
        self.quiet = quiet
        self._client_obj: Any = None
        self._experiment_ids: dict[str, str] = {}
        self._warned = False
        self.last_error: str | None = None

    # -- connection --------------------------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return self.tracking_uri.split(":", 1)[0].lower() if ":" in self.tracking_uri else "file"

    @property
    def display_uri(self) -> str:
        return redact_text(self.tracking_uri)

    def _client(self) -> Any:
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
    def _fast_fail(self) -> Iterator[None]:
        """Keep MLflow's HTTP retries short (its defaults retry for minutes) unless the user tuned them."""
        import logging

        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
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

    # -- experiments and runs ----------------------------------------------------------------------------------
    def _experiment_id(self, name: str) -> str:
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        from mlflow.exceptions import MlflowException

        client = self._client()
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

    # -- applying operations -----------------------------------------------------------------------------------
    def _apply(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        getattr(self, f"_apply_{kind}")(op)

    def _apply_create_run(self, op: dict[str, Any]) -> None:
        placeholder = op["run"]
        if self.journal.resolve(placeholder):
            return
        client = self._client()
        exp_id = self._experiment_id(op["experiment"])
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
            self._client().log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + _PARAMS_PER_BATCH]])

    def _apply_tags(self, op: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        run_id = self._run(op["run"])
        self._client().log_batch(run_id, tags=[RunTag(k, v) for k, v in op["tags"].items()])

    def _existing_steps(self, run_id: str, key: str) -> dict[int, list[float]]:
        steps: dict[int, list[float]] = {}
        for m in self._client().get_metric_history(run_id, key):
            steps.setdefault(int(m.step), []).append(m.value)
        return steps

    def _log_metric_rows(self, run_id: str, rows: list[Any]) -> None:
        for i in range(0, len(rows), _METRICS_PER_BATCH):
            self._client().log_batch(run_id, metrics=rows[i : i + _METRICS_PER_BATCH])

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

        client = self._client()
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
        client = self._client()
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

    # -- the buffer ----------------------------------------------------------------------------------------------
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
        with self._fast_fail():
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

    def _execute(self, ops: list[dict[str, Any]]) -> None:
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
            with self._fast_fail():
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

    # -- public API --------------------------------------------------------------------------------------------
    def start_submission(
        self,
        *,
        spec: dict,
        plan: dict,
        data_report: dict | None,
        backend: str,
        job_name: str,
        studio_url: str | None,
        tags: dict[str, str],
    ) -> str:
        """Create the submission's run (or buffer it) and return its id (a ``pending-...`` id while buffered)."""
        spec_r, plan_r = redact(dict(spec)), redact(dict(plan))
        report_r = redact(dict(data_report)) if data_report is not None else None
        flat = flatten(spec_r)
        flat.setdefault("backend", backend)
        selection = select_params(flat)
        placeholder = new_placeholder()
        run_tags = {
            TAG_BACKEND: backend,
            TAG_JOB: job_name,
            TAG_MODEL: _model_name(spec_r, flat),
            TAG_METHOD: _leaf(flat, "method") or "",
            TAG_TASK: _leaf(flat, "task") or "",
            TAG_SPEC_HASH: str(plan_r.get("spec_hash") or spec_hash(spec_r)),
            TAG_SUBMISSION: placeholder,
            "mlflow.source.name": "azft",
            "mlflow.source.type": "JOB",
        }
        if studio_url:
            run_tags[TAG_URL] = studio_url
        extra = {**_spec_tags(spec_r), **{str(k): str(v) for k, v in (tags or {}).items()}}
        run_tags.update({k: v for k, v in redact(extra).items() if not k.startswith(TAG_PREFIX)})
        run_tags = {k: redact_text(str(v))[:MAX_TAG_CHARS] for k, v in run_tags.items() if v is not None}

        def dump(obj: Any) -> str:
            return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"

        ops: list[dict[str, Any]] = [
            {
                "op": "create_run",
                "run": placeholder,
                "experiment": self.experiment,
                "start_time": _now_ms(),
                "tags": run_tags,
                "run_name": job_name,
            },
            {"op": "params", "run": placeholder, "params": selection.params},
            {"op": "artifact", "run": placeholder, "name": "spec.json", "text": dump(spec_r)},
            {"op": "artifact", "run": placeholder, "name": "plan.json", "text": dump(plan_r)},
        ]
        if report_r is not None:
            ops.append({"op": "artifact", "run": placeholder, "name": "data_report.json", "text": dump(report_r)})
        if selection.too_long or selection.over_cap:
            ops.append(
                {"op": "artifact", "run": placeholder, "name": "params_overflow.json", "text": dump(selection.overflow)}
            )
        self._execute(ops)
        return self.journal.resolve(placeholder) or placeholder

    def log_metrics(self, run_id: str, history: Mapping[str, list[tuple[int, float]]]) -> None:
        """Add per-step metrics; points at a (key, step) the run already has are skipped: copying twice is harmless."""
        ts = _now_ms()
        clean: dict[str, list[list[Any]]] = {}
        for key, points in history.items():
            rows = [[int(step), float(value), ts] for step, value in points]
            if rows:
                clean[str(key)] = rows
        if clean:
            self._execute([{"op": "metrics", "run": run_id, "history": clean}])

    def log_final(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        status: Any,
        *,
        outputs: Mapping[str, str] | None = None,
    ) -> None:
        """Log final metrics, record where the outputs are (``outputs``: name -> URI/path), and end the run."""
        mlflow_status = normalize_status(status)
        now = _now_ms()
        op = {
            "op": "final",
            "run": run_id,
            "metrics": {str(k): float(v) for k, v in metrics.items()},
            "status": mlflow_status,
            "end_time": now,
            "ts": now,
            "outputs": {str(k): redact_text(str(v))[:MAX_TAG_CHARS] for k, v in (outputs or {}).items()},
        }
        self._execute([op])

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file or a folder; text files (JSON, YAML, logs...) are redacted before they leave the machine."""
        src = Path(path)
        if not src.exists():
            raise UsageError(f"{src}: no such file to log as an MLflow artifact")
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        ops = []
        for f in files:
            sub = artifact_path
            if src.is_dir():
                rel = f.parent.relative_to(src)
                parts = [p for p in (artifact_path, src.name, rel.as_posix() if str(rel) != "." else None) if p]
                sub = "/".join(parts)
            if f.suffix.lower() in _TEXT_SUFFIXES and f.stat().st_size <= _MAX_REDACT_BYTES:
                ops.append(
                    {
                        "op": "artifact",
                        "run": run_id,
                        "name": f.name,
                        "text": _redacted_file_text(f),
                        "artifact_path": sub,
                    }
                )
            else:
                ops.append({"op": "artifact", "run": run_id, "src": str(f.resolve()), "artifact_path": sub})
        if ops:
            self._execute(ops)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Add tags to a run (redacted; buffered when the store does not answer)."""
        clean = {str(k): redact_text(str(v))[:MAX_TAG_CHARS] for k, v in tags.items() if v is not None}
        if clean:
            self._execute([{"op": "tags", "run": run_id, "tags": clean}])

    def run_env(self, run_id: str) -> dict[str, str]:
        """Environment for a training process that logs into this run itself (empty while the run is buffered)."""
        real = self.journal.resolve(run_id)
        if real is None:
            return {}
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_RUN_ID": real}

    # -- reading -----------------------------------------------------------------------------------------------
    def _read(self) -> Any:
        """The client, after replaying pending writes; a clear AzureError when the store does not answer."""
        self.flush()
        if not self.available():
            raise AzureError(
                f"MLflow tracking at {self.display_uri} is not answering ({self.last_error})",
                hint="start the tracking server or pass --tracking-uri",
            )
        return self._client()

    def _pending_submissions(self) -> list[dict[str, Any]]:
        return [op for op in self.journal.pending() if op["op"] == "create_run"]

    def find_run_for_job(self, job_name: str) -> str | None:
        """The run recorded for an azft job name (a ``pending-...`` id when still buffered), or None."""
        self.flush()
        for op in self._pending_submissions():
            if op["tags"].get(TAG_JOB) == job_name:
                return self.journal.resolve(op["run"]) or op["run"]
        with self._fast_fail():
            client = self._read()
            exp_ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
            if not exp_ids:
                return None
            safe = job_name.replace("\\", "\\\\").replace("'", "\\'")
            runs = client.search_runs(
                exp_ids,
                filter_string=f"tags.`{TAG_JOB}` = '{safe}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
        return runs[0].info.run_id if runs else None

    def get_run(self, run_id: str) -> Any:
        real = self.journal.resolve(run_id)
        if real is None:
            raise UsageError(
                f"run {run_id} is still buffered: the tracking server has not answered since it was submitted",
                hint="run `azft runs flush` when the server is back",
            )
        from mlflow.exceptions import MlflowException

        with self._fast_fail():
            client = self._read()
            try:
                return client.get_run(real)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise UsageError(f"no MLflow run {run_id} at {self.display_uri}") from None
                raise AzureError(f"MLflow error reading run {run_id}: {_short(exc)}") from None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        real = self.journal.resolve(run_id) or run_id
        with self._fast_fail():
            rows = self._client().get_metric_history(real, key)
        best: dict[int, tuple[int, float]] = {}
        for m in rows:
            if m.step not in best or m.timestamp >= best[m.step][0]:
                best[int(m.step)] = (m.timestamp, m.value)
        return [(step, value) for step, (_, value) in sorted(best.items())]

    def search(self, experiment: str | None = None, max_results: int = 50) -> list[Any]:
        """azft runs, newest first, in one experiment or in all of them."""
        from mlflow.entities import ViewType

        with self._fast_fail():
            client = self._read()
            if experiment:
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise UsageError(f"no MLflow experiment named {experiment!r} at {self.display_uri}")
                exp_ids = [exp.experiment_id]
            else:
                exp_ids = [
                    e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000)
                ]
            if not exp_ids:
                return []
            return client.search_runs(
                exp_ids,
                filter_string=f"tags.`{TAG_SUBMISSION}` LIKE 'pending-%'",
                order_by=["attributes.start_time DESC"],
                max_results=max_results,
            )

    def compare_plot(self, run_ids: list[str], out_png: str | os.PathLike[str], metric: str = "loss") -> Path:
        from azft.tracking.plot import compare_plot

        return compare_plot(run_ids, out_png, metric=metric, tracker=self)


def _redacted_file_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            return json.dumps(redact(json.loads(text)), indent=2, sort_keys=True) + "\n"
        except json.JSONDecodeError:
            pass
    if path.suffix.lower() == ".jsonl":
        lines = []
        for line in text.splitlines():
            try:
                lines.append(json.dumps(redact(json.loads(line))) if line.strip() else line)
            except json.JSONDecodeError:
                lines.append(redact_text(line))
        return "\n".join(lines) + "\n"
    return redact_text(text)

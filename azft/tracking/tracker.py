"""One MLflow run per submission, on every backend, that survives a tracking server being down.

:class:`Tracker` is the read/write surface: every public write (``start_submission``, ``log_metrics``,
``log_final``, ``log_artifact``, ``set_tags``) becomes a list of operations that its
:class:`~azft.tracking.store.TrackingStore` applies, or journals while the store does not answer; the reads
(``find_run_for_job``, ``get_run``, ``metric_history``, ``search``) replay the journal first.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from azft.errors import AzureError, UsageError
from azft.redact import redact, redact_text
from azft.state import state_dir
from azft.tracking.buffer import new_placeholder
from azft.tracking.params import flatten, select_params
from azft.tracking.store import (
    TAG_BACKEND,
    TAG_JOB,
    TAG_METHOD,
    TAG_MODEL,
    TAG_PREFIX,
    TAG_SPEC_HASH,
    TAG_SUBMISSION,
    TAG_TASK,
    TAG_URL,
    TrackingStore,
    _short,
)

MAX_TAG_CHARS = 5000

_STATUS = {
    "finished": "FINISHED",
    "completed": "FINISHED",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "canceled": "KILLED",
    "cancelled": "KILLED",
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


def leaf_value(flat: Mapping[str, str], name: str) -> str | None:
    """The value of ``name`` in flattened params: the key itself, else the first key ending in ``.name``."""
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
    return leaf_value(flat, "model") or ""


def _spec_tags(spec: Mapping[str, Any]) -> dict[str, str]:
    for holder in (spec, spec.get("metadata") if isinstance(spec.get("metadata"), Mapping) else {}):
        tags = holder.get("tags") if isinstance(holder, Mapping) else None
        if isinstance(tags, Mapping):
            return {str(k): str(v) for k, v in tags.items()}
    return {}


def _now_ms() -> int:
    return int(time.time() * 1000)


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
        uri, is_default = resolve_tracking_uri(tracking_uri)
        self.experiment = str(experiment)
        self.store = TrackingStore(
            uri,
            Path(buffer_dir) if buffer_dir else state_dir() / "mlflow-buffer",
            is_default_store=is_default,
            request_timeout=request_timeout,
            probe_timeout=probe_timeout,
            quiet=quiet,
        )

    @property
    def tracking_uri(self) -> str:
        return self.store.tracking_uri

    @property
    def display_uri(self) -> str:
        """The tracking URI with any secret in it masked."""
        return self.store.display_uri

    def resolve(self, run_id: str) -> str | None:
        """The MLflow run id behind ``run_id`` (a placeholder maps to its run once it has been created)."""
        return self.store.resolve(run_id)

    def flush(self) -> int:
        """Replay buffered writes; returns how many were sent. Safe to call any time, from any process."""
        return self.store.flush()

    def pending_count(self) -> int:
        return self.store.pending_count()

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
            TAG_METHOD: leaf_value(flat, "method") or "",
            TAG_TASK: leaf_value(flat, "task") or "",
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
        self.store.execute(ops)
        return self.store.journal.resolve(placeholder) or placeholder

    def log_metrics(self, run_id: str, history: Mapping[str, list[tuple[int, float]]]) -> None:
        """Add per-step metrics; points at a (key, step) the run already has are skipped: copying twice is harmless."""
        ts = _now_ms()
        clean: dict[str, list[list[Any]]] = {}
        for key, points in history.items():
            rows = [[int(step), float(value), ts] for step, value in points]
            if rows:
                clean[str(key)] = rows
        if clean:
            self.store.execute([{"op": "metrics", "run": run_id, "history": clean}])

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
        self.store.execute([op])

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
            self.store.execute(ops)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Add tags to a run (redacted; buffered when the store does not answer)."""
        clean = {str(k): redact_text(str(v))[:MAX_TAG_CHARS] for k, v in tags.items() if v is not None}
        if clean:
            self.store.execute([{"op": "tags", "run": run_id, "tags": clean}])

    def run_env(self, run_id: str) -> dict[str, str]:
        """Environment for a training process that logs into this run itself (empty while the run is buffered)."""
        real = self.store.journal.resolve(run_id)
        if real is None:
            return {}
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_RUN_ID": real}

    # -- reading -----------------------------------------------------------------------------------------------
    def find_run_for_job(self, job_name: str) -> str | None:
        """The run recorded for an azft job name (a ``pending-...`` id when still buffered), or None."""
        self.flush()
        for op in self.store.pending_submissions():
            if op["tags"].get(TAG_JOB) == job_name:
                return self.store.journal.resolve(op["run"]) or op["run"]
        with self.store.fast_fail():
            client = self.store.read()
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
        real = self.store.journal.resolve(run_id)
        if real is None:
            raise UsageError(
                f"run {run_id} is still buffered: the tracking server has not answered since it was submitted",
                hint="run `azft runs flush` when the server is back",
            )
        from mlflow.exceptions import MlflowException

        with self.store.fast_fail():
            client = self.store.read()
            try:
                return client.get_run(real)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise UsageError(f"no MLflow run {run_id} at {self.display_uri}") from None
                raise AzureError(f"MLflow error reading run {run_id}: {_short(exc)}") from None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        real = self.store.journal.resolve(run_id) or run_id
        with self.store.fast_fail():
            rows = self.store.client().get_metric_history(real, key)
        best: dict[int, tuple[int, float]] = {}
        for m in rows:
            if m.step not in best or m.timestamp >= best[m.step][0]:
                best[int(m.step)] = (m.timestamp, m.value)
        return [(step, value) for step, (_, value) in sorted(best.items())]

    def search(self, experiment: str | None = None, max_results: int = 50) -> list[Any]:
        """azft runs, newest first, in one experiment or in all of them."""
        from mlflow.entities import ViewType

        with self.store.fast_fail():
            client = self.store.read()
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

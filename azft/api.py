"""The public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from azft.backends.base import Backend, Job, JobInfo, backend_class, backend_names, get_backend
from azft.errors import IncompatibleError, JobCancelledError, Problem, UsageError
from azft.plan import Plan, make_plan
from azft.spec import JobSpec, load_spec
from azft.state import check_job_name, locked, lookup_submission, record_submission, state_dir, submissions


def load_prices(path: Optional[str]) -> tuple[dict, Optional[str]]:
    if not path:
        return {}, None
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--prices: {path} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UsageError(f"--prices: {path}{':' + str(mark.line + 1) if mark else ''}: invalid YAML") from None
    if not isinstance(data, dict):
        raise UsageError(f"--prices: {path} must be a mapping")
    unknown = set(data) - {"maas_price_per_1k_tokens", "skus"}
    if unknown:
        raise UsageError(
            f"--prices: {path}: unknown keys {', '.join(sorted(unknown))}",
            hint="use maas_price_per_1k_tokens: {model: price} and skus: {size: {price_per_hour: x}}",
        )
    return data, str(p)


def workspace_options(spec: Optional[JobSpec], backend: str) -> dict[str, Any]:
    """The backend keyword arguments that carry the spec's ``azure:`` section (resolved later: spec → AZURE_* →
    config.json, value by value); nothing for a backend without a workspace."""
    if spec is None or not backend_class(backend).uses_workspace:
        return {}
    return {"workspace": spec.azure.model_dump(exclude_none=True)}


def plan(
    spec: JobSpec | str | Path,
    backend: str = "local",
    *,
    prices: Optional[str] = None,
    force: bool = False,
    check_data: bool = True,
    render: bool = True,
    max_usd: Optional[float] = None,
) -> Plan:
    """The dry-run of a spec on a backend (no network): the pure plan, the workspace a submit would use, and the
    request the backend would send (``Backend.render``) when the verdict allows a submit. ``force`` gives the job a fresh name.
    ``max_usd`` lowers or sets the spec's ``budget.max_usd`` for the plan's budget check."""
    if not isinstance(spec, JobSpec):
        spec = load_spec(spec)
    table, source = load_prices(prices)
    suffix = secrets.token_hex(3) if force else None
    cls = backend_class(backend)
    b = cls(**workspace_options(spec, backend))
    where = b.destination()
    p = make_plan(
        spec,
        backend,
        target=cls.target_for(spec),
        prices=table,
        prices_source=source,
        check_data=check_data,
        force_suffix=suffix,
        region=(where or {}).get("region"),
    )
    p.workspace = where
    if cls.uses_workspace and where and "error" in where:  # the spec may run; a submit from here cannot
        p.verdict.warnings.append(
            f"no Azure ML workspace: `azft submit` refuses until one is configured. "
            f"{where['error']}" + (f" ({where['hint']})" if where.get("hint") else "")
        )
    if render and p.ok:
        p.request = b.render(p)
    if max_usd is not None:
        from azft.budget import check, spec_limits

        p.budget = check(p.estimate, spec, spec_limits(spec, max_usd))
    return p


def apply_overrides(
    spec: JobSpec,
    backend: str,
    *,
    tracking_uri: Optional[str] = None,
    mock_target: Optional[str] = None,
    faults: Sequence[Any] = (),
) -> JobSpec:
    """Command-line overrides, applied the same way for the CLI and scripts (the spec object is changed in place).

    The MLflow tracking URI is the first of: ``tracking_uri``, the spec's ``tracking.tracking_uri``,
    ``$MLFLOW_TRACKING_URI``, azft's local store. ``faults`` (FaultSpec or dicts) work with the mock backend only."""
    from azft.spec import FaultSpec

    uri = resolve_tracking_uri(spec, tracking_uri)
    if uri:
        spec.tracking.tracking_uri = uri
    if mock_target:
        spec.mock.target = mock_target
    if faults:
        if backend != "mock":
            raise UsageError("faults (--fault) work with the mock backend only")
        spec.mock.faults.extend(f if isinstance(f, FaultSpec) else FaultSpec.model_validate(f) for f in faults)
    return spec


def resolve_tracking_uri(spec: Optional[JobSpec], override: Optional[str] = None) -> Optional[str]:
    """``override`` > the spec's tracking.tracking_uri > ``$MLFLOW_TRACKING_URI`` > None (azft's local store)."""
    return (
        override
        or (spec.tracking.tracking_uri if spec is not None else None)
        or os.environ.get("MLFLOW_TRACKING_URI")
        or None
    )


def default_poll(backend: str) -> float:
    """Seconds between status checks: 1 s on this machine (local, mock), 15 s against Azure."""
    return 1.0 if backend in ("local", "mock") else 15.0


def check_wait_options(timeout: Optional[float], poll_interval: Optional[float]) -> None:
    """``timeout`` and ``poll_interval`` are positive, finite numbers (checked before anything is submitted)."""
    for name, value in (("timeout", timeout), ("poll interval", poll_interval)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"the {name} must be a positive number of seconds, got {value!r}")


def _refuse(plan: Plan) -> IncompatibleError:
    return IncompatibleError(
        f"cannot run {plan.spec.name} on {plan.backend}; nothing was uploaded or submitted",
        hint=f"what works instead: {'; '.join(plan.verdict.alternatives)}" if plan.verdict.alternatives else None,
        problems=verdict_problems(plan),
    )


def verdict_problems(plan: Plan, file: Optional[str] = None) -> list[Problem]:
    """The verdict's reasons as problems naming the spec's file, line and field (like schema problems)."""
    from azft.spec import line_of

    spec = plan.spec
    file = file or (str(spec.source) if spec.source else None)
    out = []
    for reason in plan.verdict.reasons:
        field = _reason_field(spec, reason)
        message = reason
        if field and reason.startswith(field + ": "):
            message = reason[len(field) + 2 :]
        loc = tuple(field.split(".")) if field else ()
        out.append(Problem(message, file=file, line=line_of(spec, *loc) if loc else None, field=field))
    return out


def _reason_field(spec: JobSpec, reason: str) -> Optional[str]:
    """The spec field a backend's reason is about: a leading ``field:``, else the written field it names."""
    import re

    lines = getattr(spec, "_lines", None) or {}
    written = sorted(
        {".".join(str(p) for p in k) for k in lines if k and all(isinstance(p, str) for p in k)}, key=len, reverse=True
    )
    m = re.match(r"([a-z_]+(?:\.[a-z_]+)*): ", reason)
    if m and m.group(1) in written:
        return m.group(1)
    for field in written:
        leaf = field.rsplit(".", 1)[-1]
        if re.search(rf"(?<![\w.]){re.escape(field)}(?![\w])", reason) or (
            "." in field and re.search(rf"(?<![\w.]){re.escape(leaf)}(?![\w])", reason)
        ):
            return field
    for key in ("model", "method", "task"):
        if key in written and re.search(rf"\b{key}\b", reason, re.I):
            return key
    if "model" in written and spec.model in reason:
        return "model"
    return None


def submit(
    plan: Plan,
    *,
    force: bool = False,
    retry: bool = False,
    track: bool = True,
    backend_options: Optional[dict] = None,
    on_event: Optional[Callable[[str], None]] = None,
    max_usd: Optional[float] = None,
    backend: Optional[Backend] = None,
) -> Job:
    """Submit a plan. Nothing is uploaded or submitted unless every check passed, the budget included
    (``max_usd`` lowers or sets the spec's ``budget.max_usd``).

    Idempotent: the same spec and data give the same job name, and a second submit returns the existing job (one
    job and one MLflow run, also when identical submits run at once). A job that Failed or was Canceled is not
    submitted again silently: that raises JobFailedError/JobCancelledError (exit 1/3) unless ``retry`` is set, which
    starts it again (local: in place, resuming from its last checkpoint; Azure and mock: a new job named
    ``<job>-retry<N>``, as Azure job names cannot be reused). ``force`` submits a new job whatever exists.
    ``backend``: a backend instance to submit through (a sweep shares one, with its clients, across its trials).
    """
    if not plan.ok:
        raise _refuse(plan)
    from azft.budget import enforce

    enforce(plan, max_usd)
    say = on_event or (lambda msg: None)
    if backend is None:
        backend = get_backend(plan.backend, **{**workspace_options(plan.spec, plan.backend), **(backend_options or {})})
    if backend.uses_workspace and hasattr(backend, "workspace_ref") and "error" in (backend.destination() or {}):
        backend.workspace_ref()  # raises the resolution error (naming where it looked) before any MLflow run exists
    with locked(state_dir() / "locks" / plan.job_name):
        if not force:
            _apply_resubmit_rule(plan, backend, retry, say)
        return _submit_locked(plan, backend, force=force, retry=retry, track=track, say=say)


def _latest_attempt(name: str) -> str:
    seen = {name}
    while True:
        nxt = (lookup_submission(name) or {}).get("retried_as")
        if not nxt or nxt in seen:
            return name
        seen.add(nxt)
        name = nxt


def _find_job(backend: Any, name: str) -> Optional[Job]:
    try:
        return backend.get_job(name)
    except UsageError:
        return None


def _apply_resubmit_rule(plan: Plan, backend: Any, retry: bool, say: Callable[[str], None]) -> None:
    """Point the plan at the latest attempt of this job; refuse or retry one that Failed or was Canceled."""
    from azft.backends.base import JobStatus
    from azft.errors import JobFailedError

    original = plan.job_name
    name = _latest_attempt(original)
    existing = _find_job(backend, name)
    if existing is None:
        return
    info = existing.info()
    plan.job_name = name
    if info.status not in (JobStatus.FAILED, JobStatus.CANCELED):
        return
    if not retry:
        ended = "failed" if info.status == JobStatus.FAILED else "was canceled"
        why = f" ({info.error_code + ': ' if info.error_code else ''}{info.error})" if info.error else ""
        cls = JobFailedError if info.status == JobStatus.FAILED else JobCancelledError
        raise cls(
            f"job {name} {ended}{why}; nothing was submitted",
            hint="`azft submit --retry` runs it again (`azft logs " + name + "` shows what happened)",
        )
    if plan.backend != "local":  # Azure job names are final: the new attempt gets its own
        n = 2
        while _find_job(backend, f"{original}-retry{n}") is not None:
            n += 1
        plan.job_name = f"{original}-retry{n}"
        record_submission(name, retried_as=plan.job_name)
    say(f"job {name} {info.status.value.lower()}; trying again as {plan.job_name}")


def _submit_locked(
    plan: Plan, backend: Any, *, force: bool, retry: bool, track: bool, say: Callable[[str], None]
) -> Job:
    tracker = None
    run_id = None
    created_run = False
    if track:
        from azft.tracking import Tracker

        tracker = Tracker(plan.tracking_uri, plan.spec.experiment)
        run_id = tracker.find_run_for_job(plan.job_name) if not (force or retry) else None
        if run_id is None:
            run_id = tracker.start_submission(
                spec=plan.spec.canonical(),
                plan=plan.to_dict(),
                data_report=plan.data_report() or None,
                backend=plan.backend,
                job_name=plan.job_name,
                studio_url=None,
                tags=dict(plan.spec.tags),
            )
            created_run = True
        # the training process logs into this run itself when the store answers (empty while buffered)
        env = tracker.run_env(run_id)
        plan.tracking_run_id = env.get("MLFLOW_RUN_ID")
        plan.tracking_uri = tracker.tracking_uri
    try:
        job = backend.submit(plan, force=force)
    except BaseException:
        # only the run this call created is closed: an earlier submission's run keeps its own outcome
        if tracker and run_id and created_run:
            try:
                tracker.log_final(run_id, {}, status="FAILED")
            except Exception:  # the submit error matters more than the tracking one
                pass
        raise
    if tracker and run_id:
        _tag_run(tracker, run_id, job, plan.data_tags(), say)
    record_submission(
        job.name,
        backend=plan.backend,
        target=plan.target,
        spec=str(plan.spec.source) if plan.spec.source else None,
        experiment=plan.spec.experiment,
        tracking_uri=plan.tracking_uri,
        mlflow_run_id=run_id,
        options=backend.lookup_options(plan) or None,
        max_hours=plan.spec.budget.max_hours if plan.spec.budget else None,
    )
    say(f"submitted {job.name} to {plan.backend}")
    return job


def _tag_run(tracker: Any, run_id: str, job: Job, job_tags: dict, say: Callable[[str], None]) -> None:
    try:
        info = job.info()
        tags = {"azft.job_name": job.name, **job_tags}
        if info.studio_url:
            tags["azft.studio_url"] = info.studio_url
        tracker.set_tags(run_id, tags)
        for path in getattr(job, "artifacts", lambda: [])():
            tracker.log_artifact(run_id, path)
    except Exception as e:  # tracking never blocks a submission
        say(f"warning: could not update MLflow run {run_id}: {e}")


def get_job(
    name: str, backend: Optional[str] = None, *, backends: Optional[dict] = None, **backend_options: Any
) -> Job:
    """Find a job by name: the local submission index says which backend it went to, or pass `backend`.

    The name is checked against Azure ML's name rule first (UsageError otherwise): it never reaches a path unchecked.
    ``backends``: a dict this call keeps the backend instance in, keyed by backend and options, so finding many jobs
    (a sweep's) reuses one client per workspace."""
    check_job_name(name)
    name = resolve_job_name(name, backend)
    rec = lookup_submission(name) or {}
    backend = backend or rec.get("backend")
    if not backend:
        raise _unknown_job(name)
    recorded = dict(rec.get("options") or {}) if rec.get("backend") == backend else {}
    if rec.get("backend") == backend and "options" not in rec:  # recorded by an earlier azft
        recorded = {
            k: v for k, v in (("workspace", rec.get("azure")), ("target", (rec.get("mock") or {}).get("target"))) if v
        }
    cls = backend_class(backend)
    opts = {**{k: v for k, v in recorded.items() if k in cls.lookup_keys}, **backend_options}
    if backends is None:
        return cls(**opts).get_job(name)
    import json

    key = f"{backend}|{json.dumps(opts, sort_keys=True, default=str)}"
    if key not in backends:
        backends[key] = cls(**opts)
    return backends[key].get_job(name)


def resolve_job_name(ref: str, backend: Optional[str] = None) -> str:
    """A job name, or the unique prefix of one submitted from here (on ``backend`` when given), as ``azft list``
    prints them. An ambiguous prefix is a UsageError listing the jobs it matches; a name nothing here knows is
    returned as given (a remote backend may still know it)."""
    index = submissions()
    if ref in index:
        return ref
    known = [
        n for n, rec in index.items() if isinstance(rec, dict) and (backend is None or rec.get("backend") == backend)
    ]
    matches = sorted(n for n in known if n.startswith(ref))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:8]) + (f" and {len(matches) - 8} more" if len(matches) > 8 else "")
        raise UsageError(
            f"job id prefix {ref!r} matches {len(matches)} jobs: {shown}",
            hint="give more characters of the job name (`azft list` shows them whole)",
        )
    return ref


def _unknown_job(name: str) -> UsageError:
    recent = sorted(
        ((rec.get("created") or "", n) for n, rec in submissions().items() if isinstance(rec, dict)), reverse=True
    )[:5]
    listed = f"; jobs submitted from here: {', '.join(n for _, n in recent)}" if recent else ""
    return UsageError(
        f"no job named {name!r} (or starting with it) was submitted from here{listed}",
        hint="pass --backend maas|maap|local|mock (and the workspace) to look it up remotely; "
        "`azft list` shows known jobs",
    )


def list_jobs(
    backend: Optional[str] = None, limit: int = 50, *, spec: JobSpec | str | Path | None = None, **backend_options: Any
) -> list[JobInfo]:
    """Jobs of a backend (default: local and mock). maas/maap/mock list the workspace resolved like a submit's:
    ``spec``'s ``azure:`` section when given, then ``AZURE_*``, then ``config.json``."""
    if spec is not None and not isinstance(spec, JobSpec):
        spec = load_spec(spec)
    names = [backend] if backend else [n for n in backend_names() if backend_class(n).listed_by_default]
    out: list[JobInfo] = []
    for b in names:
        opts = {**workspace_options(spec, b), **backend_options}
        out.extend(get_backend(b, **opts).list_jobs(limit=limit))
    return out[:limit] if backend else out


def wait(
    job: Job,
    *,
    timeout: Optional[float] = None,
    poll_interval: Optional[float] = None,
    on_update: Optional[Callable[[JobInfo], None]] = None,
    on_event: Optional[Callable[[str], None]] = None,
    now: Optional[float] = None,
) -> JobInfo:
    """Follow a job to its end, then copy its metrics and outputs into its MLflow run and close the run.

    Raises JobCancelledError (exit 3) when ``timeout`` passes first (the job keeps running), and cancels a job still
    running ``budget.max_hours`` after it was created (JobCancelledError, exit 3; the submission index says when the
    job was created and its limit; ``now`` is the wall clock, for a controlled clock). Returns the final JobInfo;
    ``info.status`` says Completed, Failed or Canceled."""
    from azft.budget import seconds_left

    check_wait_options(timeout, poll_interval)
    poll = poll_interval or default_poll(job.backend)
    rec = lookup_submission(job.name) or {}
    left = seconds_left(rec, now)
    if left is None or (timeout is not None and timeout <= left):
        info = job.wait(timeout=timeout, poll_interval=poll, on_update=on_update)
    else:
        try:
            info = job.wait(timeout=max(0.0, left), poll_interval=poll, on_update=on_update)
        except JobCancelledError:
            job.cancel()
            raise JobCancelledError(
                f"{job.name} ran past budget.max_hours {rec['max_hours']:g} (created {rec['created']}): "
                "cancel requested",
                hint=f"raise budget.max_hours to let such a job finish; `azft status {job.name}` shows it stop",
            ) from None
    try:
        finish_tracking(job, info)
    except Exception as e:  # tracking never hides the job's outcome
        if on_event:
            on_event(f"warning: could not record the final metrics in MLflow: {e}")
    return info


def finish_tracking(job: Job, info: JobInfo) -> None:
    """Copy a finished job's metrics and outputs into its MLflow run and close it (idempotent)."""
    rec = lookup_submission(job.name) or {}
    run_id = rec.get("mlflow_run_id")
    if not run_id:
        return
    from azft.redact import REDACTED
    from azft.tracking import Tracker

    uri = rec.get("tracking_uri")
    if uri and REDACTED in uri:  # stored without its password: the same URI comes from the environment
        uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
    tracker = Tracker(uri, rec.get("experiment") or "azft")
    history = job.metrics_history()
    if history:
        tracker.log_metrics(run_id, history)
    for path in getattr(job, "artifacts", lambda: [])():
        tracker.log_artifact(run_id, path)
    tracker.log_final(run_id, info.metrics or {}, info.status, outputs=info.outputs or None)

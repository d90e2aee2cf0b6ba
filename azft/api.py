"""The public Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable, Optional

from azft.backends.base import Job, JobInfo, backend_class, backend_names, get_backend
from azft.errors import IncompatibleError, Problem, UsageError
from azft.plan import Plan, make_plan
from azft.spec import JobSpec, load_spec
from azft.state import lookup_submission, record_submission


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
        raise UsageError(f"--prices: {path}: unknown keys {', '.join(sorted(unknown))}",
                         hint="use maas_price_per_1k_tokens: {model: price} and skus: {size: {price_per_hour: x}}")
    return data, str(p)


def workspace_options(spec: Optional[JobSpec], backend: str) -> dict[str, Any]:
    """The backend keyword arguments that carry the spec's ``azure:`` section (resolved later: spec → AZURE_* →
    config.json, value by value); nothing for a backend without a workspace."""
    if spec is None or not backend_class(backend).uses_workspace:
        return {}
    return {"workspace": spec.azure.model_dump(exclude_none=True)}


def plan(spec: JobSpec | str | Path, backend: str = "local", *, prices: Optional[str] = None,
         force: bool = False, check_data: bool = True, render: bool = True) -> Plan:
    """The dry-run of a spec on a backend (no network): the pure plan, the workspace a submit would use, and the
    request the backend would send (``Backend.render``) when the verdict allows a submit."""
    if not isinstance(spec, JobSpec):
        spec = load_spec(spec)
    table, source = load_prices(prices)
    suffix = secrets.token_hex(3) if force else None
    cls = backend_class(backend)
    b = cls(**workspace_options(spec, backend))
    where = b.destination()
    p = make_plan(spec, backend, target=cls.target_for(spec), prices=table, prices_source=source,
                  check_data=check_data, force_suffix=suffix, region=(where or {}).get("region"))
    p.workspace = where
    if render and p.ok:
        p.request = b.render(p)
    return p


def _refuse(plan: Plan) -> IncompatibleError:
    problems = [Problem(r, file=str(plan.spec.source) if plan.spec.source else None) for r in plan.verdict.reasons]
    alts = "; ".join(plan.verdict.alternatives)
    return IncompatibleError(
        f"cannot run {plan.spec.name} on {plan.backend}; nothing was uploaded or submitted",
        hint=f"what works instead: {alts}" if alts else None,
        problems=problems,
    )


def submit(plan: Plan, *, force: bool = False, track: bool = True, backend_options: Optional[dict] = None,
           on_event: Optional[Callable[[str], None]] = None) -> Job:
    """Submit a plan. Nothing is uploaded or submitted unless every check passed.

    Idempotent: the same spec and data give the same job name, and a second submit returns the existing job.
    """
    if not plan.ok:
        raise _refuse(plan)
    say = on_event or (lambda msg: None)
    backend = get_backend(plan.backend, **{**workspace_options(plan.spec, plan.backend), **(backend_options or {})})
    tracker = None
    run_id = None
    if track:
        from azft.tracking import Tracker

        tracker = Tracker(plan.tracking_uri, plan.spec.experiment)
        run_id = tracker.find_run_for_job(plan.job_name) if not force else None
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
        # the training process logs into this run itself when the store answers (empty while buffered)
        env = tracker.run_env(run_id)
        plan.tracking_run_id = env.get("MLFLOW_RUN_ID")
        plan.tracking_uri = tracker.tracking_uri
    try:
        job = backend.submit(plan, force=force)
    except BaseException:
        if tracker and run_id:
            try:
                tracker.log_final(run_id, {}, status="FAILED")
            except Exception:  # the submit error matters more than the tracking one
                pass
        raise
    if tracker and run_id:
        try:
            info = job.info()
            tags = {"azft.job_name": job.name, **plan.data_tags()}
            if info.studio_url:
                tags["azft.studio_url"] = info.studio_url
            tracker.set_tags(run_id, tags)
            for path in getattr(job, "artifacts", lambda: [])():
                tracker.log_artifact(run_id, path)
        except Exception as e:  # tracking never blocks a submission
            say(f"warning: could not update MLflow run {run_id}: {e}")
    record_submission(
        job.name,
        backend=plan.backend,
        target=plan.target,
        spec=str(plan.spec.source) if plan.spec.source else None,
        experiment=plan.spec.experiment,
        tracking_uri=plan.tracking_uri,
        mlflow_run_id=run_id,
        options=backend.lookup_options(plan) or None,
    )
    say(f"submitted {job.name} to {plan.backend}")
    return job


def get_job(name: str, backend: Optional[str] = None, **backend_options: Any) -> Job:
    """Find a job by name: the local submission index says which backend it went to, or pass `backend`."""
    rec = lookup_submission(name) or {}
    backend = backend or rec.get("backend")
    if not backend:
        raise UsageError(f"no job named {name!r} was submitted from here",
                         hint="pass --backend maas|maap|local|mock (and the workspace) to look it up remotely; "
                              "`azft list` shows known jobs")
    recorded = dict(rec.get("options") or {}) if rec.get("backend") == backend else {}
    if rec.get("backend") == backend and "options" not in rec:  # recorded by an earlier azft
        recorded = {k: v for k, v in (("workspace", rec.get("azure")),
                                      ("target", (rec.get("mock") or {}).get("target"))) if v}
    cls = backend_class(backend)
    opts = {k: v for k, v in recorded.items() if k in cls.lookup_keys}
    return cls(**{**opts, **backend_options}).get_job(name)


def list_jobs(backend: Optional[str] = None, limit: int = 50, *, spec: JobSpec | str | Path | None = None,
              **backend_options: Any) -> list[JobInfo]:
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


def finish_tracking(job: Job, info: JobInfo) -> None:
    """Copy a finished job's metrics and outputs into its MLflow run and close it (idempotent)."""
    rec = lookup_submission(job.name) or {}
    run_id = rec.get("mlflow_run_id")
    if not run_id:
        return
    from azft.tracking import Tracker

    tracker = Tracker(rec.get("tracking_uri"), rec.get("experiment") or "azft")
    history = job.metrics_history()
    if history:
        tracker.log_metrics(run_id, history)
    for path in getattr(job, "artifacts", lambda: [])():
        tracker.log_artifact(run_id, path)
    tracker.log_final(run_id, info.metrics or {}, info.status, outputs=info.outputs or None)

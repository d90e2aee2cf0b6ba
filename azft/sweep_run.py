"""A sweep's trials submitted, followed, stopped and cancelled together (the plan is :mod:`azft.sweep`).

* :func:`submit_sweep`: nothing is submitted unless every trial can run (or ``skip_invalid``) and the sweep is within
  its budget; then the first trial of each distinct data set goes alone (it uploads the data), the others on a pool
  of ``max_concurrent`` threads sharing one backend instance per backend (they find the data uploaded). Each trial
  goes through ``azft.api.submit``: the same idempotency, resubmit rule and MLflow run as a single job. The sweep's
  record (``.azft/sweeps/<sweep>.json``) lists each trial's values and job.
* :func:`wait_sweep`: follows every trial to its end; cancels a trial past ``budget.max_hours`` and, with
  ``sweep.early_stopping``, a trial the median stopping rule (:func:`median_stops`) says has fallen behind.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from azft.errors import (
    EXIT_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    AzftError,
    IncompatibleError,
    JobCancelledError,
    Problem,
    UsageError,
)

Say = Callable[[str], None]


def _quiet(msg: str) -> None:
    return None


# ----------------------------------------------------------------------------------------------------------------
# Submit
# ----------------------------------------------------------------------------------------------------------------


def _refuse_invalid(sp: Any) -> IncompatibleError:
    from azft.sweep import values_text

    problems = []
    for t in sp.invalid:
        for reason in t.reasons:
            first = t.problems[0] if t.problems else None
            problems.append(
                Problem(
                    f"trial {t.index} ({values_text(t.values)}): {reason}",
                    file=first.file if first else None,
                    line=first.line if first else None,
                )
            )
    return IncompatibleError(
        f"sweep {sp.name}: {len(sp.invalid)} of {len(sp.trials)} trials cannot run; nothing was uploaded or submitted",
        hint="change or remove those values (`azft plan` shows every trial), or submit the others with --skip-invalid",
        problems=problems,
    )


def _data_key(trial: Any) -> str:
    return f"{trial.backend}|" + ",".join(d.sha256 or d.uri or d.ref for d in trial.plan.data)


class _Submitter:
    """Submits trials through shared backend instances, at most ``limit`` at once, counting what is in flight."""

    def __init__(self, sp: Any, *, retry: bool, track: bool, say: Say, backend_options: Optional[dict]):
        from azft import api

        self.sp, self.retry, self.track, self.say = sp, retry, track, say
        self.backend_options = backend_options or {}
        self.backends: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.api = api

    def backend_for(self, trial: Any) -> Any:
        import json

        from azft.backends.base import get_backend

        opts = {**self.api.workspace_options(trial.spec, trial.backend), **self.backend_options}
        key = f"{trial.backend}|{json.dumps(opts, sort_keys=True, default=str)}"
        with self.lock:
            if key not in self.backends:
                self.backends[key] = get_backend(trial.backend, **opts)
            return self.backends[key]

    def submit(self, trial: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        row: dict[str, Any] = {"trial": trial.index, "values": trial.values, "backend": trial.backend}
        try:
            job = self.api.submit(
                trial.plan,
                retry=self.retry,
                track=self.track,
                backend=self.backend_for(trial),
                on_event=lambda m: self.say(f"trial {trial.index}: {m}"),
            )
            row["job_name"] = job.name
            row["submitted"] = "existing" if getattr(job, "existed", False) else "submitted"
            upload = getattr(job, "upload", None)
            if upload is not None:
                row["files_uploaded"], row["bytes_uploaded"] = upload.files_uploaded, upload.bytes_uploaded
        except AzftError as e:
            row.update(job_name=trial.plan.job_name, submitted="error", error=e.message, exit_code=e.exit_code)
            self.say(f"trial {trial.index}: not submitted: {e.message}")
        except Exception as e:  # one trial's unexpected failure does not stop the others
            row.update(job_name=trial.plan.job_name, submitted="error", error=f"{type(e).__name__}: {e}", exit_code=5)
            self.say(f"trial {trial.index}: not submitted: {type(e).__name__}: {e}")
        finally:
            with self.lock:
                self.in_flight -= 1
        return row

    def run(self, trials: list[Any], limit: int) -> list[dict[str, Any]]:
        """The first trial of each distinct data set alone (its data is uploaded once), then the rest ``limit`` at a
        time; rows in trial order."""
        firsts: list[Any] = []
        rest: list[Any] = []
        seen: set[str] = set()
        for t in trials:
            key = _data_key(t)
            (rest if key in seen else firsts).append(t)
            seen.add(key)
        rows = {t.index: self.submit(t) for t in firsts}
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="azft-sweep") as pool:
            for t, row in zip(rest, pool.map(self.submit, rest)):
                rows[t.index] = row
        return [rows[t.index] for t in trials]

    def close(self) -> None:
        for b in self.backends.values():
            close = getattr(b, "close", None)
            if close:
                close()


def submit_sweep(
    sp: Any,
    *,
    max_usd: Optional[float] = None,
    retry: bool = False,
    track: bool = True,
    skip_invalid: bool = False,
    on_event: Optional[Say] = None,
    backend_options: Optional[dict] = None,
) -> dict[str, Any]:
    """Submit every trial of a planned sweep (see the module docstring); returns what happened to each."""
    from azft.budget import check, refusal, spec_limits

    say = on_event or _quiet
    if sp.invalid and not skip_invalid:
        raise _refuse_invalid(sp)
    trials = [t for t in sp.trials if t.ok]
    if not trials:
        raise _refuse_invalid(sp)
    budget = sp.budget
    if max_usd is not None:
        from azft.sweep import sweep_budget

        budget = sweep_budget(sp.spec, sp.totals, max_usd)
    elif budget is None:
        budget = check({}, sp.spec, spec_limits(sp.spec))
    if budget and not budget["ok"]:
        raise refusal(f"sweep {sp.name}", budget)
    parent = start_parent_run(sp, say) if track else None
    submitter = _Submitter(sp, retry=retry, track=track, say=say, backend_options=backend_options)
    try:
        rows = submitter.run(trials, sweep_limit(sp))
    finally:
        submitter.close()
    if parent:
        tag_children(sp, parent, rows, say)
    skipped = [
        {
            "trial": t.index,
            "values": t.values,
            "backend": t.backend,
            "job_name": None,
            "submitted": "skipped",
            "error": "; ".join(t.reasons),
        }
        for t in sp.invalid
    ]
    record = _in_order(save_record(sp, sorted(rows + skipped, key=lambda r: r["trial"]), parent))
    return {
        **summary(record),
        "max_in_flight": submitter.max_in_flight,
        "files_uploaded": sum(r.get("files_uploaded", 0) for r in rows),
        "bytes_uploaded": sum(r.get("bytes_uploaded", 0) for r in rows),
    }


def sweep_limit(sp: Any) -> int:
    from azft.sweep import sweep_of

    return sweep_of(sp.spec).max_concurrent


def save_record(sp: Any, rows: list[dict], parent: Optional[dict]) -> dict:
    from azft.state import record_sweep
    from azft.sweep import sweep_of

    sw = sweep_of(sp.spec)
    return record_sweep(
        sp.name,
        spec=str(sp.spec.source) if sp.spec.source else None,
        spec_name=sp.spec.name,
        backend=sp.backend,
        parameters=list(sw.parameters),
        strategy=sw.strategy,
        max_concurrent=sw.max_concurrent,
        early_stopping=sw.early_stopping.model_dump() if sw.early_stopping else None,
        experiment=sp.spec.experiment,
        tracking_uri=(parent or {}).get("tracking_uri"),
        parent_run_id=(parent or {}).get("run_id"),
        trials=rows,
    )


def summary(record: dict) -> dict[str, Any]:
    rows = record.get("trials") or []
    count = {k: sum(r.get("submitted") == k for r in rows) for k in ("submitted", "existing", "error", "skipped")}
    return {
        "sweep": record["name"],
        "trials": rows,
        **count,
        "parent_run_id": record.get("parent_run_id"),
        "experiment": record.get("experiment"),
    }


def submit_exit_code(result: dict) -> int:
    """0 when every trial was submitted (or found); otherwise the trials' common exit code, else 1."""
    codes = {r.get("exit_code") for r in result["trials"] if r.get("submitted") == "error"}
    if not codes:
        return EXIT_OK
    return codes.pop() if len(codes) == 1 else EXIT_JOB_FAILED


# ----------------------------------------------------------------------------------------------------------------
# MLflow: one parent run per sweep, the trials' runs its children
# ----------------------------------------------------------------------------------------------------------------


def _tracker(uri: Optional[str], experiment: str) -> Any:
    from azft.tracking import Tracker

    return Tracker(uri, experiment)


def start_parent_run(sp: Any, say: Say) -> Optional[dict]:
    """The sweep's parent run (found again on a re-submit); None when tracking fails (it never blocks a submit)."""
    from azft import api

    uri = api.resolve_tracking_uri(sp.spec)
    try:
        tracker = _tracker(uri, sp.spec.experiment)
        run_id = tracker.find_run_for_job(sp.name)
        if run_id is None:
            d = sp.to_dict()
            run_id = tracker.start_submission(
                spec=sp.spec.canonical(),
                plan={k: d[k] for k in ("sweep", "strategy", "totals", "budget")},
                data_report=None,
                backend=sp.backend,
                job_name=sp.name,
                studio_url=None,
                tags=dict(sp.spec.tags),
            )
        tracker.set_tags(
            run_id, {"azft.sweep": sp.name, "azft.sweep_role": "parent", "azft.sweep_trials": str(len(sp.trials))}
        )
        return {"run_id": tracker.resolve(run_id) or run_id, "tracking_uri": tracker.tracking_uri}
    except Exception as e:  # tracking never blocks a submission
        say(f"warning: could not record the sweep's MLflow parent run: {e}")
        return None


def tag_children(sp: Any, parent: dict, rows: list[dict], say: Say) -> None:
    from azft.state import lookup_submission
    from azft.sweep import sweep_of

    tracker = _tracker(parent["tracking_uri"], sp.spec.experiment)
    params = list(sweep_of(sp.spec).parameters)
    for row in rows:
        run_id = (lookup_submission(row["job_name"]) or {}).get("mlflow_run_id") if row.get("job_name") else None
        if not run_id:
            continue
        try:
            tracker.set_tags(
                run_id,
                {
                    "mlflow.parentRunId": parent["run_id"],
                    "azft.sweep": sp.name,
                    "azft.sweep_trial": str(row["trial"]),
                    **{f"azft.sweep_value.{p}": str(row["values"].get(p)) for p in params},
                },
            )
        except Exception as e:  # tracking never blocks a submission
            say(f"warning: could not tag trial {row['trial']}'s MLflow run: {e}")


# ----------------------------------------------------------------------------------------------------------------
# Finding a sweep and its jobs
# ----------------------------------------------------------------------------------------------------------------


def lookup_record(name: str) -> dict:
    from azft.state import lookup_sweep

    rec = lookup_sweep(name)
    if rec is None:
        raise UsageError(f"no sweep named {name!r} was submitted from here")
    return _in_order(rec)


def _in_order(rec: dict) -> dict:
    params = rec.get("parameters") or []
    for t in rec.get("trials") or []:
        t["values"] = _ordered(t.get("values") or {}, params)
    return rec


def find_sweep(ref: str) -> Optional[dict]:
    """A sweep's record by its name or a unique prefix of it; None when no sweep submitted from here matches."""
    from azft.state import JOB_NAME_RE, lookup_sweep, sweep_names

    if not isinstance(ref, str) or not JOB_NAME_RE.fullmatch(ref):
        return None
    rec = lookup_sweep(ref)
    if rec:
        return _in_order(rec)
    matches = [n for n in sweep_names() if n.startswith(ref)]
    if len(matches) > 1:
        raise UsageError(
            f"sweep name prefix {ref!r} matches {len(matches)} sweeps: {', '.join(matches[:8])}",
            hint="give more characters of the sweep's name",
        )
    return lookup_record(matches[0]) if matches else None


def sweep_jobs(record: dict) -> dict[str, Any]:
    """{job name: Job} for every submitted trial, one backend instance per backend and workspace."""
    from azft import api

    backends: dict[str, Any] = {}
    jobs = {}
    for row in record.get("trials") or []:
        if row.get("submitted") in ("submitted", "existing") and row.get("job_name"):
            jobs[row["job_name"]] = api.get_job(row["job_name"], backends=backends)
    return jobs


def _ordered(values: dict, parameters: list) -> dict:
    """The trial's values in the order the spec lists the parameters (the record keeps its keys sorted)."""
    return {**{p: values[p] for p in parameters if p in values}, **values}


def _row(trial: dict, info: Any, stopped: dict) -> dict[str, Any]:
    out = {
        "trial": trial["trial"],
        "values": trial["values"],
        "backend": trial.get("backend"),
        "job_name": trial.get("job_name"),
    }
    if info is None:
        out.update(status="NotSubmitted", error=trial.get("error"))
        return out
    out.update(
        status=info.status.value,
        error=info.error,
        error_code=info.error_code,
        metrics=info.metrics or {},
        created=info.to_dict()["created"],
    )
    if trial.get("job_name") in stopped:
        out["stopped"] = stopped[trial["job_name"]]
    return out


def sweep_status(record: dict) -> dict[str, Any]:
    jobs = sweep_jobs(record)
    stopped = record.get("stopped") or {}
    rows = [
        _row(t, jobs[t["job_name"]].info() if t.get("job_name") in jobs else None, stopped)
        for t in record.get("trials") or []
    ]
    return {"sweep": record["name"], "trials": rows, "counts": _counts(rows)}


def _counts(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return dict(sorted(out.items()))


def cancel_sweep(record: dict, say: Optional[Say] = None) -> dict[str, Any]:
    """Request cancellation of every trial that has not ended; trials already ended are left as they are."""
    say = say or _quiet
    jobs = sweep_jobs(record)
    for name, job in jobs.items():
        info = job.info()
        if info.status.terminal:
            continue
        try:
            job.cancel()
            say(f"cancel requested: {name}")
        except AzftError as e:
            say(f"could not cancel {name}: {e.message}")
    return sweep_status(record)


def sweep_exit_code(rows: list[dict]) -> int:
    """1 when a trial failed or was never submitted, else 3 when one was canceled (not by early stopping), else 0."""
    if any(r["status"] in ("Failed", "NotSubmitted") for r in rows):
        return EXIT_JOB_FAILED
    if any(r["status"] == "Canceled" and not str(r.get("stopped", "")).startswith("early stopping") for r in rows):
        return EXIT_CANCELLED
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------------
# Early stopping
# ----------------------------------------------------------------------------------------------------------------


def median_stops(
    histories: dict[str, list[tuple[int, float]]], running: set[str], *, delay_steps: int = 10, min_trials: int = 3
) -> dict[str, str]:
    """The median stopping rule (lower is better): a running trial whose best value up to its latest step ``s`` is
    worse than the median of the running averages (up to ``s``) of every trial that has reached ``s`` is stopped.

    Only trials past ``delay_steps``, and only when at least ``min_trials`` trials (the judged one included) reached
    ``s``. Returns {trial: the reason, with the numbers}."""
    out = {}
    for name in sorted(running):
        points = sorted(histories.get(name) or [])
        if not points or points[-1][0] <= delay_steps:
            continue
        step = points[-1][0]
        best = min(v for _, v in points)
        averages = []
        for hist in histories.values():
            upto = [v for s, v in hist if s <= step]
            if hist and max(s for s, _ in hist) >= step and upto:
                averages.append(statistics.fmean(upto))
        if len(averages) < min_trials:
            continue
        median = statistics.median(averages)
        if best > median:
            out[name] = (
                f"early stopping (median rule): best {best:.4g} at step {step} is worse than the median "
                f"{median:.4g} of {len(averages)} trials' running averages"
            )
    return out


# ----------------------------------------------------------------------------------------------------------------
# Wait
# ----------------------------------------------------------------------------------------------------------------


class _Watch:
    """The state of one `wait`: jobs, their last infos, the trials stopped and why."""

    def __init__(self, record: dict, say: Say, on_update: Optional[Callable[[dict, Any], None]], now: Optional[float]):
        self.record, self.say, self.on_update, self.now = record, say, on_update, now
        self.jobs = sweep_jobs(record)
        self.trials = {t["job_name"]: t for t in record.get("trials") or [] if t.get("job_name") in self.jobs}
        self.infos: dict[str, Any] = {}
        self.stopped: dict[str, str] = dict(record.get("stopped") or {})
        self.histories: dict[str, list[tuple[int, float]]] = {}
        self.early: dict[str, Any] = dict(record.get("early_stopping") or {})

    @property
    def pending(self) -> list[str]:
        return [n for n in self.jobs if n not in self.infos or not self.infos[n].status.terminal]

    def poll(self) -> None:
        from azft.budget import seconds_left
        from azft.state import lookup_submission

        for name in self.pending:
            info = self.jobs[name].info()
            before = self.infos.get(name)
            self.infos[name] = info
            if self.on_update and (before is None or before.status != info.status):
                self.on_update(self.trials[name], info)
            if info.status.terminal:
                continue
            rec = lookup_submission(name) or {}
            left = seconds_left(rec, self.now)
            if left is not None and left <= 0 and name not in self.stopped:
                self.stop(name, f"ran past budget.max_hours {rec['max_hours']:g} (created {rec['created']})")
        if self.early:
            self.early_stop()

    def stop(self, name: str, reason: str) -> None:
        try:
            self.jobs[name].cancel()
        except AzftError as e:
            self.say(f"could not cancel {name}: {e.message}")
            return
        self.stopped[name] = reason
        self.say(f"trial {self.trials[name]['trial']} ({name}): cancel requested: {reason}")

    def early_stop(self) -> None:
        metric = self.early.get("metric", "eval_loss")
        for name in self.jobs:
            info = self.infos.get(name)
            done = info is not None and info.status.terminal and name in self.histories
            if done or info is None or info.status.value in ("NotStarted", "Queued", "Preparing", "Created"):
                continue
            try:
                self.histories[name] = list(self.jobs[name].metrics_history().get(metric) or [])
            except AzftError:
                continue
        running = {n for n in self.pending if n not in self.stopped}
        decisions = median_stops(
            self.histories,
            running,
            delay_steps=int(self.early.get("delay_steps", 10)),
            min_trials=int(self.early.get("min_trials", 3)),
        )
        for name, reason in decisions.items():
            self.stop(name, reason)


def wait_sweep(
    record: dict,
    *,
    timeout: Optional[float] = None,
    poll_interval: Optional[float] = None,
    on_update: Optional[Callable[[dict, Any], None]] = None,
    on_event: Optional[Say] = None,
    now: Optional[float] = None,
) -> dict[str, Any]:
    """Follow every trial to its end (time limits and early stopping applied), then record the final metrics in
    MLflow. Raises JobCancelledError (exit 3) when ``timeout`` passes first (the trials keep running). ``now``: the
    wall clock for the max_hours check (a controlled clock)."""
    from azft import api
    from azft.state import record_sweep

    api.check_wait_options(timeout, poll_interval)
    say = on_event or _quiet
    watch = _Watch(record, say, on_update, now)
    backends = {t.get("backend") or "local" for t in watch.trials.values()}
    poll = poll_interval or min((api.default_poll(b) for b in backends), default=1.0)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            watch.poll()
            if not watch.pending:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise JobCancelledError(
                    f"timed out after {timeout:g}s waiting for sweep {record['name']} ({len(watch.pending)} of "
                    f"{len(watch.jobs)} trials still running)",
                    hint=f"the trials keep running; `azft wait {record['name']}` resumes watching them",
                )
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
    finally:
        if watch.stopped:
            record_sweep(record["name"], stopped=watch.stopped)
    for name, info in watch.infos.items():
        try:
            api.finish_tracking(watch.jobs[name], info)
        except Exception as e:  # tracking never hides the outcome
            say(f"warning: could not record {name}'s final metrics in MLflow: {e}")
    rows = [_row(t, watch.infos.get(t.get("job_name")), watch.stopped) for t in record.get("trials") or []]
    result = {"sweep": record["name"], "trials": rows, "counts": _counts(rows), "exit_code": sweep_exit_code(rows)}
    finish_parent(record, rows, result["exit_code"], say)
    return result


def finish_parent(record: dict, rows: list[dict], exit_code: int, say: Say) -> None:
    """Close the parent run with the best trial's final metrics (lower is better) and which trial it was."""
    parent = record.get("parent_run_id")
    if not parent:
        return
    metric = (record.get("early_stopping") or {}).get("metric", "eval_loss")
    scored = [r for r in rows if isinstance((r.get("metrics") or {}).get(metric), (int, float))]
    if not scored:
        metric = "train_loss"
        scored = [r for r in rows if isinstance((r.get("metrics") or {}).get(metric), (int, float))]
    try:
        tracker = _tracker(record.get("tracking_uri"), record.get("experiment") or "azft")
        metrics = {}
        if scored:
            best = min(scored, key=lambda r: r["metrics"][metric])
            metrics = {f"best_{metric}": best["metrics"][metric]}
            tracker.set_tags(
                parent, {"azft.sweep_best_trial": str(best["trial"]), "azft.sweep_best_job": best["job_name"]}
            )
        status = {EXIT_OK: "Completed", EXIT_CANCELLED: "Canceled"}.get(exit_code, "Failed")
        tracker.log_final(parent, metrics, status)
    except Exception as e:  # tracking never hides the outcome
        say(f"warning: could not close the sweep's MLflow parent run: {e}")


# ----------------------------------------------------------------------------------------------------------------
# Comparing the trials
# ----------------------------------------------------------------------------------------------------------------


def trial_runs(record: dict, tracker: Any) -> dict[str, str]:
    """{job name: MLflow run id} of the sweep's submitted trials."""
    from azft.state import lookup_submission

    out = {}
    for t in record.get("trials") or []:
        name = t.get("job_name")
        if not name or t.get("submitted") not in ("submitted", "existing"):
            continue
        run_id = (lookup_submission(name) or {}).get("mlflow_run_id") or tracker.find_run_for_job(name)
        if run_id:
            out[name] = tracker.resolve(run_id) or run_id
    return out


def compare_sweep(
    record: dict,
    *,
    out: Any,
    metric: str = "loss",
    log_artifact: bool = True,
    tracking_uri: Optional[str] = None,
    rank_by: Optional[str] = None,
) -> dict[str, Any]:
    """One curve per trial in a PNG, and the trials ranked by ``rank_by`` (lowest first; default eval_loss when any
    trial has it, else train_loss), from the trials' MLflow runs."""
    from azft.metrics import canonical

    tracker = _tracker(tracking_uri or record.get("tracking_uri"), record.get("experiment") or "azft")
    runs = trial_runs(record, tracker)
    if not runs:
        raise UsageError(
            f"sweep {record['name']} has no trial with an MLflow run",
            hint="trials submitted with tracking off are not in MLflow; `azft status` shows them",
        )
    finals = {name: canonical(tracker.get_run(run_id).data.metrics) for name, run_id in runs.items()}
    if rank_by is None:
        rank_by = "eval_loss" if any("eval_loss" in m for m in finals.values()) else "train_loss"
    png = tracker.compare_plot(list(runs.values()), out, metric=metric)
    parent = record.get("parent_run_id")
    if log_artifact and parent:
        tracker.log_artifact(parent, png, artifact_path="comparisons")
    rows = []
    for t in record.get("trials") or []:
        value = finals.get(t.get("job_name") or "", {}).get(rank_by)
        rows.append(
            {
                "trial": t["trial"],
                "job_name": t.get("job_name"),
                "values": t["values"],
                "run_id": runs.get(t.get("job_name") or ""),
                "value": value,
                "status": tracker.get_run(runs[t["job_name"]]).info.status
                if t.get("job_name") in runs
                else "NOT_SUBMITTED",
            }
        )
    ranked = sorted(rows, key=lambda r: (r["value"] is None, r["value"] if r["value"] is not None else 0, r["trial"]))
    for i, r in enumerate(x for x in ranked if x["value"] is not None):
        r["rank"] = i + 1
    best = ranked[0] if ranked and ranked[0]["value"] is not None else None
    return {
        "sweep": record["name"],
        "rank_by": rank_by,
        "png": str(png),
        "curves": len(runs),
        "logged": bool(log_artifact and parent),
        "parent_run_id": parent,
        "ranked": ranked,
        "best": best,
    }

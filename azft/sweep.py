"""Sweeps: one spec with a ``sweep:`` section → many trials, planned, submitted, watched and compared together.

* :func:`expand` turns the spec into trial specs (a grid in written order, or a seeded random sample of it). Each
  trial is the base spec with its values set and no ``sweep:`` section, so its job name is the one a single submit of
  that spec would get: an identical re-submit finds the same trials.
* :func:`plan_sweep` plans every trial on its backend (``azft.api.plan``): an invalid trial is reported with its values
  and the others are still planned; the totals (cost, trial-hours, wall-hours at ``max_concurrent``) are held against
  ``budget:`` (max_usd: the sum over trials; max_hours: each trial).
* Submitting, the sweep record and watching the trials are in :mod:`azft.sweep_run`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from azft.errors import AzftError, IncompatibleError, Problem
from azft.spec import SWEEP_BACKEND_KEY, BudgetSpec, JobSpec, SweepSpec, line_of

SWEEP_PARAMETER_LINE = ("sweep", "parameters")


def sweep_of(spec: JobSpec) -> SweepSpec:
    """The spec's sweep section; a spec without one is refused (exit 2)."""
    if spec.sweep is None:
        raise IncompatibleError(f"{spec.name} has no sweep: section", hint="docs/sweeps.md shows one")
    return spec.sweep


@dataclass
class Trial:
    """One combination of the sweep's values: its spec (None when the values make an invalid spec) and its plan."""

    index: int  # 1-based, in expansion order
    values: dict[str, Any]
    backend: str
    spec: Optional[JobSpec] = None
    problems: list[Problem] = field(default_factory=list)
    plan: Any = None  # azft.plan.Plan

    @property
    def job_name(self) -> Optional[str]:
        return self.plan.job_name if self.plan is not None else None

    @property
    def reasons(self) -> list[str]:
        """Why this trial cannot be submitted (empty when it can)."""
        out = [
            (f"{p.field}: " if p.field and not p.message.startswith(p.field) else "") + p.message for p in self.problems
        ]
        if self.plan is not None:
            out += list(self.plan.verdict.reasons)
            budget = self.plan.budget or {}
            out += [f"budget: {p}" for p in budget.get("problems") or [] if "max_hours" in p]
        return out

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.reasons

    def to_dict(self) -> dict[str, Any]:
        est = self.plan.estimate if self.plan is not None else {}
        return {
            "trial": self.index,
            "job_name": self.job_name,
            "backend": self.backend,
            "values": self.values,
            "ok": self.ok,
            "reasons": self.reasons,
            "problems": [p.to_dict() for p in self.problems],
            "cost_usd": est.get("cost_usd"),
            "hours": est.get("hours"),
            "warnings": list(self.plan.verdict.warnings) if self.plan is not None else [],
        }


@dataclass
class SweepPlan:
    spec: JobSpec
    name: str
    backend: str
    strategy: str
    combinations: int
    trials: list[Trial]
    totals: dict[str, Any]
    budget: Optional[dict] = None

    @property
    def invalid(self) -> list[Trial]:
        return [t for t in self.trials if not t.ok]

    @property
    def ok(self) -> bool:
        return not self.invalid and (self.budget or {}).get("ok", True)

    def to_dict(self) -> dict[str, Any]:
        from azft.redact import redact

        sw = sweep_of(self.spec)
        return redact(
            {
                "sweep": self.name,
                "spec_name": self.spec.name,
                "backend": self.backend,
                "strategy": self.strategy,
                "combinations": self.combinations,
                "max_trials": sw.max_trials,
                "max_concurrent": sw.max_concurrent,
                "seed": sw.seed if self.strategy == "random" else None,
                "parameters": list(sw.parameters),
                "ok": self.ok,
                "invalid": [t.index for t in self.invalid],
                "trials": [t.to_dict() for t in self.trials],
                "totals": self.totals,
                "budget": self.budget,
                "early_stopping": sw.early_stopping.model_dump() if sw.early_stopping else None,
                "tracking": {"experiment": self.spec.experiment, "tracking_uri": self.spec.tracking.tracking_uri},
            }
        )


def values_text(values: dict[str, Any]) -> str:
    """``learning_rate=0.0001, lora.r=8``: each swept value under its path (hyperparameters' without the section)."""
    from azft.render import cell

    return ", ".join(f"{k.removeprefix('hyperparameters.')}={cell(v)}" for k, v in values.items())


# ----------------------------------------------------------------------------------------------------------------
# Expansion
# ----------------------------------------------------------------------------------------------------------------


def combination(parameters: dict[str, list], index: int) -> dict[str, Any]:
    """The ``index``-th combination of the grid, the last parameter varying fastest (as the spec lists them)."""
    out: dict[str, Any] = {}
    for key in reversed(list(parameters)):
        values = parameters[key]
        index, pos = divmod(index, len(values))
        out[key] = values[pos]
    return {k: out[k] for k in parameters}


def grid_size(parameters: dict[str, list]) -> int:
    n = 1
    for values in parameters.values():
        n *= len(values)
    return n


def trial_indices(spec: JobSpec) -> list[int]:
    """Which grid combinations the sweep runs: the first ``max_trials`` (grid) or a sample drawn with ``seed``."""
    sw = sweep_of(spec)
    total = grid_size(sw.parameters)
    k = min(total, sw.max_trials or total)
    if sw.strategy == "random":
        return random.Random(sw.seed).sample(range(total), k)
    return list(range(k))


def _set_path(doc: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _trial_spec(spec: JobSpec, values: dict[str, Any]) -> tuple[Optional[JobSpec], list[Problem]]:
    """The base spec with ``values`` set, no sweep section and the budget's per-trial part (max_hours)."""
    from pydantic import ValidationError

    doc = spec.model_dump(mode="json", exclude={"sweep"})
    hours = spec.budget.max_hours if spec.budget else None
    doc["budget"] = BudgetSpec(max_usd=None, max_hours=hours).model_dump(mode="json") if hours else None
    for path, value in values.items():
        if path != SWEEP_BACKEND_KEY:
            _set_path(doc, path, value)
    file = str(spec.source) if spec.source else None
    lines = dict(getattr(spec, "_lines", None) or {})
    for path in values:
        lines[tuple(path.split("."))] = line_of(spec, *SWEEP_PARAMETER_LINE, path)
    try:
        trial = JobSpec.model_validate(doc)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
            swept = next((p for p in values if loc == p or loc.startswith(p + ".")), None)
            line = line_of(spec, *SWEEP_PARAMETER_LINE, swept) if swept else lines.get(tuple(loc.split(".")))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(
                Problem(
                    f"{msg} (got {err.get('input')!r:.60})" if "input" in err and swept else msg,
                    file=file,
                    line=line,
                    field=loc or None,
                )
            )
        return None, problems
    trial._source = spec.source
    trial._lines = lines
    return trial, []


def expand(spec: JobSpec, backend: str) -> list[Trial]:
    """The sweep's trials, in order; each with its spec or the problems its values make."""
    from azft.backends.base import backend_names

    sw = sweep_of(spec)
    trials = []
    for n, index in enumerate(trial_indices(spec), start=1):
        values = combination(sw.parameters, index)
        trial_backend = values.get(SWEEP_BACKEND_KEY, backend)
        trial = Trial(index=n, values=values, backend=str(trial_backend))
        if trial.backend not in backend_names():
            trial.problems.append(
                Problem(
                    f"backend {trial_backend!r} is not one of {', '.join(backend_names())}",
                    file=str(spec.source) if spec.source else None,
                    field="backend",
                    line=line_of(spec, *SWEEP_PARAMETER_LINE, SWEEP_BACKEND_KEY),
                )
            )
            trials.append(trial)
            continue
        trial.spec, trial.problems = _trial_spec(spec, values)
        trials.append(trial)
    return trials


def trial_problems(
    spec: JobSpec, backend: Optional[str], *, check_data: bool = True, file: Optional[str] = None
) -> tuple[list[Problem], list[str], int]:
    """``azft validate`` of a sweep: every trial's problems (its values as a spec; with a backend, its plan's
    verdict and the sweep's budget too), each problem once with the trials it holds for; the trials' warnings; the
    number of trials."""
    from azft.api import verdict_problems

    if backend:
        sp = plan_sweep(spec, backend, check_data=check_data)
        trials, budget = sp.trials, sp.budget
    else:
        trials, budget = expand(spec, "local"), None
    file = file or (str(spec.source) if spec.source else None)
    found: dict[tuple, tuple[Problem, list[Trial]]] = {}
    warnings: dict[str, None] = {}
    for t in trials:
        mine = list(t.problems)
        if t.plan is not None:
            mine += verdict_problems(t.plan, file=file)
            warnings.update(dict.fromkeys(t.plan.verdict.warnings))
            if not t.plan.ok and t.plan.verdict.alternatives:
                mine[-1].hint = "what works instead: " + "; ".join(t.plan.verdict.alternatives)
        for pr in mine:
            found.setdefault((pr.message, pr.field, pr.line), (pr, []))[1].append(t)
    out = []
    for pr, held in found.values():
        who = (
            f"trial {held[0].index} ({values_text(held[0].values)})"
            if len(held) == 1
            else f"trials {', '.join(str(t.index) for t in held)}"
        )
        out.append(Problem(f"{who}: {pr.message}", file=file, line=pr.line, field=pr.field, hint=pr.hint))
    for text in (budget or {}).get("problems") or []:
        out.append(
            Problem(
                f"sweep budget: {text}",
                file=file,
                line=line_of(spec, "budget"),
                field="budget",
            )
        )
    return out, list(warnings), len(trials)


# ----------------------------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------------------------


def sweep_name(spec: JobSpec, trials: list[Trial]) -> str:
    """``<spec name>-sweep-<hash>``: the same spec and data give the same sweep (and the same trial jobs)."""
    key = json.dumps([[t.index, t.backend, t.job_name or t.values] for t in trials], sort_keys=True, default=str)
    return f"{spec.name}-sweep-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def wall_hours(hours: list[float], slots: int) -> float:
    """Hours until the last trial ends when trials start in order on ``slots`` concurrent slots."""
    free = [0.0] * max(1, min(slots, len(hours) or 1))
    for h in hours:
        heapq.heappush(free, heapq.heappop(free) + h)
    return max(free)


def totals(spec: JobSpec, trials: list[Trial]) -> dict[str, Any]:
    planned = [t for t in trials if t.plan is not None]
    costs = [t.plan.estimate.get("cost_usd") for t in planned]
    hours = [t.plan.estimate.get("hours") for t in planned]
    known_hours = [h for h in hours if h is not None]
    return {
        "trials": len(trials),
        "valid": sum(t.ok for t in trials),
        "invalid": sum(not t.ok for t in trials),
        "cost_usd": round(sum(costs), 4) if costs and None not in costs else None,
        "cost_note": None if costs and None not in costs else "a trial has no cost estimate (pass --prices)",
        "trial_hours": round(sum(known_hours), 4) if known_hours and None not in hours else None,
        "longest_trial_hours": max(known_hours) if known_hours else None,
        "wall_hours": round(wall_hours(known_hours, sweep_of(spec).max_concurrent), 4)
        if known_hours and None not in hours
        else None,
        "max_concurrent": sweep_of(spec).max_concurrent,
    }


def sweep_budget(spec: JobSpec, tot: dict, max_usd: Optional[float]) -> Optional[dict]:
    """The sweep's total cost against max_usd, its longest trial against max_hours (azft.budget.check's shape)."""
    from azft.budget import check, spec_limits

    lim = spec_limits(spec, max_usd)
    estimate = {
        "cost_usd": tot["cost_usd"],
        "hours": tot["longest_trial_hours"],
        "cost_note": tot["cost_note"],
        "trials": tot["trials"],
    }
    result = check(estimate, spec, lim)
    if result is None:
        return None
    result["problems"] = [
        f"longest trial: {p}"
        if "max_hours" in p
        else p.replace("estimated cost", f"estimated sweep cost (sum over {tot['trials']} trials)")
        for p in result["problems"]
    ]
    result["trials"] = tot["trials"]
    if not result["ok"] and tot["cost_usd"] is not None:
        result.setdefault("changes", []).insert(
            0, f"fewer trials (sweep.max_trials; now {tot['trials']}) or fewer values per parameter"
        )
    return result


def plan_sweep(
    spec: JobSpec,
    backend: str = "local",
    *,
    prices: Optional[str] = None,
    max_usd: Optional[float] = None,
    check_data: bool = True,
) -> SweepPlan:
    """Every trial's plan (an invalid trial keeps its problems; the others are planned), the totals and the budget."""
    from azft import api

    trials = expand(spec, backend)
    for t in trials:
        if t.spec is None:
            continue
        try:
            # the request each trial's backend would send is built at submit; the sweep's plan shows trials, not it
            t.plan = api.plan(t.spec, t.backend, prices=prices, check_data=check_data, render=False)
        except AzftError as e:  # one trial's refusal does not hide the others
            t.problems.append(Problem(e.message, file=str(spec.source) if spec.source else None, hint=e.hint))
    tot = totals(spec, trials)
    sw = sweep_of(spec)
    return SweepPlan(
        spec=spec,
        name=sweep_name(spec, trials),
        backend=backend,
        strategy=sw.strategy,
        combinations=grid_size(sw.parameters),
        trials=trials,
        totals=tot,
        budget=sweep_budget(spec, tot, max_usd),
    )

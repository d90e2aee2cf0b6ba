"""Budgets: a plan's estimate against the spec's ``budget:`` (or ``--max-usd``), and the refusal that names the numbers.

Pure: no I/O. ``check`` is what ``azft plan`` shows; ``enforce`` is what ``azft submit`` runs before any upload.
"""

from __future__ import annotations

import calendar
import time
from typing import Any, Optional

from azft.errors import EXIT_INVALID, AzftError

INPUT_KEYS = (
    "training_tokens_total",
    "token_count",
    "epochs",
    "price_per_1k_tokens",
    "price_per_node_hour",
    "price_source",
    "assumed_tokens_per_second_per_gpu",
    "gpus",
    "instance_type",
    "instance_count",
    "formula",
)


class BudgetExceededError(AzftError):
    """The estimate is above the budget (or cannot be checked against it); nothing was uploaded or submitted."""

    exit_code = EXIT_INVALID


def limits(max_usd: Optional[float], max_hours: Optional[float], *, source: str = "budget") -> Optional[dict]:
    if max_usd is None and max_hours is None:
        return None
    return {"max_usd": max_usd, "max_hours": max_hours, "source": source}


def spec_limits(spec: Any, max_usd: Optional[float] = None) -> Optional[dict]:
    """The spec's budget, ``--max-usd`` overriding (lowering or setting) its ``max_usd``."""
    b = getattr(spec, "budget", None)
    usd = b.max_usd if b else None
    hours = b.max_hours if b else None
    source = "budget"
    if max_usd is not None and (usd is None or max_usd < usd):
        usd, source = max_usd, "--max-usd"
    return limits(usd, hours, source=source)


def _changes(estimate: dict, spec: Any, over_usd: bool, over_hours: bool) -> list[str]:
    out = []
    hp = spec.hyperparameters
    out.append(f"fewer epochs (hyperparameters.epochs is {estimate.get('epochs')}) or a hyperparameters.max_steps cap")
    out.append("less training data (the estimate scales with training tokens)")
    if estimate.get("instance_type") and over_usd:
        out.append(
            f"a cheaper compute.instance_type than {estimate['instance_type']} (`azft plan --fit` lists sizes "
            "with hours and cost)"
        )
    if estimate.get("instance_count", 1) > 1 and over_hours:
        out.append(f"more nodes shorten the run (compute.instance_count is {estimate['instance_count']})")
    if hp.max_seq_length and over_usd:
        out.append(f"a shorter hyperparameters.max_seq_length (now {hp.max_seq_length}) if your examples allow it")
    return out


def check(estimate: dict, spec: Any, lim: Optional[dict]) -> Optional[dict]:
    """The estimate against the limits: cost, hours, verdict, the estimate's inputs and what to change."""
    if not lim:
        return None
    cost, hours = estimate.get("cost_usd"), estimate.get("hours")
    problems: list[str] = []
    over_usd = over_hours = False
    if lim.get("max_usd") is not None:
        if cost is None:
            problems.append(
                f"no cost estimate to hold against max_usd {lim['max_usd']:g} "
                f"({estimate.get('cost_note') or 'no price for this model and size'})"
            )
        elif cost > lim["max_usd"]:
            over_usd = True
            problems.append(f"estimated cost ${cost:,.2f} exceeds max_usd ${lim['max_usd']:,.2f} ({lim['source']})")
    if lim.get("max_hours") is not None and hours is not None and hours > lim["max_hours"]:
        over_hours = True
        problems.append(f"estimated {hours:g} h exceeds max_hours {lim['max_hours']:g}")
    out = {
        **lim,
        "cost_usd": cost,
        "hours": hours,
        "ok": not problems,
        "problems": problems,
        "inputs": {k: estimate[k] for k in INPUT_KEYS if estimate.get(k) is not None},
    }
    if lim.get("max_hours") is not None and hours is None:
        out["note"] = "no time estimate for this backend: max_hours is enforced while the job runs, not before"
    if problems:
        out["changes"] = (
            _changes(estimate, spec, over_usd, over_hours)
            if (over_usd or over_hours)
            else ["pass --prices prices.yaml (see examples/prices.yaml) so the estimate has a price"]
        )
        if over_usd:
            out["changes"].append(f"or raise budget.max_usd to at least {cost:g}")
    return out


def refusal(name: str, result: dict) -> BudgetExceededError:
    inputs = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in result["inputs"].items())
    return BudgetExceededError(
        f"{name} is over its budget; nothing was uploaded or submitted: "
        + "; ".join(result["problems"])
        + (f". Estimate inputs — {inputs}" if inputs else ""),
        hint="change: " + "; ".join(result.get("changes") or []),
    )


def enforce(plan: Any, max_usd: Optional[float] = None) -> None:
    """Raise BudgetExceededError when the plan's estimate is above its budget or ``max_usd``."""
    result = plan.budget if max_usd is None else check(plan.estimate, plan.spec, spec_limits(plan.spec, max_usd))
    if result and not result["ok"]:
        raise refusal(plan.job_name, result)


# ----------------------------------------------------------------------------------------------------------------
# max_hours while the job runs
# ----------------------------------------------------------------------------------------------------------------


def seconds_left(record: dict, now: Optional[float] = None) -> Optional[float]:
    """Seconds until a submitted job passes its max_hours (negative: already past); None without a limit."""
    hours, created = record.get("max_hours"), record.get("created")
    if not hours or not created:
        return None
    start = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    return start + float(hours) * 3600 - (time.time() if now is None else now)

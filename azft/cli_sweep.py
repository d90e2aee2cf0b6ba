"""What `azft plan|submit|status|wait|cancel` print for a sweep (a spec with `sweep:`, or a sweep's name).

Imports only click at module level; the sweep modules and rich are imported when a command runs.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from azft.errors import EXIT_INVALID, EXIT_OK


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def emit(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        import yaml

        click.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False, allow_unicode=True))


# ----------------------------------------------------------------------------------------------------------------
# plan
# ----------------------------------------------------------------------------------------------------------------


def plan_command(spec: Any, backend: str, output: str, prices: Optional[str], max_usd: Optional[float]) -> int:
    from azft.sweep import plan_sweep

    sp = plan_sweep(spec, backend, prices=prices, max_usd=max_usd)
    data = sp.to_dict()
    if output == "table":
        print_plan(data)
    else:
        emit(data, output)
    return EXIT_OK if sp.ok else EXIT_INVALID


def print_plan(d: dict) -> None:
    from rich.table import Table

    from azft.render import cell, print_table
    from azft.sweep import values_text

    con = _console()
    how = (
        f"grid of {d['combinations']}"
        if d["strategy"] == "grid"
        else f"random sample (seed {d['seed']}) of {d['combinations']} combinations"
    )
    con.print(
        f"[bold]sweep {d['sweep']}[/] — {len(d['trials'])} trials ({how}), backend {d['backend']}, "
        f"at most {d['max_concurrent']} at once"
    )
    t = Table(title=None)
    t.add_column("trial", justify="right", no_wrap=True)
    t.add_column("job", no_wrap=True)
    t.add_column("values", overflow="fold")
    t.add_column("cost", justify="right", no_wrap=True)
    t.add_column("hours", justify="right", no_wrap=True)
    t.add_column("verdict", overflow="fold")
    for tr in d["trials"]:
        verdict = "[green]can run[/]" if tr["ok"] else "[red]✗ " + _esc("; ".join(tr["reasons"])) + "[/]"
        backend = "" if tr["backend"] == d["backend"] else f" on {tr['backend']}"
        t.add_row(
            str(tr["trial"]),
            _esc(cell(tr["job_name"])),
            _esc(values_text(tr["values"]) + backend),
            cell(tr["cost_usd"], "usd"),
            cell(tr["hours"], "hours"),
            verdict,
        )
    print_table(con, t)
    tot = d["totals"]
    con.print(
        f"total: {tot['trials']} trials ({tot['valid']} can run, {tot['invalid']} cannot) · cost "
        f"{cell(tot['cost_usd'], 'usd')} · {cell(tot['trial_hours'], 'hours')} of training · about "
        f"{cell(tot['wall_hours'], 'hours')} end to end at {tot['max_concurrent']} at once"
    )
    if tot.get("cost_note") and tot["cost_usd"] is None:
        con.print(f"  [dim]{_esc(tot['cost_note'])}[/]")
    warnings = sorted({w for tr in d["trials"] for w in tr["warnings"]})
    for w in warnings:
        con.print(f"  [yellow]![/] {_esc(w)}")
    if d.get("budget"):
        print_budget(con, d["budget"])
    if d["invalid"]:
        con.print(
            f"[bold red]{len(d['invalid'])} trial(s) cannot run: "
            f"{', '.join(str(i) for i in d['invalid'])}; `azft submit` refuses the sweep "
            "(or submits the others with --skip-invalid)[/]"
        )
    elif d["ok"]:
        con.print("[bold green]verdict: every trial can run[/]")


def print_budget(con, b: dict) -> None:
    from azft.render import cell

    limit = ", ".join(
        f"{k} {b[k]:g}" + (" (sum over trials)" if k == "max_usd" else " (per trial)")
        for k in ("max_usd", "max_hours")
        if b.get(k) is not None
    )
    style, word = ("green", "within budget") if b["ok"] else ("red", "over budget: submit refuses the sweep")
    con.print(
        f"[bold {style}]budget: {word}[/] — sweep {cell(b.get('cost_usd'), 'usd')}, longest trial "
        f"{cell(b.get('hours'), 'hours')} against {limit} ({b['source']})"
    )
    for p in b.get("problems") or []:
        con.print(f"  [red]✗[/] {_esc(p)}")
    for c in b.get("changes") or []:
        con.print(f"    → {_esc(c)}")


# ----------------------------------------------------------------------------------------------------------------
# submit / status / wait / cancel
# ----------------------------------------------------------------------------------------------------------------


def sweep_for(ref: str) -> Optional[dict]:
    """The sweep `ref` names (its name, or a prefix no submitted job also starts with); None for a job."""
    from azft.state import JOB_NAME_RE, lookup_sweep, submissions
    from azft.sweep_run import find_sweep, lookup_record

    if not JOB_NAME_RE.fullmatch(ref):
        return None
    if lookup_sweep(ref):
        return lookup_record(ref)
    if any(name.startswith(ref) for name in submissions()):
        return None
    return find_sweep(ref)


def submit_command(
    spec: Any,
    backend: str,
    *,
    output: str,
    prices: Optional[str],
    max_usd: Optional[float],
    retry: bool,
    skip_invalid: bool,
    wait: bool,
    timeout: Optional[float],
    poll: Optional[float],
    cancel_on_interrupt: bool,
) -> int:
    from azft.sweep import plan_sweep
    from azft.sweep_run import lookup_record, submit_exit_code, submit_sweep

    con = _console(stderr=True)
    say = (lambda m: con.print(_esc(m))) if output == "table" else None
    sp = plan_sweep(spec, backend, prices=prices, max_usd=max_usd)
    result = submit_sweep(sp, max_usd=max_usd, retry=retry, skip_invalid=skip_invalid, on_event=say)
    code = submit_exit_code(result)
    if output == "table":
        print_submitted(result)
    if not wait:
        if output != "table":
            emit(result, output)
        return code
    rc = follow(
        lookup_record(result["sweep"]),
        output=output,
        timeout=timeout,
        poll=poll,
        cancel_on_interrupt=cancel_on_interrupt,
    )
    return code or rc


def print_submitted(result: dict) -> None:
    from azft.sweep import values_text

    con = _console()
    for r in result["trials"]:
        what = {
            "submitted": "submitted",
            "existing": "already submitted (found)",
            "skipped": "skipped (cannot run)",
            "error": "[red]not submitted[/]",
        }[r["submitted"]]
        tail = f" — {_esc(r['error'])}" if r.get("error") else ""
        con.print(
            f"trial {r['trial']} [bold]{_esc(r.get('job_name') or '—')}[/] ({_esc(values_text(r['values']))}): "
            f"{what}{tail}"
        )
    con.print(
        f"[bold]sweep {result['sweep']}[/]: {result['submitted']} submitted, {result['existing']} found, "
        f"{result['error']} not submitted, {result['skipped']} skipped"
        + (
            f" · mlflow parent run {result['parent_run_id']} (experiment {result['experiment']})"
            if result.get("parent_run_id")
            else ""
        )
    )
    if result["error"]:
        con.print(f"[red]{result['error']} trial(s) were not submitted; `azft submit` again submits only those[/]")
    con.print(f"next: [bold]azft wait {result['sweep']}[/] · [bold]azft runs compare {result['sweep']}[/]")


def print_rows(d: dict, title: str) -> None:
    from rich.table import Table

    from azft.render import cell, id_column, print_table
    from azft.sweep import values_text

    t = Table(title=title, title_justify="left")
    t.add_column("trial", justify="right", no_wrap=True)
    id_column(t, "job")
    t.add_column("values", overflow="fold")
    t.add_column("status", no_wrap=True)
    t.add_column("eval_loss", justify="right", no_wrap=True)
    t.add_column("train_loss", justify="right", no_wrap=True)
    t.add_column("note", overflow="fold")
    for r in d["trials"]:
        m = r.get("metrics") or {}
        note = r.get("stopped") or ((f"{r['error_code']}: " if r.get("error_code") else "") + (r.get("error") or ""))
        style = {"Completed": "green", "Failed": "red", "NotSubmitted": "red"}.get(r["status"], "yellow")
        t.add_row(
            str(r["trial"]),
            cell(r.get("job_name")),
            _esc(values_text(r["values"])),
            f"[{style}]{r['status']}[/]",
            cell(m.get("eval_loss")),
            cell(m.get("train_loss")),
            _esc(cell(note)),
        )
    print_table(_console(), t)
    _console().print(", ".join(f"{n} {k}" for k, n in d["counts"].items()))


def status_command(record: dict, output: str) -> int:
    from azft.sweep_run import sweep_status

    d = sweep_status(record)
    if output == "table":
        print_rows(d, f"sweep {record['name']}")
    else:
        emit(d, output)
    return EXIT_OK


def cancel_command(record: dict, output: str) -> int:
    from azft.sweep_run import cancel_sweep

    con = _console(stderr=True)
    d = cancel_sweep(record, say=(lambda m: con.print(_esc(m))) if output == "table" else None)
    if output == "table":
        print_rows(d, f"sweep {record['name']}: cancel requested for every trial still running")
    else:
        emit(d, output)
    return EXIT_OK


def follow(
    record: dict, *, output: str, timeout: Optional[float], poll: Optional[float], cancel_on_interrupt: bool
) -> int:
    """`azft wait SWEEP` (and `submit --wait`): every trial to its end; exit 0 all completed, 1 a trial failed or was
    not submitted, 3 a trial was canceled (early stopping aside) or the timeout passed. With ``cancel_on_interrupt``
    the caller has made SIGTERM/SIGHUP interrupt too."""
    import time

    from azft.errors import EXIT_CANCELLED
    from azft.sweep_run import cancel_sweep, wait_sweep

    con = _console(stderr=True)
    started = time.monotonic()

    def update(trial: dict, info: Any) -> None:
        if output == "table":
            elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - started))
            con.print(f"[dim]{elapsed}[/] trial {trial['trial']} [bold]{info.name}[/] → {info.status.value}")

    try:
        d = wait_sweep(
            record,
            timeout=timeout,
            poll_interval=poll,
            on_update=update,
            on_event=lambda m: con.print(f"[yellow]{_esc(m)}[/]") if output == "table" else None,
        )
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            cancel_sweep(record, say=lambda m: con.print(_esc(m)))
            con.print(f"interrupted: cancel requested for every running trial of {record['name']}")
        else:
            con.print(f"interrupted: the trials keep running; `azft wait {record['name']}` resumes watching")
        return EXIT_CANCELLED
    if output == "table":
        print_rows(d, f"sweep {record['name']}")
    else:
        emit(d, output)
    return d["exit_code"]


# ----------------------------------------------------------------------------------------------------------------
# runs compare SWEEP
# ----------------------------------------------------------------------------------------------------------------


def compare_command(
    record: dict,
    *,
    out: Any,
    metric: str,
    log_artifact: bool,
    tracking_uri: Optional[str],
    output: str,
    rank_by: Optional[str],
) -> None:
    """Every trial's curve in one PNG (also logged to the sweep's parent run) and the trials ranked by a final
    metric, lowest first, with the best trial's values."""
    from azft.sweep_run import compare_sweep

    d = compare_sweep(
        record, out=out, metric=metric, log_artifact=log_artifact, tracking_uri=tracking_uri, rank_by=rank_by
    )
    if output == "json":
        emit(d, "json")
        return
    from rich.table import Table

    from azft.render import cell, id_column, print_table
    from azft.sweep import values_text

    t = Table(title=f"sweep {d['sweep']}: trials ranked by {d['rank_by']} (lowest first)", title_justify="left")
    for col in ("rank", "trial"):
        t.add_column(col, justify="right", no_wrap=True)
    id_column(t, "job")
    t.add_column("values", overflow="fold")
    t.add_column("status", no_wrap=True)
    t.add_column(d["rank_by"], justify="right", no_wrap=True)
    for r in d["ranked"]:
        t.add_row(
            cell(r.get("rank")),
            str(r["trial"]),
            cell(r.get("job_name")),
            _esc(values_text(r["values"])),
            cell(r.get("status")),
            cell(r.get("value")),
        )
    con = _console()
    print_table(con, t)
    if d.get("best"):
        b = d["best"]
        con.print(
            f"[bold green]best: trial {b['trial']} ({_esc(b['job_name'])})[/] {d['rank_by']} "
            f"{cell(b['value'])} — {_esc(values_text(b['values']))}"
        )
    con.print(
        f"curves: {d['png']} ({d['curves']} trials)"
        + (" (also logged to the sweep's parent run under comparisons/)" if d.get("logged") else "")
    )

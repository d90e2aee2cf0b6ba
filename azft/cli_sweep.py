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


def values_text(values: dict[str, Any]) -> str:
    """``learning_rate=0.0001, lora.r=8``: each swept value under its path (sections of one word kept)."""
    from azft.render import cell

    return ", ".join(f"{k.removeprefix('hyperparameters.')}={cell(v)}" for k, v in values.items())


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

    con = _console()
    how = f"grid of {d['combinations']}" if d["strategy"] == "grid" else \
        f"random sample (seed {d['seed']}) of {d['combinations']} combinations"
    con.print(f"[bold]sweep {d['sweep']}[/] — {len(d['trials'])} trials ({how}), backend {d['backend']}, "
              f"at most {d['max_concurrent']} at once")
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
        t.add_row(str(tr["trial"]), _esc(cell(tr["job_name"])), _esc(values_text(tr["values"]) + backend),
                  cell(tr["cost_usd"], "usd"), cell(tr["hours"], "hours"), verdict)
    print_table(con, t)
    tot = d["totals"]
    con.print(f"total: {tot['trials']} trials ({tot['valid']} can run, {tot['invalid']} cannot) · cost "
              f"{cell(tot['cost_usd'], 'usd')} · {cell(tot['trial_hours'], 'hours')} of training · about "
              f"{cell(tot['wall_hours'], 'hours')} end to end at {tot['max_concurrent']} at once")
    if tot.get("cost_note") and tot["cost_usd"] is None:
        con.print(f"  [dim]{_esc(tot['cost_note'])}[/]")
    warnings = sorted({w for tr in d["trials"] for w in tr["warnings"]})
    for w in warnings:
        con.print(f"  [yellow]![/] {_esc(w)}")
    if d.get("budget"):
        print_budget(con, d["budget"])
    if d["invalid"]:
        con.print(f"[bold red]{len(d['invalid'])} trial(s) cannot run: "
                  f"{', '.join(str(i) for i in d['invalid'])}; `azft submit` refuses the sweep "
                  "(or submits the others with --skip-invalid)[/]")
    elif d["ok"]:
        con.print("[bold green]verdict: every trial can run[/]")


def print_budget(con, b: dict) -> None:
    from azft.render import cell

    limit = ", ".join(f"{k} {b[k]:g}" + (" (sum over trials)" if k == "max_usd" else " (per trial)")
                      for k in ("max_usd", "max_hours") if b.get(k) is not None)
    style, word = ("green", "within budget") if b["ok"] else ("red", "over budget: submit refuses the sweep")
    con.print(f"[bold {style}]budget: {word}[/] — sweep {cell(b.get('cost_usd'), 'usd')}, longest trial "
              f"{cell(b.get('hours'), 'hours')} against {limit} ({b['source']})")
    for p in b.get("problems") or []:
        con.print(f"  [red]✗[/] {_esc(p)}")
    for c in b.get("changes") or []:
        con.print(f"    → {_esc(c)}")

"""``azft data check|stats|split``: find every data error before anything is uploaded."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from azft.data.tasks import TASKS
from azft.errors import EXIT_INVALID, EXIT_OK, AzftError, UsageError


def _handle_errors(fn: Callable) -> Callable:
    """AzftError → one message (and hint) on stderr and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AzftError as exc:
            if kwargs.get("output") == "jsonl":
                click.echo(
                    json.dumps(
                        {
                            "type": "error",
                            "error": exc.message,
                            "hint": exc.hint,
                            "exit_code": exc.exit_code,
                            "problems": [p.to_dict() for p in exc.problems],
                        }
                    )
                )
                sys.exit(exc.exit_code)
            if kwargs.get("output") == "json":
                click.echo(
                    json.dumps(
                        {
                            "ok": False,
                            "error": exc.message,
                            "hint": exc.hint,
                            "exit_code": exc.exit_code,
                            "problems": [p.to_dict() for p in exc.problems],
                        },
                        indent=2,
                    )
                )
                sys.exit(exc.exit_code)
            click.echo(f"error: {exc.message}", err=True)
            for p in exc.problems:
                click.echo(f"  ✗ {p.render()}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _check_options(fn: Callable, outputs: tuple[str, ...] = ("table", "json")) -> Callable:
    options = [
        click.argument("file", type=click.Path(dir_okay=True, path_type=str)),
        click.option(
            "--task",
            "-t",
            type=click.Choice(("auto",) + TASKS),
            default="auto",
            show_default=True,
            help="Data format to check; auto guesses it from the first rows.",
        ),
        click.option(
            "--model",
            "-m",
            default=None,
            help="Catalog model id: its context length, and its tokenizer when cached locally.",
        ),
        click.option(
            "--tokenizer",
            default=None,
            help="Tokenizer directory, Hugging Face hub id (local cache only) or tiny-phi3; overrides the model's.",
        ),
        click.option(
            "--context-length",
            type=click.IntRange(min=1),
            default=None,
            help="Context length in tokens (overrides the model's).",
        ),
        click.option(
            "--backend",
            type=click.Choice(("maas", "maap", "local", "mock")),
            default=None,
            help="Add the backend's limits (maas: 512 MB per file).",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Epochs, for the billing-token estimate.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Worker processes for large files (default: one per core).",
        ),
        click.option(
            "--output",
            "-o",
            type=click.Choice(outputs),
            default="table",
            show_default=True,
            help="table, json"
            + (
                ", or jsonl: every problem as one JSON object per line as it is found, then a summary line"
                if "jsonl" in outputs
                else ""
            )
            + ".",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _run_check(file: str, task: str, model, tokenizer, context_length, backend, epochs, workers, **extra):
    from azft.data import check_file

    return check_file(
        file,
        None if task == "auto" else task,
        model=model,
        tokenizer=tokenizer,
        max_tokens=context_length,
        backend=backend,
        epochs=epochs,
        workers=workers,
        **extra,
    )


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@click.group("data")
def data() -> None:
    """Check, summarize, split and convert training data."""


@data.command("check")
@functools.partial(_check_options, outputs=("table", "json", "jsonl"))
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Problems listed per kind (the JSON output keeps up to 50 per kind; --all lists every one).",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every problem as it is found, however many (table output; jsonl always does).",
)
@click.option(
    "--write-valid",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Copy the rows without errors to this file, byte for byte.",
)
@click.option(
    "--write-invalid",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Copy the rows with errors to this file, byte for byte; their line numbers and problems go to "
    "<name>.problems.jsonl beside it.",
)
@_handle_errors
def check_cmd(
    file,
    task,
    model,
    tokenizer,
    context_length,
    backend,
    epochs,
    workers,
    output,
    show,
    show_all,
    write_valid,
    write_invalid,
):
    """Report every problem in FILE with its line and field. Exit 2 when there are errors.

    With --write-valid/--write-invalid the same pass splits FILE into the rows that pass and the rows that fail;
    the exit code still says whether FILE itself has errors."""
    if show_all and output == "json":
        raise UsageError(
            "--all with --output json would hold every problem in memory",
            hint="use --output jsonl: one JSON object per problem, streamed as found",
        )
    on_problem = None
    if output == "jsonl":
        on_problem = _jsonl_writer()
    elif show_all:
        on_problem = _line_writer()
    report = _run_check(
        file,
        task,
        model,
        tokenizer,
        context_length,
        backend,
        epochs,
        workers,
        on_problem=on_problem,
        write_valid=write_valid,
        write_invalid=write_invalid,
    )
    if output == "jsonl":
        click.echo(json.dumps({"type": "summary", **report.to_dict()}, ensure_ascii=False, separators=(",", ":")))
    elif output == "json":
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_problems(report, 0 if show_all else show, listed=show_all)
        _print_summary(report)
        for role, w in (report.outputs or {}).items():
            extra = f" (line numbers and problems: {w['problems']})" if w.get("problems") else ""
            click.echo(f"{role} rows: {w['rows']:,} → {w['path']}{extra}")
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def _jsonl_writer() -> Callable:
    import orjson

    out = sys.stdout

    def write(p) -> None:
        d = {"type": "problem", **p.to_dict()}
        out.write(orjson.dumps(d).decode() + "\n")

    return write


def _line_writer() -> Callable:
    out = sys.stdout

    def write(p) -> None:
        out.write(f"{p.severity} {p.kind}: {p.render()}\n")

    return write


@data.command("stats")
@_check_options
@_handle_errors
def stats_cmd(file, task, model, tokenizer, context_length, backend, epochs, workers, output):
    """Rows, messages, token distribution, over-length rows, duplicates and billing tokens of FILE."""
    report = _run_check(file, task, model, tokenizer, context_length, backend, epochs, workers)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "path": report.path,
                    "task": report.task,
                    "ok": report.ok,
                    "error_count": report.error_total,
                    "warning_count": report.warning_total,
                    "stats": report.stats.to_dict(),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    _print_stats(report)
    _print_summary(report)


@data.command("split")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--validation",
    "-v",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of rows for the validation file.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Where to write <name>.train.jsonl and <name>.validation.jsonl (default: beside FILE).",
)
@click.option(
    "--task",
    "-t",
    type=click.Choice(("auto",) + TASKS),
    default="auto",
    show_default=True,
    help="Data format the rows are checked against first (auto guesses it from the first rows).",
)
@click.option("--force", is_flag=True, help="Overwrite existing train/validation files.")
@click.option("--output", "-o", type=click.Choice(("table", "json")), default="table", show_default=True)
@_handle_errors
def split_cmd(file, validation, seed, out_dir, task, force, output):
    """Split FILE into train and validation files, the same way every time for the same seed. The rows are
    checked first (as `azft data check` does: an invalid row refuses the split); exact duplicate rows stay on one
    side; existing outputs are kept unless --force."""
    from azft.data import split_file

    info: dict = {}
    train, val = split_file(
        file, validation, seed, out_dir=out_dir, task=None if task == "auto" else task, force=force, info=info
    )
    n_train, n_val = _count_lines(train), _count_lines(val)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "train": str(train),
                    "validation": str(val),
                    "train_rows": n_train,
                    "validation_rows": n_val,
                    "seed": seed,
                    **info,
                }
            )
        )
    else:
        click.echo(f"train:      {train} ({n_train} rows)")
        click.echo(f"validation: {val} ({n_val} rows)")
        click.echo(f"checked:    every row is valid {info.get('task')} data")
        if info.get("duplicate_groups"):
            click.echo(
                f"duplicates: {info['duplicate_rows']} repeated row(s) in {info['duplicate_groups']} "
                "group(s), each group kept on one side"
            )


@data.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "--from",
    "source_format",
    type=click.Choice(("alpaca", "sharegpt", "prompt-completion", "openai", "hf-disk", "auto")),
    default="auto",
    show_default=True,
    help="Source format; auto detects it from the first rows, hf-disk reads a Hugging Face dataset folder "
    "(save_to_disk) or a .parquet/.arrow file and detects the rows' format.",
)
@click.option(
    "--to",
    "target",
    type=click.Choice(("chat-completion", "text-generation")),
    default="chat-completion",
    show_default=True,
    help="Target format: chat messages, or prompt/completion pairs.",
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=str), required=True, help="The JSONL file to write."
)
@click.option("--system", default=None, help="System prompt for conversations that have none.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="NAME=ROLE",
    help="Map another speaker name to system, user or assistant (repeatable), e.g. --role bot=assistant.",
)
@click.option("--split", default=None, help="Split of a Hugging Face dataset folder (default: train).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for large JSON Lines files (default: one per core).",
)
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Skipped rows listed per reason (the JSON output keeps up to 50 per reason).",
)
@click.option("--output", "-o", type=click.Choice(("table", "json")), default="table", show_default=True)
@_handle_errors
def convert_cmd(source, source_format, target, out, system, roles, split, workers, show, output):
    """Convert SOURCE (Alpaca, ShareGPT, prompt/completion, OpenAI chat; JSONL, JSON, Parquet, Arrow or a Hugging
    Face dataset folder) to Azure's chat or prompt/completion JSONL. Rows that cannot be converted are skipped and
    listed with their line; exit 2 when any was skipped (the converted rows are written either way)."""
    from azft.data.convert import convert_file

    role_map = {}
    for item in roles:
        name, sep, role = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--role {item!r}: expected NAME=ROLE", hint="e.g. --role bot=assistant")
        role_map[name] = role
    report = convert_file(
        source,
        out,
        source_format=source_format,
        target=target,
        system=system,
        roles=role_map,
        split=split,
        workers=workers,
    )
    if output == "json":
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_convert(report, show)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def _print_convert(r, show: int) -> None:
    from rich.markup import escape

    con = _console()
    what = f"{r.format} (detected: {r.detected})" if r.detected else r.format
    files = f", {len(r.files)} file{'s' if len(r.files) != 1 else ''}" if r.files else ""
    con.print(f"read {escape(r.source)} ({r.reader}{files}) as {escape(what)}", soft_wrap=True)
    if r.mapping:
        con.print(
            "mapping: " + " · ".join(f"{escape(str(x['from']))} → {x['to']} ({x['count']:,})" for x in r.mapping),
            soft_wrap=True,
        )
    for note, n in r.notes.items():
        con.print(f"note: {escape(note)} ({n:,} row{'s' if n != 1 else ''})", soft_wrap=True)
    if r.blank_lines:
        con.print(f"note: {r.blank_lines:,} blank line(s) ignored")
    verdict = "[green]converted[/]" if r.ok else "[yellow]converted[/]"
    con.print(
        f"{verdict} {r.converted:,} of {r.rows:,} rows to {r.target} → {escape(r.out)} "
        f"({r.size_bytes / 2**20:.1f} MB in {r.elapsed_s:.2f}s)",
        soft_wrap=True,
    )
    if r.skipped:
        con.print(
            f"[red]skipped {r.skipped:,} row{'s' if r.skipped != 1 else ''}[/]: "
            + ", ".join(f"{k} {n:,}" for k, n in r.skipped_counts.items()),
            soft_wrap=True,
        )
        by_kind: dict[str, list] = {}
        for row in r.skipped_rows:
            by_kind.setdefault(row["kind"], []).append(row)
        for kind, rows in by_kind.items():
            for row in rows[:show]:
                fld = f"{row['field']}: " if row.get("field") else ""
                hint = f" — {row['hint']}" if row.get("hint") else ""
                con.print(
                    f"  [red]{escape(kind)}[/] {escape(r.source)} {row['where']}: {escape(fld + row['message'])}"
                    f"{escape(hint)}",
                    soft_wrap=True,
                )
            hidden = r.skipped_counts[kind] - min(len(rows), show)
            if hidden > 0:
                con.print(f"  [dim]… {hidden:,} more {escape(kind)} (--show N, or --output json)[/]")


def _count_lines(path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            n += chunk.count(b"\n")
    return n


# ------------------------------------------------------------------------------------------------ rendering


def _print_problems(report, show: int, listed: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    for severity, counts in (("error", report.error_counts), ("warning", report.warning_counts)):
        if not counts:
            continue
        grouped = report.grouped(severity)
        style = "red" if severity == "error" else "yellow"
        table = Table(
            title=f"{sum(counts.values())} {severity}{'s' if sum(counts.values()) != 1 else ''} in "
            f"{escape(report.path)}",
            title_justify="left",
            title_style=f"bold {style}",
        )
        table.add_column("kind", style=style, no_wrap=True)
        table.add_column("count", justify="right")
        table.add_column("first lines")
        for kind, n in counts.items():
            lines = [str(p.line) for p in grouped.get(kind, []) if p.line][:8]
            more = " …" if n > len(lines) and lines else ""
            table.add_row(kind, str(n), ", ".join(lines) + more)
        con.print(table)
        for kind, items in grouped.items():
            for p in items[:show]:
                con.print(f"  [{style}]{escape(kind)}[/] {escape(p.render())}", soft_wrap=True)
            hidden = counts.get(kind, 0) - min(len(items), show)
            if hidden > 0 and not listed:
                con.print(f"  [dim]… {hidden} more {escape(kind)} (--show N, --all, or --output jsonl)[/]")


def _print_summary(report) -> None:
    s = report.stats
    con = _console()
    exact = "exact" if s.token_count_exact else "estimated"
    verdict = "[green]OK[/]" if report.ok else f"[red]{report.error_total} error(s)[/]"
    con.print(
        f"{verdict}, {report.warning_total} warning(s) · task {report.task} · {s.rows} rows "
        f"({s.valid_rows} valid) · {s.tokens.total:,} tokens ({exact}) · {s.size_bytes / 2**20:.1f} MB in "
        f"{s.elapsed_s:.2f}s",
        soft_wrap=True,
    )


def _print_stats(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    s = report.stats
    con = _console()
    exact = s.token_count_exact
    t = Table(title=f"{escape(report.path)} ({report.task})", title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("rows", f"{s.rows:,} ({s.valid_rows:,} valid, {s.blank_lines} blank lines)")
    if s.messages_per_row:
        mp = s.messages_per_row
        n = sum(mp.values())
        mean = sum(k * v for k, v in mp.items()) / n if n else 0
        t.add_row("messages per row", f"min {min(mp)}, mean {mean:.1f}, max {max(mp)}")
    t.add_row("token counts", ("exact: " if exact else "[yellow]ESTIMATE[/]: ") + escape(s.tokenizer))
    t.add_row("tokens", f"{s.tokens.total:,}" + ("" if exact else " (estimate)"))
    out_name = "assistant tokens" if report.task == "chat-completion" else "output tokens"
    if report.task not in ("text-classification", "token-classification"):
        t.add_row(out_name, f"{s.output_tokens.total:,}")
    ctx = (
        f"{s.over_context_rows:,} over {s.context_length:,} tokens"
        if s.context_length
        else "unknown context length (--model or --context-length)"
    )
    t.add_row("over context", ctx)
    t.add_row("duplicate rows", f"{s.duplicate_rows:,}")
    t.add_row(
        "billing tokens",
        f"{s.billing_tokens_estimate:,} (tokens × {s.epochs} epoch{'s' if s.epochs > 1 else ''}, an estimate)",
    )
    con.print(t)

    for title, ts in (("tokens per row", s.tokens), (f"{out_name} per row", s.output_tokens)):
        if not ts.rows or (
            title != "tokens per row" and report.task in ("text-classification", "token-classification")
        ):
            continue
        d = Table(title=title + ("" if exact else " (estimate)"), title_justify="left")
        for col in ("min", "mean", *ts.percentiles, "max"):
            d.add_column(col, justify="right")
        d.add_row(str(ts.min), f"{ts.mean:,.1f}", *(f"{v:,}" for v in ts.percentiles.values()), f"{ts.max:,}")
        con.print(d)
        h = Table(show_header=True, box=None, padding=(0, 1))
        h.add_column("tokens", justify="right")
        h.add_column("rows", justify="right")
        h.add_column("")
        peak = max(n for _, _, n in ts.histogram) or 1
        for lo, hi, n in ts.histogram:
            h.add_row(
                f"{lo:,}" if hi - 1 == lo else f"{lo:,}–{hi - 1:,}",
                f"{n:,}",
                "█" * max(1 if n else 0, round(30 * n / peak)),
            )
        con.print(h)
    if s.labels:
        lt = Table(title="labels" + (" (first 1000 distinct)" if s.labels_truncated else ""), title_justify="left")
        lt.add_column("label")
        lt.add_column("rows", justify="right")
        for label, n in list(s.labels.items())[:30]:
            lt.add_row(escape(str(label)), f"{n:,}")
        if len(s.labels) > 30:
            lt.add_row(f"… {len(s.labels) - 30} more", "")
        con.print(lt)

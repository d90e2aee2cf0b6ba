"""`azft runs list|show|compare|flush` and `azft results JOB`: reading what every backend recorded in MLflow.

Imports only click at module level; MLflow, rich and matplotlib are imported when a command runs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import click

from azft.errors import UsageError

# params shown in tables, by leaf name (``training.learning_rate`` shows as ``learning_rate``)
KEY_PARAMS = (
    "model",
    "method",
    "task",
    "epochs",
    "learning_rate",
    "batch_size",
    "lora_r",
    "max_seq_length",
)
# metric names as azft.metrics names them (every run's metrics go through azft.metrics.canonical first)
LOSS_KEYS = ("train_loss",)
EVAL_KEYS = ("eval_loss",)

_tracking_uri = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    metavar="URI",
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the local store .azft/mlflow.db).",
)
_output = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def _tracker(tracking_uri: str | None, experiment: str | None = None):
    from azft.tracking import Tracker

    return Tracker(tracking_uri, experiment or "azft")


def _iso(ms: int | None) -> str | None:
    from azft.render import timestamp

    return timestamp(ms / 1000) if ms else None


def _first(metrics: dict[str, float], keys: tuple[str, ...]) -> float | None:
    for k in keys:
        if k in metrics:
            return metrics[k]
    return None


def run_summary(run: Any) -> dict[str, Any]:
    """What azft shows about a run: identity, backend, key params, final metrics (azft's metric names, also for
    runs recorded by other tools or earlier versions), where the outputs are."""
    from azft.metrics import canonical
    from azft.tracking.store import (
        TAG_BACKEND,
        TAG_JOB,
        TAG_METHOD,
        TAG_MODEL,
        TAG_OUTPUT_PREFIX,
        TAG_SPEC_HASH,
        TAG_URL,
    )
    from azft.tracking.tracker import leaf_value

    tags, params = run.data.tags, run.data.params
    key_params = {}
    for name in KEY_PARAMS:
        value = leaf_value(params, name)
        if value is not None:
            key_params[name] = value
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start_time": _iso(run.info.start_time),
        "end_time": _iso(run.info.end_time),
        "job_name": tags.get(TAG_JOB),
        "backend": tags.get(TAG_BACKEND),
        "model": tags.get(TAG_MODEL) or key_params.get("model"),
        "method": tags.get(TAG_METHOD) or key_params.get("method"),
        "spec_hash": tags.get(TAG_SPEC_HASH),
        "studio_url": tags.get(TAG_URL),
        "params": key_params,
        "metrics": dict(sorted(canonical(run.data.metrics).items())),
        "outputs": {k[len(TAG_OUTPUT_PREFIX) :]: v for k, v in sorted(tags.items()) if k.startswith(TAG_OUTPUT_PREFIX)},
        "artifact_uri": run.info.artifact_uri,
    }


def _fmt(value: Any) -> str:
    from rich.markup import escape

    from azft.render import cell

    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    if isinstance(value, str):
        value = _param_value(value)
    return escape(cell(value))


def _param_value(text: str) -> Any:
    """MLflow keeps every param as a string: an empty or missing one (`None`, `[]`, `{}`) is shown as missing, a
    list or mapping as one (never its JSON or repr)."""
    stripped = text.strip()
    if stripped in ("None", "null"):
        return None
    if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
        import ast

        for parse in (json.loads, ast.literal_eval):
            try:
                return parse(stripped)
            except (ValueError, SyntaxError, RecursionError):
                continue
    return text


def _console():
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, soft_wrap=False, width=160)  # pipes and CI logs: do not fold at 80
    return console


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def _resolve_run(tracker: Any, ref: str) -> Any:
    """A run by id, placeholder id, or azft job name."""
    from azft.errors import UsageError as _UE

    try:
        return tracker.get_run(ref)
    except _UE as first:
        run_id = tracker.find_run_for_job(ref) or _run_by_prefix(tracker, ref)
        if run_id is None:
            raise UsageError(
                f"no MLflow run or azft job named {ref!r} at {tracker.display_uri}",
                hint="`azft runs list` shows recorded runs; pass --tracking-uri if they are on another server",
            ) from None
        if run_id == ref:
            raise first
        return tracker.get_run(run_id)


def _run_by_prefix(tracker: Any, prefix: str) -> str | None:
    """The run whose id starts with `prefix` (as `runs list` shows it), when exactly one does."""
    if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix.lower()):
        return None
    matches = sorted(
        {r.info.run_id for r in tracker.search(None, max_results=10000) if r.info.run_id.startswith(prefix.lower())}
    )
    if len(matches) > 1:
        raise UsageError(
            f"run id prefix {prefix!r} matches {len(matches)} runs: {', '.join(matches[:5])}",
            hint="give more characters of the run id",
        )
    return matches[0] if matches else None


@click.group("runs")
def runs() -> None:
    """MLflow runs of azft submissions on every backend: list, show, compare."""


@runs.command("list")
@click.option("--experiment", "-e", default=None, help="Only this MLflow experiment (default: all).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000), help="Newest runs shown.")
@_tracking_uri
@_output
def list_runs(experiment: str | None, limit: int, tracking_uri: str | None, output: str) -> None:
    """A table of runs with their key params and final metrics (newest first)."""
    tracker = _tracker(tracking_uri, experiment)
    summaries = [run_summary(r) for r in tracker.search(experiment, max_results=limit)]
    pending = [
        {
            "run_id": op["run"],
            "job_name": op["tags"].get("azft.job_name"),
            "backend": op["tags"].get("azft.backend"),
            "status": "BUFFERED",
            "experiment": op["experiment"],
        }
        for op in tracker.store.pending_submissions()
        if experiment in (None, op["experiment"])
    ]
    if output == "json":
        _echo_json({"tracking_uri": tracker.display_uri, "runs": summaries, "buffered": pending})
        return
    from rich.table import Table

    table = Table(title=f"azft runs at {tracker.display_uri}", title_justify="left")
    from azft.render import id_column, print_table

    for col in ("run", "job", "backend", "model", "method", "status", "epochs", "lr", "train_loss", "eval_loss"):
        if col in ("run", "job"):  # ids are never cut: `runs show` and `status` take them back
            id_column(table, col)
            continue
        table.add_column(
            col,
            overflow="fold",
            no_wrap=col == "status",
            justify="right" if col in ("epochs", "lr", "train_loss", "eval_loss") else "left",
        )
    for s in summaries:
        table.add_row(
            s["run_id"][:12],
            _fmt(s["job_name"]),
            _fmt(s["backend"]),
            _fmt((s["model"] or "").rsplit("/", 1)[-1] or None),
            _fmt(s["method"]),
            s["status"],
            _fmt(s["params"].get("epochs")),
            _fmt(s["params"].get("learning_rate")),
            _fmt(_first(s["metrics"], LOSS_KEYS)),
            _fmt(_first(s["metrics"], EVAL_KEYS)),
        )
    for p in pending:
        table.add_row(p["run_id"][:16], _fmt(p["job_name"]), _fmt(p["backend"]), "-", "-", "BUFFERED", *(["-"] * 4))
    console = _console()
    if not summaries and not pending:
        where = f" in experiment {experiment!r}" if experiment else ""
        console.print(f"no azft runs at {tracker.display_uri}{where}")
        return
    print_table(console, table)


@runs.command("show")
@click.argument("run")
@_tracking_uri
@_output
def show_run(run: str, tracking_uri: str | None, output: str) -> None:
    """Everything about one run (RUN: an MLflow run id or an azft job name)."""
    tracker = _tracker(tracking_uri)
    r = _resolve_run(tracker, run)
    summary = run_summary(r)
    summary["all_params"] = dict(sorted(r.data.params.items()))
    summary["tags"] = {k: v for k, v in sorted(r.data.tags.items()) if not k.startswith("mlflow.")}
    if output == "json":
        _echo_json(summary)
        return
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{summary['run_name'] or summary['run_id']}[/bold]  {summary['run_id']}  {summary['status']}")
    for label in (
        "job_name",
        "backend",
        "model",
        "method",
        "spec_hash",
        "studio_url",
        "start_time",
        "end_time",
        "artifact_uri",
    ):
        if summary.get(label):
            console.print(f"  {label}: {summary[label]}")
    for title, data in (
        ("params", summary["all_params"]),
        ("final metrics", summary["metrics"]),
        ("outputs", summary["outputs"]),
    ):
        if data:
            table = Table(title=title, title_justify="left", show_header=False)
            table.add_column("name")
            table.add_column("value", overflow="fold")
            for k, v in data.items():
                table.add_row(k, _fmt(v))
            console.print(table)


@runs.command("compare")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.png"),
    show_default=True,
    help="PNG file for the loss curves.",
)
@click.option("--metric", default="loss", show_default=True, help="Metric to plot (eval_<metric> is added).")
@click.option(
    "--log/--no-log",
    "log_artifact",
    default=True,
    show_default=True,
    help="Also log the PNG into each compared run (artifact folder comparisons/).",
)
@click.option(
    "--rank-by",
    default=None,
    metavar="METRIC",
    help="A sweep: the final metric its trials are ranked by, lowest first (default eval_loss, else train_loss).",
)
@_tracking_uri
@_output
def compare_runs(
    run_refs: tuple[str, ...],
    out: Path,
    metric: str,
    log_artifact: bool,
    tracking_uri: str | None,
    output: str,
    rank_by: str | None = None,
) -> None:
    """Key params and final metrics side by side, and a PNG of the loss curves. A sweep's name compares its trials:
    one curve per trial and a table ranked by --rank-by with the best trial's values."""
    from azft.cli_sweep import compare_command, sweep_for

    sweep = sweep_for(run_refs[0]) if len(run_refs) == 1 else None
    if sweep is not None:
        compare_command(
            sweep,
            out=out,
            metric=metric.removeprefix("train_"),
            log_artifact=log_artifact,
            tracking_uri=tracking_uri,
            output=output,
            rank_by=rank_by,
        )
        return
    tracker = _tracker(tracking_uri)
    metric = metric.removeprefix("train_")  # the plot pairs <metric>/train_<metric> with eval_<metric>
    found = [_resolve_run(tracker, ref) for ref in run_refs]
    ids = [r.info.run_id for r in found]
    if len(set(ids)) != len(ids):
        raise UsageError("the same run is listed twice", hint="give each run once")
    png = tracker.compare_plot(ids, out, metric=metric)
    if log_artifact:
        for run_id in ids:
            tracker.log_artifact(run_id, png, artifact_path="comparisons")
    summaries = [run_summary(r) for r in found]
    if output == "json":
        _echo_json({"png": str(png), "runs": summaries})
        return
    from rich.table import Table

    table = Table(title="comparison", title_justify="left")
    table.add_column("")
    for s in summaries:
        table.add_column(f"{s['job_name'] or s['run_name']}\n{s['run_id'][:12]}", overflow="fold")
    rows: list[tuple[str, list[Any]]] = [
        ("backend", [s["backend"] for s in summaries]),
        ("status", [s["status"] for s in summaries]),
        ("model", [s["model"] for s in summaries]),
    ]
    for name in KEY_PARAMS[1:]:
        rows.append((name, [s["params"].get(name) for s in summaries]))
    metric_names = sorted({k for s in summaries for k in s["metrics"]})
    for name in metric_names:
        rows.append((name, [s["metrics"].get(name) for s in summaries]))
    for name, values in rows:
        if any(v is not None for v in values):
            table.add_row(name, *(_fmt(v) for v in values))
    console = _console()
    console.print(table)
    console.print(f"loss curves: {png}" + (" (also logged to each run under comparisons/)" if log_artifact else ""))


@runs.command("flush")
@click.option("--experiment", "-e", default="azft", hidden=True)
@_tracking_uri
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", help="json: {tracking_uri, sent, pending}."
)
def flush_runs(experiment: str, tracking_uri: str | None, output: str = "table") -> None:
    """Send MLflow writes kept on disk while the tracking server was unreachable."""
    tracker = _tracker(tracking_uri, experiment)
    before = tracker.pending_count()
    sent = tracker.flush() if before else 0
    left = tracker.pending_count() if before else 0
    if output == "json":
        _echo_json({"tracking_uri": tracker.display_uri, "sent": sent, "pending": left})
    elif before == 0:
        click.echo(f"nothing buffered for {tracker.display_uri}")
    else:
        click.echo(f"sent {sent} buffered write(s) to {tracker.display_uri}; {left} still pending")
    if before == 0:
        return
    if left:
        from azft.errors import AzureError

        raise AzureError(
            f"MLflow tracking at {tracker.display_uri} is not answering ({tracker.store.last_error})",
            hint="the writes stay in .azft/mlflow-buffer; run `azft runs flush` again when the server is back",
        )


def _outputs_from_backend(backend: str | None, job_name: str) -> dict[str, str]:
    """Ask the backend where the job's outputs are, for runs recorded before outputs were known."""
    if not backend:
        return {}
    try:
        from azft import api

        return dict(api.get_job(job_name, backend).info().outputs)
    except Exception:  # the run's record is still shown; the location is reported as unknown
        return {}


@click.command("results")
@click.argument("job")
@_tracking_uri
@_output
def results(job: str, tracking_uri: str | None, output: str) -> None:
    """Final metrics of JOB and where its model/adapter is."""
    from azft.state import check_job_name

    check_job_name(job)  # before it reaches a search filter or a path
    from azft.api import resolve_job_name

    job = resolve_job_name(job)  # a unique prefix of a job submitted from here, as `azft list` prints them
    tracker = _tracker(tracking_uri)
    run_id = tracker.find_run_for_job(job)
    if run_id is None:
        raise UsageError(
            f"no MLflow run recorded for job {job!r} at {tracker.display_uri}",
            hint="check the job name with `azft runs list`, or pass --tracking-uri",
        )
    run = tracker.get_run(run_id)
    s = run_summary(run)
    outputs = s["outputs"] or _outputs_from_backend(s["backend"], job)
    data = {
        "job_name": job,
        "run_id": s["run_id"],
        "backend": s["backend"],
        "status": s["status"],
        "metrics": s["metrics"],
        "outputs": outputs,
        "studio_url": s["studio_url"],
        "artifact_uri": s["artifact_uri"],
    }
    if output == "json":
        _echo_json(data)
        return
    console = _console()
    console.print(f"[bold]{job}[/bold] ({s['backend'] or 'unknown backend'}) — {s['status']} — run {s['run_id']}")
    if s["metrics"]:
        console.print("final metrics:")
        width = max(len(k) for k in s["metrics"])
        for k, v in s["metrics"].items():
            console.print(f"  {k.ljust(width)}  {_fmt(v)}")
    else:
        console.print("final metrics: none recorded yet")
    if outputs:
        console.print("model / adapter:")
        for k, v in outputs.items():
            console.print(f"  {k}: {v}")
    else:
        console.print("model / adapter: not recorded yet (the job may still be running)")
    if s["studio_url"]:
        console.print(f"studio: {s['studio_url']}")
    console.print(f"artifacts: {s['artifact_uri']}")

"""The `azft` command line: a thin layer over azft.api. Heavy libraries are imported only inside commands."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import click

from azft import __version__
from azft.backends.base import backend_names
from azft.errors import EXIT_CANCELLED, EXIT_INVALID, EXIT_JOB_FAILED, EXIT_OK, AzftError

BACKENDS = backend_names()
OUTPUTS = ("table", "yaml", "json")
EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 job failed, 2 invalid spec/data/usage, 3 cancelled or timed out, "
    "4 Azure/auth/transport error, 5 internal error in azft (a bug)."
)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _emit(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False, allow_unicode=True))


class LazyGroup(click.Group):
    """Sub-command groups that live in their own modules, imported only when used."""

    def __init__(self, *args, lazy: Optional[dict[str, tuple[str, str]]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            target, _ = self.lazy[name]
            module, _, attr = target.partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                return None
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy={
        "data": ("azft.cli_data:data", "Check, describe and split data files (line-numbered, streaming)."),
        "runs": ("azft.cli_runs:runs", "List, show and compare tracked MLflow runs."),
        "results": ("azft.cli_runs:results", "Final metrics of a job and where its model/adapter is."),
        "ci": ("azft.ci_summary:ci", "CI helpers: changed specs as a matrix, Markdown job summary."),
        "catalog": ("azft.cli_catalog:catalog", "The models azft knows, each fact with its source; GPU sizes."),
        "eval": ("azft.cli_trained:eval_", "Loss, perplexity and samples of a trained model (--base: side by side)."),
        "chat": ("azft.cli_trained:chat", "Talk to a trained model with its chat template (/reset, /exit)."),
        "predict": ("azft.cli_trained:predict", "Batch inference with a trained model: JSONL in, JSONL out."),
        "export": ("azft.cli_trained:export", "A trained model as a merged or adapter folder transformers loads."),
        "deploy": ("azft.cli_deploy:deploy", "Serve a trained model: serverless, online endpoint or local (--ttl)."),
        "endpoints": ("azft.cli_deploy:endpoints", "Deployments: list (age, cost so far, TTL), delete, gc expired."),
    },
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(version=__version__, prog_name="azft", message="azft %(version)s")
@click.option("--debug", is_flag=True, help="Show full tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """azft: one job spec for fine-tuning Phi models on Azure ML — serverless (maas), your cluster (maap), this machine
    (local) or an emulator (mock), tracked in MLflow."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _deployment_guard()


def _deployment_guard() -> None:
    """Deployments past their TTL: deleted now, with a warning on stderr (one file read when none expired)."""
    from azft.deploy.guard import enforce

    def warn(message: str) -> None:
        _console(stderr=True).print(f"[yellow]warning:[/] {_esc(message)}")

    try:
        enforce(warn)
    except AzftError as e:  # a broken record or clock must not stop the command the user ran
        warn(f"checking deployments' TTLs: {e.message}")


# ------------------------------------------------------------------------------------------------------------------
# Error presentation
# ------------------------------------------------------------------------------------------------------------------


def report_error(err: AzftError, output: str = "table") -> int:
    if output == "json":
        doc = err.to_dict()
        azure = {k: getattr(err, k) for k in ("code", "request_id", "status") if getattr(err, k, None)}
        if azure:
            doc["azure"] = azure
        click.echo(json.dumps(doc, indent=2))
        return err.exit_code
    con = _console(stderr=True)
    if err.problems:
        con.print(f"[bold red]error:[/] {_esc(err.message)}")
        for p in err.problems:
            con.print(f"  [red]✗[/] {_esc(p.render())}")
    else:
        con.print(f"[bold red]error:[/] {_esc(err.message)}")
    if err.hint:
        con.print(f"  [cyan]hint:[/] {_esc(err.hint)}")
    return err.exit_code


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _output_mode(args: list[str]) -> str:
    """`--output`/`-o` as given on the command line, known before click parses it (usage errors honour it too)."""
    output = "table"
    for i, a in enumerate(args):
        if a in ("--output", "-o") and i + 1 < len(args):
            output = args[i + 1]
        elif a.startswith("--output="):
            output = a.split("=", 1)[1]
        elif a.startswith("-o") and not a.startswith("--") and len(a) > 2:
            output = a[2:]
    return output if output in OUTPUTS else "table"


def main(argv: Optional[list[str]] = None) -> None:
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args
    output = _output_mode(args)
    try:
        rv = cli.main(args=args, prog_name="azft", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)
    except AzftError as e:
        if debug:
            raise
        sys.exit(report_error(e, output))
    except click.exceptions.Abort:
        sys.exit(report_error(_cancelled("aborted"), output))
    except click.ClickException as e:
        if output == "json":
            from azft.errors import UsageError

            hint = f"`{e.ctx.command_path} --help` lists the options" if getattr(e, "ctx", None) else None
            sys.exit(report_error(UsageError(e.format_message(), hint=hint), output))
        e.show()
        sys.exit(EXIT_INVALID)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not turn exit 3 into a traceback
        sys.exit(report_error(_cancelled("interrupted"), output))
    except Exception as e:  # never a traceback without --debug
        if debug:
            raise
        sys.exit(report_error(classify_exception(e), output))


def _cancelled(message: str) -> AzftError:
    from azft.errors import JobCancelledError

    return JobCancelledError(message)


def classify_exception(e: BaseException) -> AzftError:
    """An exception no azft layer turned into an AzftError: Azure/transport (4), the file system (2), or a bug (5)."""
    from azft.errors import InternalError, UsageError

    mapped = _map_foreign(e)
    if mapped is not None:
        return mapped
    if isinstance(e, OSError) and not isinstance(e, (ConnectionError, TimeoutError)):
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        return UsageError(f"cannot access{where}: {e.strerror or e}", hint="check the path and its permissions")
    if isinstance(e, (ConnectionError, TimeoutError)):
        from azft.errors import AzureError

        return AzureError(f"network error: {type(e).__name__}: {e}")
    msg = " ".join(str(e).split())[:300]
    return InternalError(
        f"internal error (a bug in azft): {type(e).__name__}{': ' + msg if msg else ''}",
        hint="rerun with --debug for the full traceback and report it; exit code 5 means a bug",
    )


def _map_foreign(e: Exception) -> Optional[AzftError]:
    """Azure SDK errors that escaped a backend become AzureError (exit 4) through the one Azure error mapping."""
    from azft.azure.errors import is_azure_exception, map_error

    return map_error(e, "talking to Azure") if is_azure_exception(e) else None


# ------------------------------------------------------------------------------------------------------------------
# validate / plan / schema / catalog / init
# ------------------------------------------------------------------------------------------------------------------


@cli.command()
@click.argument("spec_file", type=click.Path(dir_okay=True))
@click.option(
    "--backend", "-b", type=click.Choice(BACKENDS), default=None, help="Also apply this backend's compatibility rules."
)
@click.option("--no-data", is_flag=True, help="Skip the data-file checks.")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def validate(spec_file: str, backend: Optional[str], no_data: bool, output: str) -> int:
    """Check a spec (and its local data files): every problem at once, with file, line and field."""
    from azft.errors import Problem, SpecError
    from azft.plan import model_for_spec
    from azft.spec import load_spec

    spec = load_spec(spec_file)
    model = model_for_spec(spec)
    problems: list[Problem] = []
    warnings: list[str] = []
    trials = None
    if spec.sweep is not None:  # every trial's values, as the sweep would submit them
        from azft.sweep import trial_problems

        problems, warnings, trials = trial_problems(spec, backend, check_data=not no_data, file=spec_file)
        if not backend and not no_data:
            problems += _data_problems(spec, model, spec_file, warnings)
    elif backend:
        from azft import api

        plan = api.plan(spec, backend, check_data=not no_data, render=False)
        from azft.api import verdict_problems

        problems += verdict_problems(plan, file=spec_file)
        warnings += plan.verdict.warnings
        if not plan.ok and plan.verdict.alternatives:
            problems[-1].hint = "what works instead: " + "; ".join(plan.verdict.alternatives)
    elif not no_data:
        problems += _data_problems(spec, model, spec_file, warnings)
    if problems:
        raise SpecError(
            f"{spec_file}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found", problems=problems
        )
    summary = (
        f"{spec_file}: valid — {spec.name}: {model.id}, {spec.task}, {spec.method}, "
        f"{spec.hyperparameters.epochs} epoch{'s' if spec.hyperparameters.epochs != 1 else ''}"
        + (f"; a sweep of {trials} trials" if trials is not None else "")
    )
    if output == "table":  # click.style, not rich: validate is on every editor save and CI step; keep it fast
        click.echo(click.style("✓", fg="green") + f" {summary}")
        for w in warnings:
            click.echo("  " + click.style("!", fg="yellow") + f" {w}")
    else:
        _emit({"ok": True, "summary": summary, "name": spec.name, "model": model.id, "warnings": warnings}, output)
    return EXIT_OK


def _data_problems(spec, model, spec_file: str, warnings: Optional[list[str]] = None):
    from azft.errors import Problem
    from azft.safe_yaml import path_problem
    from azft.spec import is_uri, line_of

    out = []
    for role in ("train", "validation"):
        ref = getattr(spec.data, role)
        if ref and is_uri(ref) and spec.data.format:
            out.append(
                Problem(
                    f"data.format converts local files; {ref} is a URI and would be used unconverted",
                    file=spec_file,
                    line=line_of(spec, "data", role),
                    field=f"data.{role}",
                    hint="convert it with `azft data convert` and give the result",
                )
            )
        if not ref or is_uri(ref):
            continue
        path = spec.resolve_path(ref)
        problem = path_problem(path)
        if problem:
            where = f" (resolved to {path})" if problem == "does not exist" else ""
            out.append(
                Problem(
                    f"{ref} {problem}{where}", file=spec_file, line=line_of(spec, "data", role), field=f"data.{role}"
                )
            )
            continue
        try:
            from azft.data import check_file
        except ImportError:
            continue
        if spec.data.format:  # check the source by converting it (once: the conversion is kept for plan/submit)
            from azft.data.source import skipped_reason, try_prepare

            where = dict(file=spec_file, line=line_of(spec, "data", role), field=f"data.{role}")
            prepared, err = try_prepare(path, spec.data.format, spec.task)
            if err is not None:
                out.append(
                    Problem(
                        f"{ref} could not be converted from {spec.data.format}: {err.message}", hint=err.hint, **where
                    )
                )
                continue
            if prepared.skipped:
                out.append(Problem(skipped_reason(ref, prepared.to_dict(), spec.task), **where))
            path = prepared.path
        report = check_file(
            path,
            spec.task,
            model=model.id if model.in_catalog else None,
            max_tokens=spec.hyperparameters.max_seq_length,
        )
        if warnings is not None:  # the same lines `azft plan` and the CI summary show
            warnings.extend(f"data.{role}: {w}" for w in report.warning_lines())
        if not report.ok:
            first = report.errors[0].render() if report.errors else ""
            out.append(
                Problem(
                    f"{ref} has {len(report.errors)} data error(s); first: {first}",
                    file=spec_file,
                    line=line_of(spec, "data", role),
                    field=f"data.{role}",
                    hint=f"`azft data check {path if spec.data.format else ref} --task {spec.task}` lists them all",
                )
            )
    return out


@cli.command()
@click.argument("spec_file", type=click.Path())
@click.option("--backend", "-b", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
@click.option(
    "--prices", type=click.Path(), help="YAML price table overriding the catalog's (see examples/prices.yaml)."
)
@click.option(
    "--fit",
    "fit",
    is_flag=True,
    help="Also list every GPU size in the catalog: per-GPU memory estimate, fits or not, hours and cost.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="maap: write the job as a folder `az ml job create -f DIR/job.yml` accepts (components, code, data).",
)
@click.option(
    "--max-usd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Hold the estimate against this cost limit (lowers or sets the spec's budget.max_usd).",
)
def plan(
    spec_file: str,
    backend: str,
    output: str,
    prices: Optional[str],
    fit: bool,
    export_dir: Optional[str] = None,
    max_usd: Optional[float] = None,
) -> int:
    """Dry-run: what would be sent, the compatibility verdict and a cost/time estimate. Nothing is sent.

    A spec with a `sweep:` section shows every trial (values, estimate, verdict) and the sweep's totals."""
    from azft import api
    from azft.spec import load_spec

    spec = load_spec(spec_file)
    if spec.sweep is not None:
        if fit or export_dir:
            from azft.errors import UsageError

            raise UsageError(
                "--fit and --export plan one job; this spec is a sweep",
                hint="remove the sweep: section (or plan one trial's values in its own spec)",
            )
        from azft.cli_sweep import plan_command

        return plan_command(spec, backend, output, prices, max_usd)
    p = api.plan(spec, backend, prices=prices, max_usd=max_usd)
    data = p.to_dict()
    if export_dir and p.ok:
        from azft.azure.export import export_maap

        data["export"] = str(export_maap(p, export_dir))
        click.echo(f"wrote {data['export']}", err=True)
    if fit:
        from azft.catalog import load_catalog
        from azft.fit import fit_table

        data["fit"] = fit_table(p, load_catalog(), api.load_prices(prices)[0])
    if output == "yaml":
        import yaml

        if p.request is not None and p.target in ("maas", "maap"):
            # the Azure ML job exactly as it would be sent, loadable by `az ml job create -f`
            click.echo(yaml.safe_dump(p.request, sort_keys=False))
            click.echo("# " + "\n# ".join(_plan_summary_lines(data)), err=True)
        else:
            _emit(data, "yaml")
    elif output == "json":
        _emit(data, "json")
    else:
        _print_plan(data)
        if fit:
            _print_fit(data["fit"], data["estimate"].get("training_tokens_total"))
    return EXIT_OK if p.ok and (p.budget or {}).get("ok", True) else EXIT_INVALID


def _print_fit(rows: list[dict], tokens) -> None:
    """`azft plan --fit`: every catalog GPU size, cheapest fitting first."""
    from rich.table import Table

    t = Table(title="GPU sizes (per-GPU memory estimate; hours and cost are estimates, not quotes)", expand=False)
    width = max((len(r["sku"].removeprefix("Standard_")) for r in rows), default=8)
    t.add_column("size (Standard_…)", no_wrap=True, min_width=width)
    for col, just in (
        ("GPUs", "right"),
        ("memory/GPU", "right"),
        ("estimate", "right"),
        ("fits", "left"),
        ("hours", "right"),
        ("cost", "right"),
        ("registry list", "left"),
    ):
        t.add_column(col, justify=just)
    from azft.render import MISSING, cell

    for r in rows:
        fits = MISSING if r.get("fits") is None else ("[green]yes[/]" if r["fits"] else "[red]no[/]")
        t.add_row(
            r["sku"].removeprefix("Standard_"),
            f"{r['gpus']} × {r['nodes']}" if r["nodes"] > 1 else str(r["gpus"]),
            cell(r.get("gpu_memory_gb"), "gb"),
            cell(r.get("estimate_gb"), "gb"),
            fits,
            cell(r.get("hours"), "hours"),
            cell(r.get("cost_usd"), "usd"),
            cell(bool(r["allowed"])),
        )
    _console().print(t)
    if tokens is None:
        _console().print("  hours and cost need the training token count (local data files)")


def _plan_summary_lines(d: dict) -> list[str]:
    v = d["verdict"]
    lines = [f"backend: {d['backend']} · job: {d['job_name']} · verdict: {'OK' if v['ok'] else 'REFUSED'}"]
    lines += [f"{label}: {value}" for label, value in _workspace_rows(d.get("workspace"))]
    lines += [f"refused: {r}" for r in v["reasons"]]
    lines += [f"instead: {a}" for a in v["alternatives"]]
    lines += [f"warning: {w}" for w in v["warnings"]]
    lines += [f"note: {n}" for n in d.get("notes") or []]
    return lines


def _workspace_rows(where: Optional[dict]) -> list[tuple[str, str]]:
    """The workspace a submit uses, each value with where it came from."""
    if not where:
        return []
    if "error" in where:
        return [("workspace", "not configured: " + where["error"])]
    src = where.get("sources", {})
    rows = []
    for key, label in (
        ("workspace", "workspace"),
        ("resource_group", "resource group"),
        ("subscription_id", "subscription"),
        ("region", "region"),
    ):
        if where.get(key):
            rows.append((label, f"{where[key]}  (from {src.get(key, '?')})"))
    if not where.get("region"):
        rows.append(("region", "read from the workspace at submit time"))
    if where.get("emulated"):
        rows[0] = (rows[0][0], rows[0][1] + " — emulated by the mock backend")
    return rows


def _print_plan(d: dict) -> None:
    from rich.panel import Panel

    con = _console()
    con.print(Panel(_plan_header(d), title="azft plan", expand=False))
    _print_verdict(con, d)
    if d.get("budget"):
        _print_budget(con, d["budget"])
    _print_estimate(con, d["estimate"])
    if d.get("request") is not None:
        import yaml

        con.print("[bold]would send:[/]" if d["target"] in ("maas", "maap") else "[bold]would run:[/]")
        # one line per value: a folded command line would not paste back into a shell
        con.print(_esc(yaml.safe_dump(d["request"], sort_keys=False, width=1_000_000)))


def _plan_header(d: dict):
    """The plan's head: backend, job name, model, method, hyperparameters, data files, workspace."""
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_row("backend", d["backend"] + (f" (target {d['target']})" if d["target"] != d["backend"] else ""))
    head.add_row("job name", d["job_name"])
    m = d["model"]
    where = m.get("asset") or m.get("registry_asset") or m.get("hf_id") or m.get("local_path")
    head.add_row("model", _esc(f"{m['id']} ({where})" if where else str(m["id"])))
    head.add_row("task / method", f"{d['task']} / {d['method']}")
    hp = d["hyperparameters"]
    head.add_row(
        "hyperparameters",
        ", ".join(f"{k}={hp[k]}" for k in ("epochs", "learning_rate", "batch_size", "max_seq_length")),
    )
    for f in d["data"]:
        state = "" if f.get("ok") is None else (" ✓ checked" if f["ok"] else f" ✗ {f.get('errors')} errors")
        head.add_row(f"data.{f['role']}", f"{f.get('path') or f.get('uri')}{state}")
        src = f.get("source")
        if src:
            how = f"detected: {src['detected']}" if src.get("detected") else "as given"
            head.add_row(
                "",
                f"converted from {src['path']} ({src['format']}, {how}; sha256 {src['sha256'][:12]}…): "
                f"{src.get('converted')} of {src.get('rows')} rows",
            )
            head.add_row("", "mapping: " + ", ".join(f"{m['from']} → {m['to']}" for m in src.get("mapping") or []))
    for label, value in _workspace_rows(d.get("workspace")):
        head.add_row(label, _esc(value))
    return head


def _print_verdict(con, d: dict) -> None:
    """Can it run, why not, what works instead, then every warning and note."""
    v = d["verdict"]
    if v["ok"] and "error" in (d.get("workspace") or {}):
        con.print(
            "[bold yellow]verdict: the spec can run on this backend, but no Azure ML workspace is configured: "
            "`azft submit` refuses until one is (see the workspace row for where azft looked)[/]"
        )
    elif v["ok"]:
        con.print("[bold green]verdict: can run[/]")
    else:
        con.print("[bold red]verdict: cannot run on this backend[/]")
        for r in v["reasons"]:
            con.print(f"  [red]✗[/] {_esc(r)}")
        if v["alternatives"]:
            con.print("  [cyan]what works instead:[/]")
            for a in v["alternatives"]:
                con.print(f"    → {_esc(a)}")
    for w in v["warnings"]:
        con.print(f"  [yellow]![/] {_esc(w)}")
    notes = d.get("notes") or []
    if notes:  # what the backend does differently from the spec, every one of them
        con.print(f"[bold]notes ({len(notes)}):[/]")
        for n in notes:
            con.print(f"  [cyan]i[/] {_esc(n)}")
    if v["warnings"] or notes:
        con.print(
            f"  {len(v['warnings'])} warning{'s' if len(v['warnings']) != 1 else ''}, "
            f"{len(notes)} note{'s' if len(notes) != 1 else ''}"
        )


def _print_estimate(con, e: dict) -> None:
    """The time/cost/memory estimate and, when it does not fit, the changes that make it fit."""
    from azft.render import kv_table

    con.print(
        kv_table(
            "estimate (not a quote)",
            [(k, val) for k, val in e.items() if k not in ("label", "memory_per_gpu", "memory_advice")],
        )
    )
    if e.get("memory_per_gpu"):
        _print_memory(con, e["memory_per_gpu"])
    if e.get("memory_advice"):
        con.print(
            f"  [cyan]changes that make it fit in {e.get('gpu_memory_gb')} GB per GPU (cheapest in time "
            "first; time factors are assumptions):[/]"
        )
        for a in e["memory_advice"]:
            hours = f", ~{a['hours']:.2f} h" if a.get("hours") else ""
            con.print(
                f"    → {_esc(a['change'])}: {a['estimate_gb']:.1f} GB, ×{a['time_factor']:.2f} time{hours}"
                f"  [dim]({_esc(a['spec'])})[/]"
            )


def _gb(value) -> str:
    """A memory term: GB by kind, with two decimals below 1 GB so small terms do not read as 0.0."""
    from azft.render import cell

    return f"{value:.2f} GB" if isinstance(value, (int, float)) and 0 < abs(value) < 1 else cell(value, "gb")


def _print_budget(con, b: dict) -> None:
    limit = ", ".join(f"{k} {b[k]:g}" for k in ("max_usd", "max_hours") if b.get(k) is not None)
    cost = "unknown" if b.get("cost_usd") is None else f"${b['cost_usd']:,.2f}"
    hours = "unknown" if b.get("hours") is None else f"{b['hours']:g} h"
    style, word = ("green", "within budget") if b["ok"] else ("red", "over budget: submit refuses it")
    con.print(f"[bold {style}]budget: {word}[/] — estimate {cost}, {hours} against {limit} ({b['source']})")
    for p in b.get("problems") or []:
        con.print(f"  [red]✗[/] {_esc(p)}")
    for c in b.get("changes") or []:
        con.print(f"    → {_esc(c)}")
    if b.get("note"):
        con.print(f"  [dim]{_esc(b['note'])}[/]")


def _print_memory(con, mem: dict) -> None:
    """Every term of the per-GPU memory estimate with the formula it came from (docs/memory.md)."""
    from rich.table import Table

    if "unknown" in mem:
        con.print(f"[yellow]memory per GPU: unknown[/] — {_esc(mem['unknown'])}")
        return
    s, a = mem["setup"], mem["architecture"]
    title = (
        f"memory per GPU (estimate, GB): {s['method']}, micro-batch {s['micro_batch']} × {s['seq_len']} tokens, "
        f"{s['precision']}, checkpointing {'on' if s['gradient_checkpointing'] else 'off'}"
        + (f", ZeRO-{s['zero_stage']}" if s["zero_stage"] else "")
        + f", {s['world_size']} GPU(s)"
    )
    from azft.render import cell, key_label

    t = Table(title=title, expand=False)
    t.add_column("term")
    t.add_column("memory", justify="right")
    t.add_column("phase")
    t.add_column("formula")
    for name, term in mem["terms"].items():
        t.add_row(
            _esc(key_label(name)), _gb(term.get("gb")), _esc(cell(term.get("phase"))), _esc(cell(term.get("formula")))
        )
    t.add_row("[bold]total[/]", f"[bold]{_gb(mem.get('total_gb'))}[/]", "", _esc(cell(mem.get("total_formula"))))
    con.print(t)
    con.print(f"  error bound: {_esc(mem['error_bound'])}")
    con.print(
        f"  architecture: {a['layers']} layers, hidden {a['hidden_size']}, MLP {a['intermediate_size']}, "
        f"{a['heads']}/{a['kv_heads']} heads, vocab {a['vocab']} — {_esc(a['source'])}"
    )
    for n in mem.get("notes") or []:
        con.print(f"  [yellow]![/] {_esc(n)}")


@cli.command()
@click.option("--out", "out", type=click.Path(), help="Write the schema to a file instead of stdout.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(("json", "yaml")),
    default="json",
    show_default=True,
    help="The schema's format on stdout; with --out, json prints what was written as JSON.",
)
def schema(out: Optional[str], output: str) -> int:
    """The JSON Schema of the job spec (for editors: `# yaml-language-server: $schema=<file>`)."""
    from azft.spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output == "yaml" and not out:
        _emit(json_schema(), "yaml")
        return EXIT_OK
    if out:
        try:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as e:
            from azft.errors import UsageError

            raise UsageError(
                f"--out {out}: cannot write ({e.strerror or e})", hint="the folder must exist and be writable"
            ) from None
        if output == "json":
            _emit({"wrote": out}, "json")
        else:
            click.echo(f"wrote {out}")
    else:
        click.echo(text)
    return EXIT_OK


INIT_HEAD = """\
# yaml-language-server: $schema={schema}
name: {name}
model: {model}
task: chat-completion
data:
  train: {train}
  validation_split: 0.1
method: lora
"""

# tiny-phi3 starts from random weights: with the catalog's learning rate, r=8 and two modules its loss barely moves
# in one run. The quickstart's settings (examples/tiny-local.yaml) make it drop clearly in the first run.
INIT_TINY = """\
# tiny-phi3 (the bundled test model): the quickstart's settings (examples/tiny-local.yaml), chosen so its loss
# drops visibly in a first run on this machine.
hyperparameters:
  epochs: 3
  learning_rate: 5.0e-3
  batch_size: 8
  max_seq_length: 256
  warmup_ratio: 0.05
lora: {r: 16, alpha: 32, dropout: 0.0, target_modules: [qkv_proj, o_proj, gate_up_proj, down_proj]}
"""

INIT_TAIL = """\
tracking:
  experiment: {name}
"""


def init_template(*, schema: str, name: str, model: str, train: str) -> tuple[str, str]:
    """The spec `azft init` writes, and where its hyperparameters come from (`quickstart`, `catalog`, `generic`)."""
    from azft.catalog import get_model
    from azft.plan import GENERIC_DEFAULTS

    head = INIT_HEAD.format(schema=schema, name=name, model=model, train=train)
    tail = INIT_TAIL.format(name=name)
    info = get_model(model)
    if info.id == "tiny-phi3":
        return head + INIT_TINY + tail, "quickstart"
    keys = ("learning_rate", "batch_size", "max_seq_length", "epochs")
    known = {k: info.defaults[k] for k in keys if k in info.defaults}
    generic = ", ".join(f"{k} {v}" for k, v in GENERIC_DEFAULTS.items() if k not in known)
    if known and info.in_catalog:
        origin = "catalog"
        values = ", ".join(f"{k} {v}" for k, v in known.items())
        body = (
            f"# hyperparameters: unset, so azft uses the catalog's defaults for {info.id}:\n#   {values}\n"
            + (f"#   (and its generic ones for the rest: {generic})\n" if generic else "")
            + f"# `azft catalog --model {info.id}` shows where they were read.\n"
        )
    else:
        origin = "generic"
        body = (
            f"# hyperparameters: unset. The catalog has no defaults for {info.id}, so azft uses its generic ones:"
            f"\n#   {generic}\n"
        )
    body += "# Set any of them here to override; `azft plan` shows the values a job would use.\n"
    return head + body + tail, origin


@cli.command()
@click.argument("path", type=click.Path(), default="azft.yaml")
@click.option("--name", default="my-finetune", show_default=True)
@click.option("--model", default="tiny-phi3", show_default=True)
@click.option("--train", default="data/train.jsonl", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def init(path: str, name: str, model: str, train: str, force: bool, output: str) -> int:
    """Write a starting spec (with the schema hooked up for editors). tiny-phi3 gets the quickstart's settings,
    which visibly learn in a first run; a catalog model gets the catalog's defaults."""
    from pathlib import Path

    from azft.errors import UsageError

    p = Path(path)
    if p.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    schema_path = p.parent / ".azft-schema.json"
    text, origin = init_template(schema=schema_path.name, name=name, model=model, train=train)
    from azft.spec import json_schema

    schema_path.write_text(json.dumps(json_schema(), indent=2) + "\n")
    p.write_text(text)
    if output == "table":
        click.echo(f"wrote {path} (and {schema_path}); next: azft validate {path}")
    else:
        _emit(
            {
                "wrote": str(p),
                "schema": str(schema_path),
                "model": model,
                "hyperparameters_from": origin,
                "next": f"azft validate {path}",
            },
            output,
        )
    return EXIT_OK


# ------------------------------------------------------------------------------------------------------------------
# submit / status / wait / logs / cancel / list
# ------------------------------------------------------------------------------------------------------------------


def _exit_for(info) -> int:
    from azft.backends.base import JobStatus

    return {JobStatus.COMPLETED: EXIT_OK, JobStatus.FAILED: EXIT_JOB_FAILED, JobStatus.CANCELED: EXIT_CANCELLED}.get(
        info.status, EXIT_OK
    )


def _runs_on(extra: dict) -> str:
    """Where a fine-tuning job runs, as Azure reports it: cluster, instance types, queue tier, Azure's job kind."""
    parts = []
    if extra.get("compute"):
        parts.append(f"cluster {extra['compute']}")
    if extra.get("instance_types"):
        parts.append("instance types " + ", ".join(extra["instance_types"]))
    if extra.get("job_tier"):
        parts.append(f"tier {extra['job_tier']}")
    if extra.get("finetuning_job_type"):
        parts.append(f"Azure fine-tuning job ({extra['finetuning_job_type']})")
    return "; ".join(parts)


def _info_line(info) -> str:
    s = f"{info.name}: {info.status.value}"
    if info.error:
        s += f" — {info.error_code + ': ' if info.error_code else ''}{info.error}"
    return s


def _interrupt_on_ci_signals() -> None:
    """CI runners stop a cancelled run with SIGTERM (GitHub may send SIGHUP first): treat both like Ctrl-C."""
    import signal

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt()

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, raise_interrupt)


class Seconds(click.ParamType):
    """A positive, finite number of seconds (``--timeout``, ``--poll``): refused before anything is submitted."""

    name = "seconds"

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a positive number of seconds", param, ctx)
        return number


SECONDS = Seconds()


def _pump_logs(job, con, stop) -> None:
    import threading

    def pump():
        try:
            for line in job.logs(follow=True):
                if stop.is_set():
                    break
                con.print(_esc(line.rstrip("\n")))
        except Exception as e:  # logs are a convenience; the status poll decides the outcome
            con.print(f"[yellow]logs unavailable: {_esc(str(e))}[/]")

    threading.Thread(target=pump, daemon=True).start()


def _on_interrupt(job, con, cancel_on_interrupt: bool) -> int:
    """Ctrl-C while watching: leave the job running, or request its cancellation. A second Ctrl-C (or SIGTERM)
    while the cancel request is on its way stops waiting for it; the exit code is 3 either way."""
    import signal

    if not cancel_on_interrupt:
        con.print(f"interrupted: {job.name} keeps running; `azft wait {job.name}` resumes watching")
        return EXIT_CANCELLED
    try:
        job.cancel()
        con.print(f"interrupted: cancel requested for {job.name}")
    except KeyboardInterrupt:
        con.print(
            f"interrupted again: the cancel request for {job.name} may not have been sent; "
            f"`azft cancel {job.name}` sends it"
        )
    except Exception as e:  # the interruption, not the failed cancel, decides the exit code
        con.print(f"interrupted: could not cancel {job.name} ({_esc(str(e))}); `azft cancel {job.name}` retries")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # nothing interrupts the way out
    return EXIT_CANCELLED


def _follow(
    job, *, timeout: Optional[float], poll: Optional[float], output: str, cancel_on_interrupt: bool, stream_logs: bool
) -> int:
    """Watch a job to its end; Ctrl-C leaves it running (or cancels it with --cancel-on-interrupt)."""
    import contextlib
    import threading
    import time

    from azft import api

    con = _console(stderr=True)
    stop = threading.Event()
    if cancel_on_interrupt:
        _interrupt_on_ci_signals()
    if stream_logs and output == "table":
        _pump_logs(job, con, stop)
    started = time.monotonic()
    # a live spinner with the current state on a terminal (CI logs get the plain transition lines only)
    live = (
        con.status(f"{job.name}: waiting", spinner="dots")
        if (output == "table" and not stream_logs and con.is_terminal)
        else contextlib.nullcontext()
    )
    try:
        with live as spinner:

            def update(info):
                if output == "table":
                    elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - started))
                    con.print(f"[dim]{elapsed}[/] [bold]{info.name}[/] → {info.status.value}")
                    if spinner is not None:
                        spinner.update(f"{info.name}: {info.status.value} (since {elapsed})")

            info = api.wait(
                job,
                timeout=timeout,
                poll_interval=poll,
                on_update=update,
                on_event=lambda m: con.print(f"[yellow]{_esc(m)}[/]"),
            )
    except KeyboardInterrupt:
        stop.set()
        return _on_interrupt(job, con, cancel_on_interrupt)
    finally:
        stop.set()
    _print_outcome(info, output)
    return _exit_for(info)


def _print_outcome(info, output: str) -> None:
    if output != "table":
        _emit(info.to_dict(), output)
        return
    style = {"Completed": "green", "Failed": "red"}.get(info.status.value, "yellow")
    _console().print(f"[{style}]{_esc(_info_line(info))}[/]")
    from azft.render import cell, kind_of

    for k, val in (info.metrics or {}).items():
        _console().print(_esc(f"  {k}: {cell(val, kind_of(k))}"))
    for k, val in (info.outputs or {}).items():
        _console().print(_esc(f"  {k}: {cell(val)}"))
    if info.status.value == "Completed" and info.backend == "local":
        _console().print(f"next: [bold]azft eval {info.name} --base[/]  (loss and samples, base vs fine-tuned)")
        _console().print(f"      [bold]azft chat {info.name}[/]         (talk to it; /exit to leave)")


@cli.command()
@click.argument("spec_file", type=click.Path())
@click.option("--backend", "-b", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option("--wait", "wait_", is_flag=True, help="Follow the job to its end; the exit code reflects the outcome.")
@click.option(
    "--timeout", type=SECONDS, default=None, help="With --wait: give up waiting after this many seconds (exit 3)."
)
@click.option("--poll", type=SECONDS, default=None, help="Seconds between status checks.")
@click.option(
    "--retry",
    is_flag=True,
    help="If the identical job Failed or was Canceled, run it again (local: resumes from its last "
    "checkpoint; Azure: a new job <job>-retry<N>). Without it such a submit exits 1 or 3.",
)
@click.option("--force", is_flag=True, help="Submit a new job even if an identical one exists.")
@click.option("--prices", type=click.Path(), help="YAML price table for the estimate.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (overrides the spec and MLFLOW_TRACKING_URI).")
@click.option(
    "--mock-target", type=click.Choice(["maas", "maap"]), default=None, help="mock: which Azure path to emulate."
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[:key=value,...]",
    help="mock: inject a fault into this submission, e.g. job_error:state=Running,error=quota_exceeded "
    "or http_error:status=503,times=2 (repeatable; adds to the spec's mock.faults).",
)
@click.option("--cancel-on-interrupt", is_flag=True, help="With --wait: Ctrl-C also cancels the job.")
@click.option(
    "--max-usd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Refuse (exit 2, nothing uploaded) when the estimate is above this cost; lowers or sets budget.max_usd.",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="A sweep: submit the trials that can run and skip the others (default: refuse the sweep).",
)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def submit(
    spec_file: str,
    backend: str,
    wait_: bool,
    timeout: Optional[float],
    poll: Optional[float],
    retry: bool,
    force: bool,
    prices: Optional[str],
    tracking_uri: Optional[str],
    mock_target: Optional[str],
    faults: tuple[str, ...],
    cancel_on_interrupt: bool,
    output: str,
    max_usd: Optional[float] = None,
    skip_invalid: bool = False,
) -> int:
    """Validate, upload and submit a spec. Re-running the same submit finds the existing job; one that Failed or was
    Canceled is run again only with --retry. A spec with `sweep:` submits every trial (docs/sweeps.md)."""
    from azft import api
    from azft.errors import UsageError
    from azft.spec import load_spec

    spec = load_spec(spec_file)
    if faults and backend != "mock":
        raise UsageError("--fault works with --backend mock only")
    api.apply_overrides(
        spec, backend, tracking_uri=tracking_uri, mock_target=mock_target, faults=[parse_fault(f) for f in faults]
    )
    if spec.sweep is not None:
        return _submit_sweep(
            spec,
            backend,
            output=output,
            prices=prices,
            max_usd=max_usd,
            retry=retry,
            force=force,
            skip_invalid=skip_invalid,
            wait=wait_,
            timeout=timeout,
            poll=poll,
            cancel_on_interrupt=cancel_on_interrupt,
        )
    if skip_invalid:
        raise UsageError("--skip-invalid is for sweeps (a spec with a sweep: section)")
    p = api.plan(spec, backend, prices=prices, force=force, max_usd=max_usd)
    con = _console(stderr=True)
    if output == "table" and p.ok:
        for w in p.verdict.warnings:
            con.print(f"[yellow]![/] {_esc(w)}")
    job = api.submit(
        p,
        force=force,
        retry=retry,
        max_usd=max_usd,
        on_event=lambda m: con.print(_esc(m)) if output == "table" else None,
    )
    _report_submitted(job, p, backend, output, json_now=not wait_)
    if not wait_:
        return EXIT_OK
    return _follow(
        job,
        timeout=timeout,
        poll=poll,
        output=output,
        cancel_on_interrupt=cancel_on_interrupt,
        stream_logs=backend == "local",
    )


def _report_submitted(job, p, backend: str, output: str, *, json_now: bool) -> None:
    """The submitted job, its status and where to watch it (as a table now; as JSON now only without --wait)."""
    info = job.info()
    if output == "table":
        _console().print(f"[bold]{job.name}[/] submitted to {backend}: {info.status.value}")
        if info.studio_url:
            _console().print(f"  studio: {info.studio_url}")
        if p.tracking_run_id:
            _console().print(f"  mlflow run: {p.tracking_run_id} (experiment {p.spec.experiment})")
    if json_now and output != "table":
        _emit(
            {
                "job_name": job.name,
                "backend": backend,
                "status": info.status.value,
                "studio_url": info.studio_url,
                "mlflow_run_id": p.tracking_run_id,
            },
            output,
        )


def _submit_sweep(spec, backend: str, *, force: bool, wait: bool, cancel_on_interrupt: bool, **options) -> int:
    """`azft submit` of a spec with `sweep:`: every trial (docs/sweeps.md)."""
    from azft.cli_sweep import submit_command
    from azft.errors import UsageError

    if force:
        raise UsageError(
            "--force submits one job under a fresh name; a sweep's trials are found again by name",
            hint="--retry runs failed or canceled trials again",
        )
    if wait and cancel_on_interrupt:
        _interrupt_on_ci_signals()
    return submit_command(spec, backend, wait=wait, cancel_on_interrupt=cancel_on_interrupt, **options)


def parse_fault(text: str):
    """`job_error:state=Running,error=quota_exceeded` → FaultSpec (validated like the spec's mock.faults)."""
    from pydantic import ValidationError

    from azft.errors import UsageError
    from azft.spec import FaultSpec

    kind, _, rest = text.partition(":")
    fields: dict[str, Any] = {"kind": kind.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"--fault {text}: expected key=value, got {part!r}")
        fields[key.strip()] = value.strip()
    try:
        return FaultSpec.model_validate(fields)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"]) or "kind"
        raise UsageError(
            f"--fault {text}: {where}: {err['msg']}",
            hint="kinds: job_error, http_error, drop_connection, slow_response, cancel, diverge",
        ) from None


def _job_options(f):
    f = click.option(
        "--backend",
        "-b",
        type=click.Choice(BACKENDS),
        default=None,
        help="Backend of the job (default: the one it was submitted to from here).",
    )(f)
    return f


@cli.command()
@click.argument("job_name")
@_job_options
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def status(job_name: str, backend: Optional[str], output: str) -> int:
    """Show a job's state (a sweep's name: every trial's)."""
    from azft import api
    from azft.cli_sweep import status_command, sweep_for

    sweep = sweep_for(job_name)
    if sweep is not None:
        return status_command(sweep, output)

    info = api.get_job(job_name, backend).info()
    if output == "table":
        _console().print(_esc(_info_line(info)))
        runs_on = _runs_on(info.extra)
        if runs_on:
            _console().print(_esc(f"  runs on: {runs_on}"))
        if info.studio_url:
            _console().print(f"  studio: {info.studio_url}")
    else:
        _emit(info.to_dict(), output)
    return EXIT_OK


@cli.command()
@click.argument("job_name")
@_job_options
@click.option(
    "--timeout", type=SECONDS, default=None, help="Give up after this many seconds (exit 3; the job keeps running)."
)
@click.option("--poll", type=SECONDS, default=None, help="Seconds between status checks.")
@click.option("--cancel-on-interrupt", is_flag=True, help="Ctrl-C (or a cancelled CI run) also cancels the job.")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def wait(
    job_name: str,
    backend: Optional[str],
    timeout: Optional[float],
    poll: Optional[float],
    cancel_on_interrupt: bool,
    output: str,
) -> int:
    """Wait for a job (or every trial of a sweep) to end. Exit 0 completed, 1 failed, 3 cancelled or timed out. Safe to
    interrupt and rerun."""
    from azft import api
    from azft.cli_sweep import follow, sweep_for

    sweep = sweep_for(job_name)
    if sweep is not None:
        if cancel_on_interrupt:
            _interrupt_on_ci_signals()
        return follow(sweep, output=output, timeout=timeout, poll=poll, cancel_on_interrupt=cancel_on_interrupt)

    job = api.get_job(job_name, backend)
    return _follow(
        job, timeout=timeout, poll=poll, output=output, cancel_on_interrupt=cancel_on_interrupt, stream_logs=False
    )


@cli.command()
@click.argument("job_name")
@_job_options
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(OUTPUTS),
    default="table",
    help="table: the log as it is; json/yaml: the job's name and its log lines (after the job ends with -f).",
)
def logs(job_name: str, backend: Optional[str], follow: bool, output: str) -> int:
    """Print a job's log."""
    from azft import api

    job = api.get_job(job_name, backend)
    if output == "table":
        for line in job.logs(follow=follow):
            click.echo(line.rstrip("\n"))
        return EXIT_OK
    lines = [line.rstrip("\n") for line in job.logs(follow=follow)]
    _emit({"job_name": job.name, "lines": lines}, output)
    return EXIT_OK


@cli.command()
@click.argument("job_name")
@_job_options
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def cancel(job_name: str, backend: Optional[str], output: str) -> int:
    """Cancel a job (a sweep's name: every trial still running)."""
    from azft import api
    from azft.cli_sweep import cancel_command, sweep_for

    sweep = sweep_for(job_name)
    if sweep is not None:
        return cancel_command(sweep, output)

    job = api.get_job(job_name, backend)
    job.cancel()
    info = job.info()
    if output == "table":
        _console().print(f"cancel requested: {_esc(_info_line(info))}")
    else:
        _emit(info.to_dict(), output)
    return EXIT_OK


@cli.command(name="list")
@click.option(
    "--backend",
    "-b",
    type=click.Choice(BACKENDS),
    default=None,
    help="Only this backend (maas/maap list the workspace's jobs).",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(),
    default=None,
    help="List the workspace this spec's submits use (its azure: section, then AZURE_*, then config.json).",
)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def list_(backend: Optional[str], limit: int, spec_file: Optional[str], output: str) -> int:
    """List jobs (local and mock by default; --backend maas|maap for the workspace)."""
    from azft import api

    infos = api.list_jobs(backend, limit=limit, spec=spec_file)
    if output != "table":
        _emit([i.to_dict() for i in infos], output)
        return EXIT_OK
    from rich.table import Table

    from azft.render import cell, id_column, print_table, timestamp

    t = Table(title="jobs")
    id_column(t, "name")
    for col in ("backend", "status"):
        t.add_column(col, no_wrap=True)
    t.add_column("created", no_wrap=True, min_width=20)
    t.add_column("error", overflow="fold")
    for i in infos:
        message = (i.error or "").split(" — ", 1)[0]  # the hint is in `azft status JOB`
        error = (
            f"{i.error_code}: {message}"
            if i.error_code and message and i.error_code not in message
            else (message or i.error_code)
        )
        t.add_row(i.name, i.backend, i.status.value, cell(timestamp(i.created)), _esc(cell(error)))
    print_table(_console(), t)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    main()

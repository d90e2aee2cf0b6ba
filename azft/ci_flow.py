"""`azft ci review`, `azft ci submit` and `azft ci plan-diff`: the steps of the GitHub Action (``action.yml``) and
of the Azure DevOps template, as commands that run the same anywhere.

Both loop over the specs ``azft ci specs --save FILE`` chose, one folder per spec under ``--out``::

    <out>/<key>/validate.json   azft validate --output json
                plan.json       azft plan --output json
                plan.diff       the plan against the same spec on the base revision (unified diff)
                summary.md      the Markdown summary (also appended to $GITHUB_STEP_SUMMARY)
                comment.md      the pull-request comment: verdict, estimate, plan diff (``azft ci comment`` posts it)
                submit.json     azft submit --wait --output json                         (ci submit)
                results.json    azft results --output json                               (ci submit)

Each azft command runs as its own process (``python -m azft``), as a user would run it; its exit code is the
step's. The loop goes on to the next spec after a failure and exits with the first non-zero code.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from azft.ci_summary import (
    _git,
    BACKENDS,
    append_summary,
    is_sweep,
    local_data_files,
    md_cell,
    read_step,
    render_summary,
    sweep_values,
)
from azft.errors import EXIT_CANCELLED, EXIT_OK, UsageError

#: The first line of every pull-request comment azft writes; ``azft ci comment`` finds its own comment by it.
MARKER = "<!-- azft-plan:{key} -->"
#: GitHub refuses comment bodies over 65,536 characters.
MAX_COMMENT_CHARS = 60_000
MAX_DIFF_LINES = 400
ESTIMATE_KEYS = (
    "instance_type",
    "instance_count",
    "gpus",
    "training_tokens_total",
    "hours",
    "cost_usd",
    "price_source",
)


# ----------------------------------------------------------------------------------------------------------------
# Running azft, one process per step
# ----------------------------------------------------------------------------------------------------------------


class Runner:
    """Runs ``python -m azft ...`` with stdout to a file; an interrupt is passed on to the running command (so
    ``--cancel-on-interrupt`` cancels the job) and stops the loop."""

    def __init__(self, cwd: Path | None = None):
        self.cwd = cwd
        self.child: subprocess.Popen | None = None
        self.interrupted = False

    def __enter__(self) -> "Runner":
        self._old = {s: signal.signal(s, self._forward) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _forward(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        if self.child and self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)

    def run(self, args: list[str], out: Path, *, cwd: Path | None = None) -> int:
        click.echo(f"$ azft {' '.join(args)}", err=True)
        with open(out, "w", encoding="utf-8") as f:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "azft", *args], stdout=f, cwd=str(cwd or self.cwd or Path.cwd())
            )
            while True:
                try:
                    code = self.child.wait()
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
                    continue
        self.child = None
        return code


def load_selection(path: str) -> list[dict]:
    """The ``specs`` list of ``azft ci specs --save FILE``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not the JSON of `azft ci specs --save`: {e}") from None
    specs = doc.get("specs") if isinstance(doc, dict) else None
    if not isinstance(specs, list):
        raise UsageError(f"{path}: no `specs` list", hint="write it with `azft ci specs --save FILE`")
    return specs


# ----------------------------------------------------------------------------------------------------------------
# The plan against the base revision
# ----------------------------------------------------------------------------------------------------------------


def plan_view(d: Any, root: Path | None) -> str:
    """What a reviewer compares: verdict, job, model, hyperparameters, data, estimate and the request, as YAML
    with the checkout's absolute paths made relative (the base plan is made in another folder)."""
    import yaml

    from azft.redact import redact

    if not isinstance(d, dict):
        view: Any = {"plan": "no plan"}
    elif d.get("ok") is False and "error" in d:
        view = {"error": d.get("error"), "problems": [p.get("message") for p in d.get("problems") or []]}
    elif is_sweep(d):
        keep = ("trial", "job_name", "backend", "values", "ok", "reasons", "cost_usd", "hours")
        view = {
            "sweep": d.get("sweep"),
            "strategy": d.get("strategy"),
            "trials": [{k: t.get(k) for k in keep} for t in d["trials"]],
            "totals": d.get("totals"),
            "budget": d.get("budget"),
        }
    else:
        est = d.get("estimate") or {}
        view = {
            "verdict": d.get("verdict"),
            "job_name": d.get("job_name"),
            "model": (d.get("model") or {}).get("id"),
            "task": d.get("task"),
            "method": d.get("method"),
            "hyperparameters": d.get("hyperparameters"),
            "data": [
                {k: f.get(k) for k in ("role", "ref", "size", "sha256", "ok", "errors")} for f in d.get("data") or []
            ],
            "estimate": {k: v for k, v in est.items() if k not in ("label", "formula")},
            "request": d.get("request"),
        }
    text = yaml.safe_dump(redact(view), sort_keys=False, width=120, allow_unicode=True)
    if root is not None:
        text = text.replace(str(root.resolve()) + os.sep, "").replace(str(root) + os.sep, "")
    return text


def _exists_at(repo: Path, rev: str, path: str) -> bool:
    return (
        subprocess.run(
            ["git", "cat-file", "-e", f"{rev}:{path}"], cwd=repo, capture_output=True, check=False
        ).returncode
        == 0
    )


def base_checkout(repo: Path, rev: str, spec: str, dest: Path) -> bool:
    """The spec and the local data files it names, as they were at ``rev``, under ``dest``. False: no such spec."""
    if not _exists_at(repo, rev, spec):
        return False
    from azft.ci_summary import _load_yaml

    text = _git(repo, "show", f"{rev}:{spec}")
    paths = [spec] + [p for p in local_data_files(_load_yaml(text), spec) if _exists_at(repo, rev, p)]
    for p in paths:
        target = dest / p
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "show", f"{rev}:{p}"], cwd=repo, capture_output=True, check=True).stdout
        target.write_bytes(blob)
    return True


def plan_diff(
    repo: Path, spec: str, backend: str, base: str | None, head_plan: Any, runner: Runner, work: Path
) -> tuple[str, str]:
    """(note, unified diff) of the plan of ``spec`` on ``base``'s merge base and the head plan."""
    if not base:
        return "no base revision to compare with (every spec was taken)", ""
    try:
        merge_base = _git(repo, "merge-base", base, "HEAD").strip() or base
    except UsageError:
        merge_base = base
    short = merge_base[:10]
    with tempfile.TemporaryDirectory(prefix="azft-base-") as tmp:
        root = Path(tmp)
        if not base_checkout(repo, merge_base, spec, root):
            return f"new spec: it does not exist on the base revision `{short}`", ""
        out = work / "base-plan.json"
        runner.run(["plan", spec, "--backend", backend, "--output", "json"], out, cwd=root)
        base_plan = read_step("plan", str(out))
        before = plan_view(base_plan.data if base_plan else None, root)
    after = plan_view(head_plan, repo)
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), f"plan on base ({short})", "plan on this change", lineterm="", n=3
        )
    )
    if not lines:
        return f"the plan is the same as on the base revision `{short}`", ""
    changed = sum(1 for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    return f"{changed} line(s) of the plan differ from the base revision `{short}`", "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# The pull-request comment
# ----------------------------------------------------------------------------------------------------------------


def _run_link() -> str | None:
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def _sweep_comment(d: dict) -> list[str]:
    """A sweep's verdict in the comment: how many trials can run, why the others cannot, the totals."""
    trials, bad = d["trials"], [t for t in d["trials"] if not t.get("ok")]
    head = "✅ can run" if d.get("ok") else "❌ cannot run"
    out = [f"**{head} on `{d.get('backend')}`** · sweep `{d.get('sweep')}`, {len(trials)} trials", ""]
    for t in bad:
        out.append(f"- ❌ trial {t.get('trial')} ({md_cell(sweep_values(t.get('values')))}): ")
        out[-1] += md_cell("; ".join(t.get("reasons") or []))
    out += [f"- ❌ budget: {md_cell(p)}" for p in (d.get("budget") or {}).get("problems") or []]
    tot = d.get("totals") or {}
    keys = ("trials", "cost_usd", "cost_note", "trial_hours", "wall_hours", "max_concurrent")
    rows = [(k, tot.get(k)) for k in keys]
    out += ["", "| sweep estimate (not a quote) | |", "|---|---|"]
    out += [f"| {k.replace('_', ' ')} | {md_cell(v)} |" for k, v in rows if v is not None]
    out.append("")
    return out


def render_comment(key: str, spec: str, backend: str, steps: dict, note: str, diff: str) -> str:
    """One comment per spec: verdict, reasons and alternatives, the estimate and the plan's diff."""
    from azft import __version__

    out = [MARKER.format(key=key), f"### azft · `{spec}` → `{backend}`", ""]
    validate, plan = steps.get("validate"), steps.get("plan")
    if validate and validate.state == "error":
        d = validate.data or {}
        out += [f"❌ **invalid spec** — {md_cell(d.get('error'))}", ""]
        for p in (d.get("problems") or [])[:30]:
            where = f"{p.get('file') or spec}:{p.get('line') or '?'}"
            out.append(f"- `{where}` **{md_cell(p.get('field'))}**: {md_cell(p.get('message'))}")
        out.append("")
    elif plan is None or plan.state != "ok" or not isinstance(plan.data, dict):
        err = (plan.data or {}).get("error") if plan and isinstance(plan.data, dict) else None
        out += [f"❌ **no plan** — {md_cell(err or 'the plan step wrote no JSON (see the run log)')}", ""]
    elif is_sweep(plan.data):
        out += _sweep_comment(plan.data)
    else:
        d = plan.data
        v = d.get("verdict") or {}
        head = "✅ can run" if v.get("ok") else "❌ cannot run"
        out += [f"**{head} on `{d.get('backend')}`** · job `{d.get('job_name')}`", ""]
        out += [f"- ❌ {md_cell(r)}" for r in v.get("reasons") or []]
        out += [f"- ➡️ instead: {md_cell(a)}" for a in v.get("alternatives") or []]
        out += [f"- ⚠️ {md_cell(w)}" for w in v.get("warnings") or []]
        est = d.get("estimate") or {}
        rows = [(k.replace("_", " "), est[k]) for k in ESTIMATE_KEYS if est.get(k) is not None]
        if rows:
            out += ["", "| estimate (not a quote) | |", "|---|---|"]
            out += [f"| {k} | {md_cell(val)} |" for k, val in rows]
        out.append("")
    out += [f"**Plan diff:** {note}", ""]
    if diff:
        lines = diff.splitlines()
        cut = len(lines) > MAX_DIFF_LINES
        body = "\n".join(lines[:MAX_DIFF_LINES]) + ("\n… (cut; the run's artifact has plan.diff)" if cut else "")
        out += [
            "<details><summary>the plan, base → this change</summary>",
            "",
            "```diff",
            body,
            "```",
            "",
            "</details>",
            "",
        ]
    link = _run_link()
    out.append(f"<sub>azft {__version__}" + (f" · [run]({link})" if link else "") + "</sub>")
    text = "\n".join(out) + "\n"
    if len(text) > MAX_COMMENT_CHARS:
        text = text[:MAX_COMMENT_CHARS] + "\n\n… cut at GitHub's comment size limit\n"
    return text


# ----------------------------------------------------------------------------------------------------------------
# The loops
# ----------------------------------------------------------------------------------------------------------------


def review_spec(item: dict, repo: Path, base: str | None, out: Path, runner: Runner) -> int:
    """validate → plan → plan diff → summary and comment body for one spec; the first failing step's exit code."""
    spec, backend, key = item["spec"], item["backend"], item["key"]
    d = out / key
    d.mkdir(parents=True, exist_ok=True)
    code = runner.run(["validate", spec, "--output", "json"], d / "validate.json", cwd=repo)
    if code == EXIT_OK and not runner.interrupted:
        code = runner.run(["plan", spec, "--backend", backend, "--output", "json"], d / "plan.json", cwd=repo)
    steps = {name: read_step(name, str(d / f"{name}.json")) for name in ("validate", "plan")}
    plan = steps["plan"]
    if plan and plan.state == "ok" and not runner.interrupted:
        note, diff = plan_diff(repo, spec, backend, base, plan.data, runner, d)
    else:
        note, diff = "no plan on this change to compare", ""
    (d / "plan.diff").write_text(diff, encoding="utf-8")
    summary = render_summary(
        spec, backend, [s for s in steps.values() if s and s.state != "missing"] or [s for s in steps.values() if s]
    )
    (d / "summary.md").write_text(summary, encoding="utf-8")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        append_summary(summary, os.environ["GITHUB_STEP_SUMMARY"])
    (d / "comment.md").write_text(render_comment(key, spec, backend, steps, note, diff), encoding="utf-8")
    return code


def submit_spec(item: dict, repo: Path, out: Path, runner: Runner, timeout: float, flags: list[str]) -> int:
    """plan → submit --wait → results → summary for one spec."""
    spec, backend, key = item["spec"], item["backend"], item["key"]
    d = out / key
    d.mkdir(parents=True, exist_ok=True)
    code = runner.run(["plan", spec, "--backend", backend, "--output", "json"], d / "plan.json", cwd=repo)
    plan = read_step("plan", str(d / "plan.json"))
    job = plan.data.get("job_name") if plan and isinstance(plan.data, dict) else None
    if code == EXIT_OK and not runner.interrupted:
        args = [
            "submit",
            spec,
            "--backend",
            backend,
            "--wait",
            "--timeout",
            f"{timeout:g}",
            "--cancel-on-interrupt",
            "--output",
            "json",
            *flags,
        ]
        code = runner.run(args, d / "submit.json", cwd=repo)
        submitted = read_step("submit", str(d / "submit.json"))
        if submitted and isinstance(submitted.data, dict):
            job = submitted.data.get("name") or submitted.data.get("job_name") or job
        if job and not runner.interrupted:
            runner.run(["results", job, "--output", "json"], d / "results.json", cwd=repo)
    steps = [read_step(n, str(d / f"{n}.json")) for n in ("plan", "submit", "results")]
    summary = render_summary(spec, backend, [s for s in steps if s is not None])
    (d / "summary.md").write_text(summary, encoding="utf-8")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        append_summary(summary, os.environ["GITHUB_STEP_SUMMARY"])
    return code


def _loop(items: list[dict], fn, runner: Runner, output: str = "table") -> int:
    first = EXIT_OK
    done: list[dict] = []
    for item in items:
        if runner.interrupted:
            click.echo(f"::warning title=azft::{item['spec']}: skipped, the run was interrupted", err=True)
            done.append({"spec": item["spec"], "backend": item["backend"], "exit_code": None, "skipped": True})
            continue
        code = fn(item)
        if code != EXIT_OK:
            click.echo(f"::error title=azft::{item['spec']} ({item['backend']}): exit {code}", err=output == "json")
        done.append({"spec": item["spec"], "backend": item["backend"], "exit_code": code, "skipped": False})
        first = first or code
    if runner.interrupted:
        first = EXIT_CANCELLED
    _emit_json(output, {"exit_code": first, "specs": done})
    return first


def _emit_json(output: str, doc: dict) -> None:
    """`--output json`: what the command did, as one JSON document on stdout (progress stays on stderr)."""
    if output == "json":
        click.echo(json.dumps(doc, indent=2, default=str))


_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    help="json: one document on stdout with each spec's exit code (files are written either way).",
)


@click.command("review")
@click.option(
    "--specs",
    "selection",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The JSON written by `azft ci specs --save FILE`.",
)
@click.option(
    "--base",
    default=None,
    metavar="REV",
    help="Compare each plan with the spec on this revision (default: the base `azft ci specs` used).",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="One folder per spec here.")
@click.option("--repo", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@_OUTPUT
def review_cmd(selection: str, base: str | None, out: str, repo: str, output: str) -> int:
    """Validate and plan each selected spec, diff the plan against the base revision, write the summary and the
    pull-request comment body. Exit code: the first failing step's (0 when every spec can run)."""
    items = load_selection(selection)
    if base is None:
        base = json.loads(Path(selection).read_text(encoding="utf-8")).get("base")
    root, dest = Path(repo).resolve(), Path(out).resolve()
    with Runner(root) as runner:
        return _loop(items, lambda it: review_spec(it, root, base or None, dest, runner), runner, output)


@click.command("submit")
@click.option(
    "--specs",
    "selection",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The JSON written by `azft ci specs --save FILE`; specs marked `submit` are submitted.",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="One folder per spec here.")
@click.option(
    "--timeout",
    type=float,
    default=19800,
    show_default=True,
    help="Seconds to wait for each job (exit 3 after; the job keeps running).",
)
@click.option(
    "--retry", is_flag=True, help="Passed to `azft submit`: run a spec whose job Failed or was Canceled again."
)
@click.option("--force", is_flag=True, help="Passed to `azft submit`: start a new job even if one exists.")
@click.option("--repo", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@_OUTPUT
def submit_cmd(selection: str, out: str, timeout: float, retry: bool, force: bool, repo: str, output: str) -> int:
    """Submit each selected spec, wait for it, fetch its results and write the summary. An interrupt (the run was
    cancelled) cancels the running job and skips the rest (exit 3)."""
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout}: must be a positive number of seconds")
    items = [it for it in load_selection(selection) if it.get("submit")]
    root, dest = Path(repo).resolve(), Path(out).resolve()
    if not items:
        click.echo("no spec to submit", err=True)
        _emit_json(output, {"exit_code": EXIT_OK, "specs": []})
        return EXIT_OK
    flags = (["--retry"] if retry else []) + (["--force"] if force else [])
    with Runner(root) as runner:
        return _loop(items, lambda it: submit_spec(it, root, dest, runner, timeout, flags), runner, output)


def unfinished_jobs(items: list[dict], out: Path) -> list[tuple[dict, str]]:
    """(spec, job) for each submitted spec whose job has no final state in ``<out>/<key>/submit.json``."""
    found = []
    for item in items:
        d = out / item["key"]
        plan = read_step("plan", str(d / "plan.json"))
        job = plan.data.get("job_name") if plan and isinstance(plan.data, dict) else None
        done = read_step("submit", str(d / "submit.json"))
        data = done.data if done and isinstance(done.data, dict) else {}
        job = data.get("name") or data.get("job_name") or job
        if job and data.get("status") not in ("Completed", "Failed", "Canceled"):
            found.append((item, job))
    return found


@click.command("cancel")
@click.option(
    "--specs",
    "selection",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The JSON written by `azft ci specs --save FILE`.",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="The folder `ci submit` wrote.")
@click.option("--repo", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@_OUTPUT
def cancel_cmd(selection: str, out: str, repo: str, output: str) -> int:
    """Cancel the jobs an interrupted `azft ci submit` left running (the CI run was cancelled before azft could)."""
    items = [it for it in load_selection(selection) if it.get("submit")]
    root, dest = Path(repo).resolve(), Path(out).resolve()
    pending = unfinished_jobs(items, dest)
    if not pending:
        click.echo("no running job to cancel", err=True)
        _emit_json(output, {"exit_code": EXIT_OK, "cancelled": []})
        return EXIT_OK
    first = EXIT_OK
    done = []
    with Runner(root) as runner:
        for item, job in pending:
            d = dest / item["key"]
            code = runner.run(["cancel", job, "--backend", item["backend"], "--output", "json"], d / "cancel.json")
            done.append({"spec": item["spec"], "backend": item["backend"], "job_name": job, "exit_code": code})
            first = first or code
    _emit_json(output, {"exit_code": first, "cancelled": done})
    return first


@click.command("plan-diff")
@click.argument("spec")
@click.option("--backend", "-b", type=click.Choice(BACKENDS), required=True)
@click.option("--base", required=True, metavar="REV", help="The revision to compare with (its merge base).")
@click.option("--repo", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    help="json: {spec, backend, base, note, diff} instead of the note on stderr and the diff on stdout.",
)
def plan_diff_cmd(spec: str, backend: str, base: str, repo: str, output: str) -> int:
    """The plan of SPEC (a path in the repository) against the same spec on BASE, as a unified diff."""
    root = Path(repo).resolve()
    rel = Path(os.path.relpath(Path(spec).resolve(), root)).as_posix()
    with tempfile.TemporaryDirectory(prefix="azft-diff-") as tmp, Runner(root) as runner:
        work = Path(tmp)
        runner.run(["plan", rel, "--backend", backend, "--output", "json"], work / "plan.json")
        head = read_step("plan", str(work / "plan.json"))
        note, diff = plan_diff(root, rel, backend, base, head.data if head else None, runner, work)
    if output == "json":
        _emit_json(output, {"spec": rel, "backend": backend, "base": base, "note": note, "diff": diff})
        return EXIT_OK
    click.echo(note, err=True)
    click.echo(diff, nl=False)
    return EXIT_OK

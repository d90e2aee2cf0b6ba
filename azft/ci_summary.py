"""`azft ci specs` and `azft ci summary`: the two helpers the CI workflows call.

``azft ci specs`` finds the job specs a push or pull request changed (``git diff`` against a base) and the backend
each one runs on, and prints them as JSON or as GitHub Actions / Azure DevOps matrix outputs. ``azft ci summary``
turns the ``--output json`` files of ``validate``, ``plan``, ``submit --wait`` and ``results`` into Markdown for
``$GITHUB_STEP_SUMMARY`` (or a file Azure DevOps uploads with ``##vso[task.uploadsummary]``).

Which backend a spec runs on, first match wins:

1. a ``# azft-backend: <backend>`` comment line in the spec;
2. a backend name as a word of the spec's path: ``specs/maas/bot.yaml``, ``examples/phi4-mini-maas.yaml``;
3. ``--default-backend`` (the workflows pass a repository variable, ``maap`` when it is unset).

A spec is "changed" when the spec file itself or a local data file it names (``data.train``,
``data.validation``) changed. Only mappings with ``name`` and ``model`` keys count as specs, so a price table or
a pipeline next to them is ignored.

Imports only click at module level; PyYAML and the redaction helpers are imported when a command runs.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from azft.backends.base import backend_names
from azft.errors import (
    EXIT_AZURE,
    EXIT_CANCELLED,
    EXIT_INVALID,
    EXIT_JOB_FAILED,
    EXIT_OK,
    UsageError,
)

BACKENDS = backend_names()
#: Backends CI may submit to. ``local`` trains on the machine running the command: CI plans such specs only.
SUBMITTABLE = ("mock", "maas", "maap")
DEFAULT_GLOBS = ("specs/**/*.yaml", "specs/**/*.yml")
BACKEND_COMMENT = re.compile(r"^\s*#\s*azft-backend:\s*(\S+)\s*$", re.MULTILINE)
ZERO_SHA = re.compile(r"^0+$")
EXIT_MEANING = {
    EXIT_OK: "success",
    EXIT_JOB_FAILED: "job failed",
    EXIT_INVALID: "invalid spec, data or usage",
    EXIT_CANCELLED: "cancelled or timed out",
    EXIT_AZURE: "Azure, authentication or transport error",
}
#: GitHub refuses a step summary over 1 MiB; stay well below it.
MAX_SUMMARY_CHARS = 900_000
MAX_REQUEST_CHARS = 60_000


# ----------------------------------------------------------------------------------------------------------------
# Finding changed specs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CiSpec:
    """One spec the CI runs: where it is, the backend it goes to and whether CI may submit it."""

    spec: str
    key: str
    backend: str
    backend_source: str
    submit: bool
    changed: list[str] = field(default_factory=list)

    def matrix_entry(self) -> dict[str, Any]:
        return {"spec": self.spec, "key": self.key, "backend": self.backend, "submit": self.submit}


def spec_key(path: str) -> str:
    """A name for the spec usable as a matrix leg, concurrency group and artifact name (``[A-Za-z0-9_]``)."""
    stem = re.sub(r"\.ya?ml$", "", path)
    key = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")
    return key if key[:1].isalpha() else f"spec_{key}"


def backend_for(path: str, text: str, default: str) -> tuple[str, str]:
    """The backend a spec runs on and why: ``comment``, ``path`` or ``default``."""
    m = BACKEND_COMMENT.search(text)
    if m:
        name = m.group(1)
        if name not in BACKENDS:
            line = text[: m.start(1)].count("\n") + 1
            raise UsageError(
                f"{path}:{line}: azft-backend: unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKENDS)}"
            )
        return name, "comment"
    words = re.split(r"[/\\._-]+", re.sub(r"\.ya?ml$", "", path).lower())
    found = [w for w in words if w in BACKENDS]
    if found:
        return found[-1], "path"
    return default, "default"


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def looks_like_spec(doc: Any) -> bool:
    return isinstance(doc, dict) and "name" in doc and "model" in doc


def local_data_files(doc: Any, spec_path: str) -> list[str]:
    """The spec's local data files as repository paths (URIs such as ``azureml://`` are not files)."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return []
    out = []
    for role in ("train", "validation"):
        ref = data.get(role)
        if not isinstance(ref, str) or "://" in ref or "${" in ref:
            continue
        p = os.path.normpath(os.path.join(os.path.dirname(spec_path), ref))
        out.append(p.replace(os.sep, "/"))
    return out


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="azft ci specs compares revisions with git") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UsageError(
            f"git {' '.join(args)}: {detail}",
            hint="check out the full history (actions/checkout with fetch-depth: 0; Azure DevOps "
            "checkout with fetchDepth: 0) and pass a base revision that exists",
        )
    return proc.stdout


def changed_files(repo: Path, base: str | None, head: str = "HEAD") -> list[str] | None:
    """Files changed between the merge base of ``base`` and ``head``; None means "no usable base: take all"."""
    files, _ = changed_since(repo, base, head)
    return files


def changed_since(repo: Path, base: str | None, head: str = "HEAD") -> tuple[list[str] | None, str | None]:
    """(changed files, notice). The files are None, with a notice saying why, when there is no usable base: unset
    or all zeros (a new branch), a revision this clone does not have (a force-push rewrote it, or a shallow
    clone), or no common history with ``head``. An unknown ``head`` is an error."""
    if not base or ZERO_SHA.match(base):
        return None, None
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{head}^{{commit}}")
    except UsageError:
        raise UsageError(
            f"unknown revision {head!r} in {repo}",
            hint="check out the full history (actions/checkout with fetch-depth: 0; Azure DevOps "
            "checkout with fetchDepth: 0)",
        ) from None
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except UsageError:
        return None, (
            f"the base revision {base} is not in this clone (rewritten by a force-push, or a shallow "
            "checkout: use fetch-depth: 0); every spec is checked"
        )
    try:
        _git(repo, "merge-base", base, head)
    except UsageError:
        return None, f"{base} and {head} have no common history; every spec is checked"
    out = _git(repo, "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}")
    return [p for p in out.split("\0") if p], None


def find_specs(
    repo: Path,
    globs: Iterable[str],
    *,
    changed: list[str] | None,
    default_backend: str,
    submit_backends: Iterable[str],
    explicit: Iterable[str] = (),
) -> list[CiSpec]:
    """Specs matching ``globs`` that changed (``changed`` None: all of them), plus the ``explicit`` paths always,
    with their backends, sorted by path."""
    repo = repo.resolve()
    submit_backends = set(submit_backends)
    candidates: set[str] = set()
    for pattern in globs:
        for hit in globlib.glob(pattern, root_dir=repo, recursive=True):
            if (repo / hit).is_file():
                candidates.add(Path(hit).as_posix())
    named: set[str] = set()
    for p in explicit:
        rel = Path(os.path.relpath(Path(p).resolve(), repo)).as_posix()
        if not (repo / rel).is_file():
            raise UsageError(f"{p}: no such spec file")
        named.add(rel)
    changed_set = None if changed is None else set(changed)
    found = []
    for rel in sorted(candidates | named):
        text = (repo / rel).read_text(encoding="utf-8", errors="replace")
        doc = _load_yaml(text)
        if rel in named:
            why = ["named on the command line"]
        elif not (looks_like_spec(doc) or BACKEND_COMMENT.search(text)):
            continue
        elif changed_set is None:
            why = []
        else:
            why = [f for f in [rel, *local_data_files(doc, rel)] if f in changed_set]
            if not why:
                continue
        backend, source = backend_for(rel, text, default_backend)
        found.append(
            CiSpec(
                spec=rel,
                key=spec_key(rel),
                backend=backend,
                backend_source=source,
                submit=backend in submit_backends,
                changed=why,
            )
        )
    keys: dict[str, str] = {}
    for s in found:
        if s.key in keys:
            raise UsageError(
                f"{s.spec} and {keys[s.key]} map to the same CI key {s.key!r}",
                hint="rename one of them: keys name matrix legs and concurrency groups",
            )
        keys[s.key] = s.spec
    return found


def _split_list(value: str, allowed: tuple[str, ...], option: str) -> list[str]:
    items = [v.strip() for v in re.split(r"[,\s]+", value or "") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise UsageError(f"{option}: unknown backend {bad[0]!r}", hint=f"choose from: {', '.join(allowed)}")
    return items


def _write_outputs(lines: list[str], target: str | None) -> None:
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    else:
        for line in lines:
            click.echo(line)


# ----------------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------------


def md_cell(value: Any) -> str:
    """A value safe inside a Markdown table cell."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def md_code(value: Any) -> str:
    text = str(value).replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit code"
    return f"exit {code} ({EXIT_MEANING.get(code, 'unexpected')})"


@dataclass
class StepResult:
    """A step's JSON output as the summary sees it."""

    step: str
    state: str  # "missing" (step did not run), "empty" (ran but wrote nothing), "error", "ok"
    data: Any = None
    exit_code: int | None = None
    path: str | None = None


def read_step(step: str, path: str | None) -> StepResult | None:
    """Load one step's JSON output; a step that did not run or wrote no JSON is reported, never raised."""
    from azft.redact import redact

    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return StepResult(step, "missing", path=path)
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        return StepResult(step, "empty", path=path)
    try:
        data = json.loads(text)
    except ValueError:
        # a step may print a line of progress before its JSON; take the last JSON document in the file
        start = max(text.rfind("\n{"), text.rfind("\n["))
        try:
            data = json.loads(text[start + 1 :]) if start >= 0 else None
        except ValueError:
            data = None
        if data is None:
            return StepResult(step, "empty", data=text[-500:], path=path)
    data = redact(data)
    if is_sweep(data):  # a sweep's plan (ok: false = a trial cannot run) or its trials' end
        code = data.get("exit_code", EXIT_OK if data.get("ok", True) else EXIT_INVALID)
        return StepResult(step, "ok", data=data, exit_code=code, path=path)
    if isinstance(data, dict) and data.get("ok") is False:
        return StepResult(step, "error", data=data, exit_code=data.get("exit_code"), path=path)
    code = EXIT_OK
    if step in ("submit", "wait") and isinstance(data, dict):
        code = {"Completed": EXIT_OK, "Failed": EXIT_JOB_FAILED, "Canceled": EXIT_CANCELLED}.get(
            str(data.get("status")), EXIT_OK
        )
    if step == "plan" and isinstance(data, dict) and not (data.get("verdict") or {}).get("ok", True):
        code = EXIT_INVALID
    return StepResult(step, "ok", data=data, exit_code=code, path=path)


def _icon(r: StepResult) -> str:
    if r.state in ("missing", "empty"):
        return "⏭️" if r.state == "missing" else "⚠️"
    return "✅" if r.exit_code == EXIT_OK else "❌"


def _step_line(r: StepResult) -> str:
    d = r.data if isinstance(r.data, dict) else {}
    if r.state == "missing":
        return "did not run"
    if r.state == "empty":
        return "ran but wrote no JSON (see the step log)"
    if r.state == "error":
        return f"{_exit_text(r.exit_code)}: {d.get('error', '')}"
    if r.step == "validate":
        return str(d.get("summary") or "valid")
    if is_sweep(d):
        return _sweep_step_line(r.step, d)
    if r.step == "plan":
        v = d.get("verdict") or {}
        target = f" (target {d.get('target')})" if d.get("target") and d.get("target") != d.get("backend") else ""
        head = f"can run on {d.get('backend')}{target}" if v.get("ok") else f"cannot run on {d.get('backend')}"
        return f"{head} · job {md_code(d.get('job_name'))}"
    if r.step in ("submit", "wait"):
        if "job_name" in d and "name" not in d:  # submit without --wait
            return f"submitted · job {md_code(d.get('job_name'))} · {d.get('status')}"
        line = f"{d.get('status')} · job {md_code(d.get('name'))}"
        if d.get("error_code") or d.get("error"):
            line += f" · {d.get('error_code') or 'error'}: {d.get('error') or ''}"
        return line
    if r.step == "results":
        return f"MLflow run {md_code(d.get('run_id'))} · {d.get('status')}"
    return "ok"


def _error_block(r: StepResult) -> list[str]:
    d = r.data if isinstance(r.data, dict) else {}
    out = [f"**{r.step} failed** — {_exit_text(r.exit_code)}", "", f"> {md_cell(d.get('error'))}", ""]
    problems = d.get("problems") or []
    if problems:
        out += ["| where | field | problem |", "|---|---|---|"]
        for p in problems:
            where = p.get("file") or ""
            if p.get("line"):
                where += f":{p['line']}"
            msg = p.get("message", "")
            if p.get("hint"):
                msg += f" — {p['hint']}"
            out.append(f"| {md_cell(where or None)} | {md_cell(p.get('field'))} | {md_cell(msg)} |")
        out.append("")
    if d.get("hint"):
        out += [f"hint: {md_cell(d['hint'])}", ""]
    return out


def _kv_table(title: str, mapping: dict[str, Any]) -> list[str]:
    if not mapping:
        return []
    out = [f"**{title}**", "", "| | |", "|---|---|"]
    out += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in mapping.items()]
    return out + [""]


def _plan_section(d: dict) -> list[str]:
    out = ["### Plan", ""]
    v = d.get("verdict") or {}
    if v.get("ok"):
        out.append(f"**Verdict:** ✅ can run on `{d.get('backend')}`")
    else:
        out.append(f"**Verdict:** ❌ cannot run on `{d.get('backend')}`")
    out.append("")
    for reason in v.get("reasons") or []:
        out.append(f"- ❌ {md_cell(reason)}")
    for alt in v.get("alternatives") or []:
        out.append(f"- ➡️ instead: {md_cell(alt)}")
    for w in v.get("warnings") or []:
        out.append(f"- ⚠️ {md_cell(w)}")
    for n in d.get("notes") or []:  # what the backend does differently from the spec (e.g. a split not sent)
        out.append(f"- ℹ️ {md_cell(n)}")
    if v.get("reasons") or v.get("alternatives") or v.get("warnings") or d.get("notes"):
        out.append("")
    model = d.get("model") or {}
    hp = d.get("hyperparameters") or {}
    facts = {
        "job name": d.get("job_name"),
        "model": model.get("id"),
        "model source": model.get("registry_asset") or model.get("hf_id") or model.get("local_path"),
        "task / method": f"{d.get('task')} / {d.get('method')}",
        "epochs": hp.get("epochs"),
        "learning rate": hp.get("learning_rate"),
        "batch size": hp.get("batch_size"),
        "max sequence length": hp.get("max_seq_length"),
    }
    tracking = d.get("tracking") or {}
    if tracking.get("experiment"):
        facts["MLflow experiment"] = tracking.get("experiment")
    out += _kv_table("What runs", {k: val for k, val in facts.items() if val is not None})
    data = d.get("data") or []
    if data:
        out += ["**Data**", "", "| role | file | size | checked |", "|---|---|---|---|"]
        for f in data:
            checked = "—" if f.get("ok") is None else ("✅" if f["ok"] else f"❌ {f.get('errors')} error(s)")
            size = f"{f['size']:,} bytes" if isinstance(f.get("size"), int) else None
            out.append(
                f"| {md_cell(f.get('role'))} | {md_cell(f.get('ref') or f.get('uri') or f.get('path'))} | "
                f"{md_cell(size)} | {checked} |"
            )
        out.append("")
    est = {k: val for k, val in (d.get("estimate") or {}).items() if k != "label" and val is not None}
    if est:
        out += _kv_table("Estimate (not a quote)", {k.replace("_", " "): val for k, val in est.items()})
    if d.get("request") is not None:
        import yaml

        text = yaml.safe_dump(d["request"], sort_keys=False, width=1_000_000, allow_unicode=True)
        if len(text) > MAX_REQUEST_CHARS:
            text = text[:MAX_REQUEST_CHARS] + "\n# … cut; the plan artifact has the whole request\n"
        label = "What would be sent to Azure ML" if d.get("target") in ("maas", "maap") else "What would run"
        out += [
            "<details>",
            f"<summary>{label}</summary>",
            "",
            "```yaml",
            text.rstrip("\n"),
            "```",
            "",
            "</details>",
            "",
        ]
    return out


def _job_section(d: dict, results: dict | None) -> list[str]:
    out = ["### Job", ""]
    status = d.get("status")
    icon = {"Completed": "✅", "Failed": "❌", "Canceled": "⚠️"}.get(str(status), "ℹ️")
    out.append(
        f"{icon} **{md_cell(status)}** · job {md_code(d.get('name') or d.get('job_name'))} on `{d.get('backend')}`"
    )
    out.append("")
    if d.get("error") or d.get("error_code"):
        out += [f"> **{md_cell(d.get('error_code') or 'error')}**: {md_cell(d.get('error'))}", ""]
    links = {}
    if d.get("studio_url"):
        links["Azure ML studio"] = d["studio_url"]
    if d.get("mlflow_run_id"):
        links["MLflow run"] = d["mlflow_run_id"]
    out += _kv_table("Where", links)
    metrics = dict(d.get("metrics") or {})
    outputs = dict(d.get("outputs") or {})
    if results:
        metrics.update(results.get("metrics") or {})
        outputs.update(results.get("outputs") or {})
    out += _kv_table("Final metrics", metrics)
    out += _kv_table("Model / adapter", outputs)
    if status not in ("Completed", "Failed", "Canceled") and status is not None:
        job = d.get("name") or d.get("job_name")
        out += [f"The job is still {md_cell(status)}: `azft wait {job}` resumes watching it.", ""]
    return out


def is_sweep(d: Any) -> bool:
    """A sweep's document (``azft plan``, ``submit --wait`` or ``wait`` of a spec with ``sweep:``): its trials."""
    return isinstance(d, dict) and "sweep" in d and isinstance(d.get("trials"), list)


def _sweep_step_line(step: str, d: dict) -> str:
    trials = d["trials"]
    if step == "plan":
        bad, backend = d.get("invalid") or [], d.get("backend")
        if d.get("ok"):
            head = f"all {len(trials)} trials can run on {backend}"
        elif bad:
            head = f"{len(bad)} of {len(trials)} trials cannot run on {backend} (trial {', '.join(map(str, bad))})"
        else:
            head = f"over the sweep's budget on {backend}"
        return f"{head} · sweep {md_code(d.get('sweep'))}"
    counts = d.get("counts") or {}
    return f"sweep {md_code(d.get('sweep'))} · " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "no trials")


def sweep_values(values: dict | None) -> str:
    from azft.sweep import values_text

    return values_text(values or {})


def _sweep_plan_section(d: dict) -> list[str]:
    """A sweep's plan: the verdict, one row per trial (values, estimate, verdict), the totals and the budget."""
    trials = d["trials"]
    out = ["### Sweep plan", ""]
    if d.get("ok"):
        out.append(f"**Verdict:** ✅ all {len(trials)} trials can run on `{d.get('backend')}`")
    else:
        out.append(f"**Verdict:** ❌ the sweep cannot be submitted on `{d.get('backend')}` as it is")
    out += ["", "| trial | job | values | cost | hours | verdict |", "|---|---|---|---|---|---|"]
    for t in trials:
        verdict = "✅ can run" if t.get("ok") else "❌ " + "; ".join(t.get("reasons") or [])
        out.append(
            f"| {t.get('trial')} | {md_code(t.get('job_name'))} | {md_cell(sweep_values(t.get('values')))} | "
            f"{md_cell(t.get('cost_usd'))} | {md_cell(t.get('hours'))} | {md_cell(verdict)} |"
        )
    out.append("")
    budget = d.get("budget") or {}
    out += [f"- ❌ budget: {md_cell(p)}" for p in budget.get("problems") or []]
    out += [f"- ➡️ instead: {md_cell(c)}" for c in budget.get("changes") or []]
    if budget.get("problems"):
        out.append("")
    totals = {k.replace("_", " "): v for k, v in (d.get("totals") or {}).items() if v is not None}
    out += _kv_table(f"Sweep {d.get('sweep')} ({d.get('strategy')}) — totals, not a quote", totals)
    return out


def _sweep_trials_section(d: dict) -> list[str]:
    """How a sweep's trials ended: status, final losses and why a trial stopped or failed."""
    out = ["### Sweep trials", "", "| trial | job | values | status | eval_loss | train_loss | note |"]
    out.append("|---|---|---|---|---|---|---|")
    icons = {"Completed": "✅", "Failed": "❌", "NotSubmitted": "❌", "Canceled": "⚠️"}
    for t in d["trials"]:
        m = t.get("metrics") or {}
        note = t.get("stopped") or ((f"{t['error_code']}: " if t.get("error_code") else "") + (t.get("error") or ""))
        out.append(
            f"| {t.get('trial')} | {md_code(t.get('job_name'))} | {md_cell(sweep_values(t.get('values')))} | "
            f"{icons.get(str(t.get('status')), 'ℹ️')} {md_cell(t.get('status'))} | {md_cell(m.get('eval_loss'))} | "
            f"{md_cell(m.get('train_loss'))} | {md_cell(note or None)} |"
        )
    out.append("")
    return out


def render_summary(spec: str, backend: str | None, steps: list[StepResult], title: str | None = None) -> str:
    """The Markdown summary of one spec's CI run."""
    heading = title or f"azft · {md_code(spec)}" + (f" → `{backend}`" if backend else "")
    out = [f"## {heading}", "", "| step | result |", "|---|---|"]
    for r in steps:
        out.append(f"| {_icon(r)} {r.step} | {md_cell(_step_line(r))} |")
    out.append("")
    by_step = {r.step: r for r in steps}
    for r in steps:
        if r.state == "error":
            out += _error_block(r)
    plan = by_step.get("plan")
    if plan and plan.state == "ok" and isinstance(plan.data, dict):
        out += _sweep_plan_section(plan.data) if is_sweep(plan.data) else _plan_section(plan.data)
    job = by_step.get("wait") or by_step.get("submit")
    if job and job.state == "ok" and is_sweep(job.data):
        out += _sweep_trials_section(job.data)
        job = None
    results = by_step.get("results")
    res_data = results.data if results and results.state == "ok" and isinstance(results.data, dict) else None
    if job and job.state == "ok" and isinstance(job.data, dict):
        out += _job_section(job.data, res_data)
    elif res_data:
        out += _kv_table("Final metrics", res_data.get("metrics") or {})
        out += _kv_table("Model / adapter", res_data.get("outputs") or {})
    if res_data and res_data.get("artifact_uri"):
        out += [f"MLflow artifacts: {md_code(res_data['artifact_uri'])}", ""]
    text = "\n".join(out).rstrip("\n") + "\n"
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[:MAX_SUMMARY_CHARS] + "\n\n… summary cut at the step-summary size limit\n"
    return text


def append_summary(markdown: str, out: str | None) -> str | None:
    """Append to ``out`` (``-`` or None: stdout). Returns the file written, if any."""
    if not out or out == "-":
        click.echo(markdown, nl=False)
        return None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        if path.stat().st_size:
            f.write("\n")
        f.write(markdown)
    return str(path)


# ----------------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------------


class _CiGroup(click.Group):
    """The action's steps (azft.ci_flow, azft.ci_github) load when they are called."""

    LAZY = {
        "review": "azft.ci_flow:review_cmd",
        "submit": "azft.ci_flow:submit_cmd",
        "plan-diff": "azft.ci_flow:plan_diff_cmd",
        "comment": "azft.ci_github:comment_cmd",
        "cancel": "azft.ci_flow:cancel_cmd",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            import importlib

            module, attr = self.LAZY[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group("ci", cls=_CiGroup)
def ci() -> None:
    """Helpers for CI pipelines: changed specs, review (validate, plan, diff), submit, PR comments, summaries."""


@ci.command("specs")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--glob",
    "globs",
    multiple=True,
    metavar="PATTERN",
    help="Where specs live, relative to the repository (repeatable; default: specs/**/*.yaml, specs/**/*.yml).",
)
@click.option(
    "--base",
    default=None,
    metavar="REV",
    help="Compare with this revision (merge base with --head). Unset or all zeros: every spec.",
)
@click.option("--head", default="HEAD", show_default=True, metavar="REV")
@click.option("--all", "all_", is_flag=True, help="Every spec, changed or not.")
@click.option(
    "--default-backend",
    type=click.Choice(BACKENDS),
    default="maap",
    show_default=True,
    help="Backend for specs without an `# azft-backend:` comment or a backend name in their path.",
)
@click.option(
    "--submit-backends",
    default=",".join(SUBMITTABLE),
    show_default=True,
    metavar="LIST",
    help="Backends CI may submit to (comma separated, from mock, maas, maap); other specs are planned only.",
)
@click.option("--repo", type=click.Path(file_okay=False), default=".", show_default=True, help="Repository root.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "github", "azure-devops"]),
    default="json",
    show_default=True,
    help="json: print the list; github: write outputs to $GITHUB_OUTPUT; azure-devops: print "
    "##vso[task.setvariable] lines.",
)
@click.option(
    "--save",
    "save",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also write the JSON list here (what `azft ci review` and `azft ci submit` read).",
)
@click.option("--output", "-o", type=click.Choice(["json"]), default="json", hidden=True)
def specs_cmd(
    paths: tuple[str, ...],
    globs: tuple[str, ...],
    base: str | None,
    head: str,
    all_: bool,
    default_backend: str,
    submit_backends: str,
    repo: str,
    fmt: str,
    save: str | None,
    output: str,
) -> int:
    """The job specs a change touched (spec or its local data files), each with its backend.

    PATHS adds spec files explicitly (always included). A base revision this clone does not have (after a
    force-push) takes every spec, with a notice. Outputs for GitHub Actions: `specs`, `count`, `plan_matrix`,
    `submit_matrix`, `submit_count`, `azure_count` (specs submitted to maas or maap: they need an Azure sign-in),
    `base` (the base compared with; empty when every spec was taken); for Azure DevOps the same as output
    variables (`planMatrix`, `submitMatrix`, `count`, `submitCount`, `azureCount`, `base`).
    """
    root = Path(repo)
    if not root.is_dir():
        raise UsageError(f"--repo {repo}: not a directory")
    allowed = _split_list(submit_backends, SUBMITTABLE, "--submit-backends")
    changed, notice = (None, None) if all_ else changed_since(root, base, head)
    if notice:
        prefix = {"github": "::notice title=azft::", "azure-devops": "##vso[task.logissue type=warning]"}
        click.echo(prefix.get(fmt, "notice: ") + notice, err=fmt == "json")
    found = find_specs(
        root,
        globs or DEFAULT_GLOBS,
        changed=changed,
        default_backend=default_backend,
        submit_backends=allowed,
        explicit=paths,
    )
    submit_list = [s for s in found if s.submit]
    azure_count = sum(1 for s in submit_list if s.backend in ("maas", "maap"))
    used_base = None if changed is None else base
    doc = {
        "base": used_base,
        "head": head,
        "all": changed is None,
        "notice": notice,
        "count": len(found),
        "submit_count": len(submit_list),
        "azure_count": azure_count,
        "specs": [asdict(s) for s in found],
    }
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        Path(save).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "github":
        _emit_github(found, submit_list, azure_count, used_base)
    else:
        _emit_azure_devops(found, submit_list, azure_count, used_base)
    return EXIT_OK


def _emit_github(found: list[CiSpec], submit_list: list[CiSpec], azure_count: int, used_base: str | None) -> None:
    """`azft ci specs --format github`: the step outputs to $GITHUB_OUTPUT, one line per spec on stderr."""
    plan_matrix = {"include": [s.matrix_entry() for s in found]}
    submit_matrix = {"include": [s.matrix_entry() for s in submit_list]}
    lines = [
        f"specs={json.dumps([s.spec for s in found])}",
        f"count={len(found)}",
        f"plan_matrix={json.dumps(plan_matrix)}",
        f"submit_matrix={json.dumps(submit_matrix)}",
        f"submit_count={len(submit_list)}",
        f"azure_count={azure_count}",
        f"base={used_base or ''}",
    ]
    _write_outputs(lines, os.environ.get("GITHUB_OUTPUT"))
    for s in found:
        why = ", ".join(s.changed) if s.changed else "all specs"
        click.echo(
            f"{s.spec}: backend {s.backend} ({s.backend_source}), "
            f"{'plan + submit on main' if s.submit else 'plan only'} [{why}]",
            err=True,
        )
    if not found:
        click.echo("no changed specs", err=True)


def _emit_azure_devops(found: list[CiSpec], submit_list: list[CiSpec], azure_count: int, used_base: str | None) -> None:
    """`azft ci specs --format azure-devops`: the same outputs as ##vso[task.setvariable] lines."""

    def matrix(items: list[CiSpec]) -> str:
        return json.dumps({s.key: {"spec": s.spec, "backend": s.backend} for s in items})

    variables = {
        "planMatrix": matrix(found),
        "submitMatrix": matrix(submit_list),
        "count": len(found),
        "submitCount": len(submit_list),
        "azureCount": azure_count,
        "base": used_base or "",
    }
    for name, value in variables.items():
        click.echo(f"##vso[task.setvariable variable={name};isOutput=true]{value}")


@ci.command("summary")
@click.argument("spec")
@click.option("--backend", "-b", type=click.Choice(BACKENDS), default=None, help="The backend, for the heading.")
@click.option(
    "--validate",
    "validate_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON written by `azft validate --output json`.",
)
@click.option(
    "--plan",
    "plan_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON written by `azft plan --output json`.",
)
@click.option(
    "--submit",
    "submit_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON written by `azft submit [--wait] --output json`.",
)
@click.option(
    "--wait",
    "wait_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON written by `azft wait --output json`.",
)
@click.option(
    "--results",
    "results_json",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON written by `azft results --output json`.",
)
@click.option("--title", default=None, help="Heading (default: the spec and backend).")
@click.option(
    "--out",
    "out",
    default=None,
    metavar="FILE",
    help="Append the Markdown here (default: $GITHUB_STEP_SUMMARY when set, else stdout; - for stdout).",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    help="json: {spec, backend, markdown, written} on stdout (the Markdown is still appended to a file).",
)
def summary_cmd(
    spec: str,
    backend: str | None,
    validate_json: str | None,
    plan_json: str | None,
    submit_json: str | None,
    wait_json: str | None,
    results_json: str | None,
    title: str | None,
    out: str | None,
    output: str = "table",
) -> int:
    """Markdown summary of a spec's CI steps (verdict, estimate, what is sent, job outcome, metrics).

    Give the JSON file of each step that ran; a named file that does not exist is shown as "did not run". The
    summary never fails the pipeline: the steps' own exit codes do.
    """
    steps = [
        read_step(name, path)
        for name, path in (
            ("validate", validate_json),
            ("plan", plan_json),
            ("submit", submit_json),
            ("wait", wait_json),
            ("results", results_json),
        )
    ]
    markdown = render_summary(spec, backend, [s for s in steps if s is not None], title=title)
    target = out if out is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if output == "json":
        written = append_summary(markdown, target) if target and target != "-" else None
        click.echo(json.dumps({"spec": spec, "backend": backend, "markdown": markdown, "written": written}, indent=2))
        return EXIT_OK
    written = append_summary(markdown, target)
    if written:
        click.echo(f"summary appended to {written}", err=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """``python -m azft.ci_summary ...``: the same commands through azft's error handling."""
    from azft.cli import report_error
    from azft.errors import AzftError

    args = sys.argv[1:] if argv is None else argv
    try:
        rv = ci.main(args=args, prog_name="azft ci", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)
    except AzftError as e:
        sys.exit(report_error(e, "json" if "json" in args else "table"))
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_INVALID)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()

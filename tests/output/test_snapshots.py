"""What the user sees, command by command: each command's table and JSON output against a stored snapshot in
tests/snapshots/, normalised for times, durations, paths and generated ids, so a change in what a user reads fails
a test. When the change is intended, rewrite the snapshots and review their diff:

    AZFT_UPDATE_SNAPSHOTS=1 python -m pytest tests/output/test_snapshots.py

Also: no table output of any of these commands holds `None`, JSON (`{"`) or a Python repr.

The commands run in-process on the shared mock jobs of tests/output/conftest.py (one completed, one failed
QuotaExceeded job, the real maas code against the emulator); nothing trains."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

SNAPSHOTS = ROOT / "tests" / "snapshots"
UPDATE = os.environ.get("AZFT_UPDATE_SNAPSHOTS") == "1"
LEFTOVERS = re.compile(r"\bNone\b|\{\"|\{'|<[A-Za-z_.]+ object at 0x|\b[A-Z][A-Za-z]+\([a-z_]+=|\[\]|\{\}")

SPEC_TINY = EXAMPLES / "tiny-local.yaml"
SPEC_MAAS = EXAMPLES / "phi4-mini-maas.yaml"
SPEC_MAAP = EXAMPLES / "phi3-medium-maap-zero3.yaml"
TRAIN = EXAMPLES / "data" / "chat_train.jsonl"
PRICES = EXAMPLES / "prices.yaml"

# name → (arguments; the outputs it is snapshotted in). "{completed}"/"{failed}": the shared mock jobs.
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "validate": (("validate", str(SPEC_TINY)), ("table", "json")),
    "plan-local": (("plan", str(SPEC_TINY), "--backend", "local"), ("table", "json")),
    "plan-maas": (("plan", str(SPEC_MAAS), "--backend", "maas", "--prices", str(PRICES)), ("table", "json")),
    "plan-maap": (("plan", str(SPEC_MAAP), "--backend", "maap", "--prices", str(PRICES), "--fit"), ("table", "json")),
    "plan-refused": (("plan", str(SPEC_TINY), "--backend", "maas"), ("table", "json")),
    "catalog": (("catalog",), ("table", "json")),
    "catalog-model": (("catalog", "--model", "phi-4-mini-instruct"), ("table", "json")),
    "catalog-sizes": (("catalog", "--sizes"), ("table", "json")),
    "schema": (("schema",), ("json",)),
    "status-completed": (("status", "{completed}"), ("table", "json")),
    "status-failed": (("status", "{failed}"), ("table", "json")),
    "wait-failed": (("wait", "{failed}", "--poll", "0.05"), ("table", "json")),
    "list": (("list",), ("table", "json")),
    "logs": (("logs", "{completed}"), ("table", "json")),
    "results": (("results", "{completed}"), ("table", "json")),
    "runs-list": (("runs", "list"), ("table", "json")),
    "runs-show": (("runs", "show", "{completed}"), ("table", "json")),
    "data-check": (("data", "check", str(TRAIN)), ("table", "json")),
    "data-stats": (("data", "stats", str(TRAIN)), ("table", "json")),
    "ci-summary": (("ci", "summary", "specs/bot.yaml", "--out", "-"), ("table", "json")),
    "init": (("init", "azft.yaml", "--force"), ("table", "json")),
    "data-split": (("data", "split", str(TRAIN), "--out-dir", "split", "--force"), ("table", "json")),
    "wait-completed": (("wait", "{completed}", "--poll", "0.05"), ("table", "json")),
    "runs-compare": (("runs", "compare", "{completed}", "{failed}", "--no-log", "--out", "cmp.png"), ("table", "json")),
    "endpoints-list": (("endpoints", "list"), ("table", "json")),
}

_SUBS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TIME>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<CLOCK>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<UUID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<SHA256>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<RUN>"),
    (re.compile(r"-[0-9a-f]{10}\b"), "-<ID>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12}\b"), "<RUN12>"),
    (re.compile(r"\b[0-9a-f]{12}…"), "<HASH>…"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b(?=[\])\s,]|$)"), "<DURATION>"),
]


def normalise(text: str, home: Path, tmp: Path | None = None) -> str:
    for path, label in ((str(home), "<HOME>"), (str(ROOT), "<ROOT>"), (str(tmp or "/tmp"), "<TMP>")):
        text = text.replace(path, label)
    text = re.sub(r"<TMP>[^\s\"',)│]*|/tmp/[^\s\"',)│]+", "<TMP>", text)
    for pattern, label in _SUBS:
        text = pattern.sub(label, text)
    # table geometry follows the length of what was replaced: compare content, not border or padding widths
    text = re.sub(r"([─━═┄])\1+", r"\1", text)
    text = re.sub(r"[ \t]+", " ", text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"


VARYING = re.compile(r"elapsed|duration|runtime_seconds|^pid$")


def _json_normalised(out: str) -> str:
    """JSON with keys in a stable order; values that measure this run's speed or process are replaced."""

    def walk(v, key=""):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, key) for x in v]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and VARYING.search(key):
            return "<VARIES>"
        return v

    return json.dumps(walk(json.loads(out)), indent=1, sort_keys=True, ensure_ascii=False)


def _run(run_cli, jobs, args: tuple[str, ...], output: str):
    args = tuple(a.format(**jobs) for a in args)
    res = run_cli(*args, *(() if output == "table" else ("--output", output)))
    return res


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path.relative_to(ROOT)}: run with AZFT_UPDATE_SNAPSHOTS=1 and review it"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        import difflib

        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "snapshot", "now"))
        pytest.fail(f"{name} differs from its snapshot (AZFT_UPDATE_SNAPSHOTS=1 rewrites it):\n{diff[:6000]}")


@pytest.fixture
def cli_env(in_jobs_home, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "1000")  # no cell wraps at a length that depends on the checkout's path
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return {"completed": in_jobs_home["completed"], "failed": in_jobs_home["failed"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_command_output_matches_its_snapshot(case, run_cli, cli_env, in_jobs_home, tmp_path_factory):
    args, outputs = CASES[case]
    for output in outputs:
        res = _run(run_cli, cli_env, args, output)
        assert res.code in (0, 1, 2), res.text
        text = res.out if output == "table" else _json_normalised(res.out)
        check_snapshot(f"{case}.{output}.txt", normalise(text, in_jobs_home["home"], tmp_path_factory.getbasetemp()))
        if output == "table":
            table, _, _request = res.out.partition("\nwould ")  # `plan` ends with the YAML document it sends
            leftovers = [ln for ln in table.splitlines() if LEFTOVERS.search(ln)]
            assert not leftovers, f"{case}: Python/JSON leftovers in the table output:\n" + "\n".join(leftovers)


def test_every_snapshot_belongs_to_a_case():
    """A renamed or removed case leaves no stale snapshot behind."""
    expected = {f"{c}.{o}.txt" for c, (_, outs) in CASES.items() for o in outs}
    stale = sorted(p.name for p in SNAPSHOTS.glob("*.txt") if p.name not in expected)
    assert not stale, f"snapshots without a case (delete them): {stale}"

"""What every table cell and timestamp looks like: no None, no reprs, no JSON; numbers by kind; one time format."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from azft.render import MISSING, cell, kind_of, timestamp

LEFTOVERS = re.compile(r"\bNone\b|\{\"|\{'|<[A-Za-z_.]+ object at 0x|\[\]|\{\}")


@pytest.mark.parametrize("value", [None, "", {}, [], {"a": None}])
def test_missing_values_are_a_dash(value):
    assert cell(value) == MISSING


def test_nested_values_are_key_value_lists_not_json():
    text = cell({"cost_usd": 12.5, "tokens": {"train": 1200}, "note": None, "modules": ["q", "v"]})
    assert text == "cost_usd=$12.50, tokens=train=1200, modules=(q, v)"
    assert not LEFTOVERS.search(text)


@pytest.mark.parametrize(
    "key,value,shown",
    [
        ("training_tokens_total", 263175, "263,175"),
        ("cost_usd", 3.14159, "$3.14"),
        ("price_per_1k_tokens", 0.003, "$0.003"),
        ("hours", 1.5, "1.50 h"),
        ("estimate_gb", 14.04, "14.0 GB"),
    ],
)
def test_numbers_are_formatted_by_kind(key, value, shown):
    assert cell(value, kind_of(key)) == shown


@pytest.mark.parametrize(
    "raw",
    [
        "2026-12-04T15:33:35+00:00",
        "2026-12-04 15:33:35.150631+00:00",
        "2026-12-04T16:33:35+01:00",
        "2026-12-04T15:33:35Z",
        dt.datetime(2026, 12, 4, 15, 33, 35, 999, tzinfo=dt.timezone.utc),
        1796398415,
        1796398415000,
    ],
)
def test_every_backend_timestamp_reads_the_same(raw):
    assert timestamp(raw) == "2026-12-04T15:33:35Z"


def _plan_table(run_cli, spec, backend, *extra):
    res = run_cli("plan", str(spec), "--backend", backend, *extra)
    assert res.code in (0, 2), res.text
    return res.out


@pytest.mark.parametrize("backend", ["local", "mock", "maas", "maap"])
def test_plan_tables_have_no_python_leftovers(run_cli, monkeypatch, backend):
    from tests.conftest import EXAMPLES

    monkeypatch.setenv("COLUMNS", "200")
    for spec in ("tiny-local.yaml", "phi4-mini-maas.yaml", "phi3-medium-maap-zero3.yaml"):
        out = _plan_table(run_cli, EXAMPLES / spec, backend, "--prices", str(EXAMPLES / "prices.yaml"))
        head, _, _request = out.partition("would ")
        assert not LEFTOVERS.search(head), (spec, head)
    out = _plan_table(run_cli, EXAMPLES / "tiny-local.yaml", "mock")
    assert "tiny-phi3 (None)" not in out and "│ price source" in out and MISSING in out


def test_list_shows_full_job_names_and_iso_times_at_80_columns(run_cli, monkeypatch):
    from azft.backends.base import JobInfo, JobStatus

    long = "a-job-name-that-is-long-enough-to-be-cut-at-eighty-columns-0123456789"
    info = JobInfo(
        name=long,
        backend="maas",
        status=JobStatus.FAILED,
        created="2026-12-04 15:37:26.150631+00:00",
        error="QuotaExceeded: no quota left",
    )
    monkeypatch.setattr("azft.api.list_jobs", lambda *a, **k: [info])
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("list").out
    assert long in out and "2026-12-04T15:37:26Z" in out and "QuotaExceeded" in out

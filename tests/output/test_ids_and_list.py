"""Job ids by unique prefix, the error of a failed job in `azft list`, ids never cut at 80 columns."""

from __future__ import annotations

import json
import re

import pytest


@pytest.mark.parametrize("command", [("status",), ("wait", "--poll", "0.05"), ("logs",), ("results",)])
def test_job_commands_accept_a_unique_prefix(command, run_cli, in_jobs_home):
    job = in_jobs_home["completed"]
    prefix = job[: len("completed-bot-") + 3]
    res = run_cli(command[0], prefix, *command[1:])
    assert res.code == 0, res.text
    if command[0] in ("status", "wait", "results"):
        assert job in res.out


def test_an_unknown_name_lists_the_jobs_submitted_from_here(run_cli, in_jobs_home):
    res = run_cli("status", "completed-bot-nothing-like-this")
    assert res.code == 2, res.text
    assert "no job named" in res.err and in_jobs_home["completed"] in res.err and in_jobs_home["failed"] in res.err


def test_a_prefix_of_two_jobs_is_refused_listing_both(run_cli, in_jobs_home, monkeypatch):
    from azft import state

    index = state.submissions()
    monkeypatch.setattr(
        "azft.api.submissions", lambda: {**index, "completed-bot-twin": index[in_jobs_home["completed"]]}
    )
    res = run_cli("status", "completed-bot")
    assert res.code == 2, res.text
    assert "matches 2 jobs" in res.err and in_jobs_home["completed"] in res.err and "completed-bot-twin" in res.err
    res = run_cli("results", "completed-bot", "--output", "json")
    assert res.code == 2 and "matches 2 jobs" in res.out


def test_list_shows_the_azure_code_of_a_failed_job_whole_at_80_columns(run_cli, in_jobs_home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    failed = in_jobs_home["failed"]
    status = run_cli("status", failed, "--output", "json")
    code = json.loads(status.out)["error_code"]
    assert code
    listed = {j["name"]: j for j in json.loads(run_cli("list", "--output", "json").out)}
    assert listed[failed]["error_code"] == code and listed[failed]["error"]
    table = run_cli("list").out
    assert failed in table and in_jobs_home["completed"] in table
    assert code in table
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table)
    assert "…" not in table


def test_runs_list_keeps_job_names_whole_at_80_columns(run_cli, in_jobs_home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("runs", "list").out
    assert in_jobs_home["completed"] in out and in_jobs_home["failed"] in out and "…" not in out


def test_runs_list_keeps_a_long_job_name_whole_at_80_columns(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from azft.cli_runs import runs
    from azft.tracking import Tracker

    monkeypatch.setenv("COLUMNS", "80")
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    long = "a-fine-tuning-job-with-a-name-long-enough-to-be-cut-at-eighty-columns-0123456789"
    tracker = Tracker(uri, "wide", buffer_dir=tmp_path / "buffer", quiet=True)
    rid = tracker.start_submission(
        spec={"model": "tiny-phi3", "method": "lora"},
        plan={},
        data_report=None,
        backend="mock",
        job_name=long,
        studio_url=None,
        tags={},
    )
    out = CliRunner().invoke(runs, ["list", "--tracking-uri", uri]).output
    assert long in out and rid[:12] in out

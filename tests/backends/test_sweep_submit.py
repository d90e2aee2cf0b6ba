"""Sweeps submitted and followed on the mock backend (the real maas code against the emulator), through the CLI:
one upload per distinct data file, at most max_concurrent submits at once, an identical re-submit finding the same
trials, status/wait/cancel of a whole sweep by its name, a failing trial named with exit 1, refusals (an invalid
trial, the budget) before anything is submitted, and the max_hours limit on a controlled clock."""

from __future__ import annotations

import calendar
import json
import time

import pytest

FAST = {"seconds_per_state": 0.05}


def _sweep_spec(make_spec, name="sw", mock=None, **sweep):
    sweep.setdefault("parameters", {"hyperparameters.learning_rate": [1e-4, 2e-4], "hyperparameters.epochs": [1, 2]})
    return make_spec(name=name, model="phi-4-mini-instruct", mock=mock or FAST, sweep=sweep)


def _submit(run_cli, spec, *args):
    res = run_cli("submit", str(spec.source), "--backend", "mock", "--output", "json", *args)
    return res, json.loads(res.out) if res.out.strip().startswith("{") else None


def test_submit_uploads_once_bounds_concurrency_and_a_resubmit_finds_the_same_trials(run_cli, make_spec):
    from azft.state import submissions

    spec = _sweep_spec(make_spec, max_concurrent=2)
    res, d = _submit(run_cli, spec)
    assert res.code == 0, res.text
    assert d["submitted"] == 4 and d["error"] == 0 and len({t["job_name"] for t in d["trials"]}) == 4
    assert d["files_uploaded"] == 1 and d["bytes_uploaded"] == spec.source.with_name("sw-train.jsonl").stat().st_size
    assert 1 <= d["max_in_flight"] <= 2
    assert set(submissions()) == {t["job_name"] for t in d["trials"]}

    waited = run_cli("wait", d["sweep"], "--poll", "0.05", "--output", "json")
    assert waited.code == 0, waited.text
    w = json.loads(waited.out)
    assert w["counts"] == {"Completed": 4} and all(t["metrics"]["eval_loss"] > 0 for t in w["trials"])
    assert len({t["metrics"]["eval_loss"] for t in w["trials"]}) > 1  # the trials trained differently

    again, d2 = _submit(run_cli, spec)
    assert again.code == 0 and d2["sweep"] == d["sweep"]
    assert d2["existing"] == 4 and d2["submitted"] == 0 and d2["files_uploaded"] == 0
    assert [t["job_name"] for t in d2["trials"]] == [t["job_name"] for t in d["trials"]]
    assert len(submissions()) == 4

    table = run_cli("status", d["sweep"])
    assert table.code == 0 and "learning_rate=0.0001" in table.out and "4 Completed" in table.out
    prefix = run_cli("status", d["sweep"][:-4], "--output", "json")  # a unique prefix of the sweep's name
    assert prefix.code == 0 and len(json.loads(prefix.out)["trials"]) == 4


def test_an_invalid_trial_refuses_the_sweep_before_anything_is_submitted(run_cli, make_spec):
    from azft.state import sweep_names, submissions

    spec = _sweep_spec(make_spec, name="half", parameters={"lora.r": [8], "hyperparameters.batch_size": [4, 0]})
    res, _ = _submit(run_cli, spec)
    assert res.code == 2 and "1 of 2 trials cannot run" in res.out and "batch_size=0" in res.out
    assert not submissions() and not sweep_names()
    res, d = _submit(run_cli, spec, "--skip-invalid")
    assert res.code == 0, res.text
    assert d["submitted"] == 1 and d["skipped"] == 1
    skipped = next(t for t in d["trials"] if t["submitted"] == "skipped")
    assert skipped["values"]["hyperparameters.batch_size"] == 0 and "batch_size" in skipped["error"]


def test_a_failing_trial_is_named_and_the_sweep_exits_1(run_cli, make_spec):
    oom = [{"kind": "job_error", "state": "Running", "error": "out_of_memory"}]
    spec = _sweep_spec(
        make_spec, name="partial", parameters={"hyperparameters.learning_rate": [1e-4, 2e-4], "mock.faults": [[], oom]}
    )
    res, d = _submit(run_cli, spec)
    assert res.code == 0, res.text
    waited = run_cli("wait", d["sweep"], "--poll", "0.05", "--output", "json")
    assert waited.code == 1, waited.text
    rows = json.loads(waited.out)["trials"]
    failed = [t for t in rows if t["status"] == "Failed"]
    assert len(failed) == 2 and all(t["error_code"] == "OutOfMemory" for t in failed)
    assert all(t["values"]["mock.faults"] == oom for t in failed)
    assert sorted(t["status"] for t in rows) == ["Completed", "Completed", "Failed", "Failed"]
    table = run_cli("wait", d["sweep"], "--poll", "0.05")
    assert table.code == 1 and "OutOfMemory" in table.out and "2 Completed, 2 Failed" in table.out


def test_cancel_of_a_whole_sweep(run_cli, make_spec):
    spec = _sweep_spec(
        make_spec,
        name="stopme",
        mock={"seconds_per_state": 4},
        parameters={"hyperparameters.learning_rate": [1e-4, 2e-4, 3e-4]},
    )
    res, d = _submit(run_cli, spec)
    assert res.code == 0, res.text
    cancel = run_cli("cancel", d["sweep"], "--output", "json")
    assert cancel.code == 0, cancel.text
    assert {t["status"] for t in json.loads(cancel.out)["trials"]} <= {"CancelRequested", "Canceled"}
    waited = run_cli("wait", d["sweep"], "--poll", "0.1", "--output", "json")
    assert waited.code == 3 and json.loads(waited.out)["counts"] == {"Canceled": 3}


def test_submit_refuses_a_sweep_over_its_budget_before_anything_is_submitted(run_cli, make_spec, tmp_path):
    from pathlib import Path

    from azft.state import submissions

    prices = str(Path(__file__).resolve().parents[2] / "examples" / "prices.yaml")
    make_spec(
        name="pricey",
        model="phi-3-mini-4k-instruct",
        mock={"target": "maap", **FAST},
        compute={"cluster": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"},
        sweep={"parameters": {"hyperparameters.learning_rate": [1e-4, 2e-4, 3e-4]}},
    )
    plan = json.loads(
        run_cli("plan", str(tmp_path / "pricey.yaml"), "--backend", "mock", "--prices", prices, "--output", "json").out
    )
    one = plan["trials"][0]["cost_usd"]
    res = run_cli(
        "submit", str(tmp_path / "pricey.yaml"), "--backend", "mock", "--prices", prices, "--max-usd", f"{one * 2:.4f}"
    )
    assert res.code == 2, res.text
    text = " ".join(res.text.split())
    assert "over its budget" in text and "sum over 3 trials" in text and "nothing was uploaded or submitted" in text
    assert not submissions()


def test_wait_cancels_trials_past_max_hours_on_a_controlled_clock(make_spec):
    from azft.spec import load_spec
    from azft.state import lookup_submission
    from azft.sweep import plan_sweep
    from azft.sweep_run import lookup_record, submit_sweep, wait_sweep

    spec = make_spec(
        name="slow",
        model="phi-4-mini-instruct",
        budget={"max_hours": 2},
        mock={"seconds_per_state": 4},
        sweep={"parameters": {"hyperparameters.learning_rate": [1e-4, 2e-4]}},
    )
    result = submit_sweep(plan_sweep(load_spec(spec.source), "mock"), track=False)
    names = [t["job_name"] for t in result["trials"]]
    assert all(lookup_submission(n)["max_hours"] == 2 for n in names)
    created = max(calendar.timegm(time.strptime(lookup_submission(n)["created"], "%Y-%m-%dT%H:%M:%SZ")) for n in names)
    record = lookup_record(result["sweep"])
    from azft.errors import JobCancelledError

    with pytest.raises(JobCancelledError, match="2 of 2 trials still running"):
        wait_sweep(record, timeout=0.2, poll_interval=0.05, now=created + 3600)
    out = wait_sweep(record, poll_interval=0.1, now=created + 7201)
    assert out["exit_code"] == 3 and out["counts"] == {"Canceled": 2}
    assert all("max_hours 2" in t["stopped"] for t in out["trials"])
    assert set(lookup_record(result["sweep"])["stopped"]) == set(names)


def test_median_stopping_rule():
    from azft.sweep_run import median_stops

    good = [(10, 1.0), (20, 0.6), (30, 0.5)]
    mid = [(10, 1.1), (20, 0.7), (30, 0.6)]
    bad = [(10, 1.6), (20, 1.5), (30, 1.45)]
    h = {"a": good, "b": mid, "c": bad}
    # c's best (1.45) is worse than the median of the running averages (0.8, 0.8, 1.517 → 0.8): stopped
    out = median_stops(h, {"a", "b", "c"}, delay_steps=10, min_trials=3)
    assert set(out) == {"c"} and "1.45" in out["c"] and "step 30" in out["c"]
    assert median_stops(h, {"a", "b", "c"}, delay_steps=30, min_trials=3) == {}  # still in its grace period
    assert median_stops(h, {"a", "b", "c"}, delay_steps=10, min_trials=4) == {}  # too few trials to compare
    assert median_stops(h, {"a", "b"}, delay_steps=10, min_trials=3) == {}  # only running trials are stopped
    # a trial compared at its own latest step, against trials that reached it
    early = {"a": good, "b": mid, "c": [(10, 2.0), (20, 1.9)]}
    assert set(median_stops(early, {"c"}, delay_steps=10, min_trials=3)) == {"c"}


def test_median_stopping_cancels_a_diverging_trial_while_the_others_complete(run_cli, make_spec):
    """The median rule seen working on a sweep: of three trials, the one whose loss climbs (the mock's `diverge`
    fault) is cancelled while `azft wait` watches, with the numbers that decided it; the other two complete."""
    diverge = [{"kind": "diverge", "step": 5}]
    spec = _sweep_spec(
        make_spec,
        name="early",
        mock={"seconds_per_state": 2},
        parameters={"mock.faults": [[], diverge], "hyperparameters.learning_rate": [1e-4, 2e-4]},
        max_trials=3,
        early_stopping={"policy": "median", "metric": "eval_loss", "delay_steps": 10, "min_trials": 3},
    )
    res, d = _submit(run_cli, spec)
    assert res.code == 0, res.text
    waited = run_cli("wait", d["sweep"], "--poll", "0.05", "--output", "json")
    assert waited.code == 0, waited.text  # a trial stopped early is the rule working, not a failure
    rows = {t["trial"]: t for t in json.loads(waited.out)["trials"]}
    assert rows[3]["values"]["mock.faults"] == diverge and rows[3]["status"] == "Canceled"
    assert "early stopping (median rule)" in rows[3]["stopped"] and "worse than the median" in rows[3]["stopped"]
    assert rows[1]["status"] == rows[2]["status"] == "Completed" and not rows[1].get("stopped")

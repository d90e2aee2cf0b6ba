"""Sweeps planned: `azft plan` on a spec with `sweep:` shows every trial (job, values, estimate, verdict) and the
sweep's totals; a grid in written order, a seeded random sample; an invalid trial is reported with its values and
the others are still planned; the sweep's total cost is held against budget.max_usd (the sum over trials)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

PRICES = str(Path(__file__).resolve().parents[2] / "examples" / "prices.yaml")
MAAP = {"cluster": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}


def _plan(run_cli, path, *args):
    res = run_cli("plan", str(path), "--output", "json", *args)
    return res, json.loads(res.out) if res.out.strip().startswith("{") else None


def test_grid_is_every_combination_in_written_order_and_job_names_are_the_single_spec_ones(
    run_cli, make_spec, tmp_path
):
    from azft import api
    from azft.spec import load_spec

    grid = {"hyperparameters.learning_rate": [1e-4, 2e-4, 4e-4], "lora.r": [8, 16]}
    make_spec(name="grid", model="tiny-phi3", hyperparameters={"max_steps": 2}, sweep={"parameters": grid})
    res, d = _plan(run_cli, tmp_path / "grid.yaml")
    assert res.code == 0, res.text
    assert d["combinations"] == 6 and [t["trial"] for t in d["trials"]] == [1, 2, 3, 4, 5, 6]
    expected = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    assert [t["values"] for t in d["trials"]] == expected
    assert len({t["job_name"] for t in d["trials"]}) == 6 and all(t["ok"] for t in d["trials"])
    # a trial's job is the job its own spec would be: an identical single submit finds it
    single = load_spec(tmp_path / "grid.yaml")
    single.sweep = None
    single.hyperparameters.learning_rate, single.lora.r = 2e-4, 16
    assert api.plan(single, "local").job_name == d["trials"][3]["job_name"]
    assert d["totals"]["trials"] == 6 and d["totals"]["trial_hours"] > 0
    assert d["sweep"].startswith("grid-sweep-") and _plan(run_cli, tmp_path / "grid.yaml")[1]["sweep"] == d["sweep"]

    capped = make_spec(name="capped", model="tiny-phi3", sweep={"parameters": grid, "max_trials": 4})
    _, d = _plan(run_cli, capped.source)
    assert [t["values"] for t in d["trials"]] == expected[:4]


def test_random_sample_is_deterministic_with_its_seed(run_cli, make_spec, tmp_path):
    grid = {
        "hyperparameters.learning_rate": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        "lora.r": [4, 8, 16, 32],
        "lora.alpha": [16, 32],
    }
    make_spec(
        name="rnd", model="tiny-phi3", sweep={"strategy": "random", "max_trials": 5, "seed": 7, "parameters": grid}
    )
    make_spec(
        name="rnd2", model="tiny-phi3", sweep={"strategy": "random", "max_trials": 5, "seed": 8, "parameters": grid}
    )
    first = _plan(run_cli, tmp_path / "rnd.yaml")[1]
    again = _plan(run_cli, tmp_path / "rnd.yaml")[1]
    other = _plan(run_cli, tmp_path / "rnd2.yaml")[1]
    values = [t["values"] for t in first["trials"]]
    assert len(values) == 5 and values == [t["values"] for t in again["trials"]]
    assert [t["job_name"] for t in first["trials"]] == [t["job_name"] for t in again["trials"]]
    assert values != [t["values"] for t in other["trials"]]
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 5  # drawn without repeats
    for v in values:
        assert all(v[k] in grid[k] for k in grid)
    assert first["seed"] == 7 and first["combinations"] == 40


def test_an_invalid_trial_is_reported_with_its_values_and_does_not_hide_the_others(run_cli, make_spec, tmp_path):
    make_spec(name="bad", model="tiny-phi3", sweep={"parameters": {"lora.r": [8, 0], "method": ["lora", "qlora"]}})
    res, d = _plan(run_cli, tmp_path / "bad.yaml")
    assert res.code == 2, res.text
    by_values = {(t["values"]["lora.r"], t["values"]["method"]): t for t in d["trials"]}
    assert by_values[(8, "lora")]["ok"] and by_values[(8, "lora")]["job_name"]
    zero = by_values[(0, "lora")]
    assert not zero["ok"] and zero["job_name"] is None and "lora.r" in zero["reasons"][0]
    assert zero["problems"][0]["line"] and zero["problems"][0]["file"].endswith("bad.yaml")
    assert not by_values[(8, "qlora")]["ok"] and by_values[(8, "qlora")]["reasons"]  # qlora needs CUDA: refused
    assert d["invalid"] == sorted(t["trial"] for t in d["trials"] if not t["ok"])
    table = run_cli("plan", str(tmp_path / "bad.yaml"))
    assert table.code == 2 and "lora.r=0" in table.out and "cannot run" in table.out
    assert "can run" in table.out and "Traceback" not in table.text


def test_unknown_sweep_path_is_a_spec_error_with_the_line(run_cli, make_spec, tmp_path):
    path = tmp_path / "typo.yaml"
    make_spec(name="typo", model="tiny-phi3")
    path.write_text(path.read_text() + "sweep:\n  parameters:\n    hyperparameters.learnig_rate: [1.0e-4]\n")
    res = run_cli("validate", str(path), "--no-data")
    assert res.code == 2 and "sweep" in res.text and "hyperparameters.learning_rate" in res.text
    assert "Traceback" not in res.text
    path.write_text(path.read_text().replace("learnig_rate: [1.0e-4]", "learning_rate: []"))
    assert run_cli("validate", str(path), "--no-data").code == 2


def test_backend_is_a_sweep_parameter(run_cli, make_spec, tmp_path):
    make_spec(
        name="where",
        model="phi-3-mini-4k-instruct",
        compute=MAAP,
        mock={"target": "maap"},
        sweep={"parameters": {"backend": ["maap", "mock"]}},
    )
    res, d = _plan(run_cli, tmp_path / "where.yaml", "--prices", PRICES)
    assert res.code == 0, res.text
    assert [t["backend"] for t in d["trials"]] == ["maap", "mock"]
    assert d["trials"][0]["job_name"] != d["trials"][1]["job_name"]


def test_sweep_total_cost_is_held_against_max_usd_as_a_sum(run_cli, make_spec, tmp_path):
    sweep = {"parameters": {"hyperparameters.learning_rate": [1e-4, 2e-4, 4e-4]}}
    make_spec(name="costly", model="phi-3-mini-4k-instruct", compute=MAAP, sweep=sweep)
    _, free = _plan(run_cli, tmp_path / "costly.yaml", "--backend", "maap", "--prices", PRICES)
    one = free["trials"][0]["cost_usd"]
    assert one > 0 and abs(free["totals"]["cost_usd"] - sum(t["cost_usd"] for t in free["trials"])) < 1e-3
    # each trial fits the limit; the three together do not
    res, d = _plan(
        run_cli, tmp_path / "costly.yaml", "--backend", "maap", "--prices", PRICES, "--max-usd", f"{one * 2:.4f}"
    )
    assert res.code == 2 and not d["budget"]["ok"] and all(t["ok"] for t in d["trials"])
    assert "sum over 3 trials" in d["budget"]["problems"][0]
    assert any("fewer trials" in c for c in d["budget"]["changes"])
    table = run_cli(
        "plan", str(tmp_path / "costly.yaml"), "--backend", "maap", "--prices", PRICES, "--max-usd", f"{one * 2:.4f}"
    )
    assert "over budget" in table.out and "sum over trials" in table.out
    ok = run_cli(
        "plan", str(tmp_path / "costly.yaml"), "--backend", "maap", "--prices", PRICES, "--max-usd", f"{one * 4:.4f}"
    )
    assert ok.code == 0 and "within budget" in ok.out

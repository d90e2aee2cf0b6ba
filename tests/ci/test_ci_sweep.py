"""A spec with `sweep:` through the checks and the CI steps, as a user's repository would have one: `azft validate`
holds every trial's values (and, with a backend, every trial's plan) to the rules a single spec meets; `azft ci
review` shows the sweep's trials, totals and their diff against the base revision; `azft ci submit` runs the trials
on the mock backend (the real maas code against the embedded Azure ML emulator) and summarises how each ended."""

from __future__ import annotations

import json
import shutil
import subprocess

import yaml

from tests.ci.conftest import MOCK_SPEC


def _git(repo, *args):
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=a@b.c", "-c", "user.name=a", *args], check=True, capture_output=True
    )


def _sweep_doc(rates: list[float]) -> dict:
    doc = yaml.safe_load(MOCK_SPEC.read_text())
    doc["name"] = "bot-sweep"
    doc["output"] = {"model_name": "bot-sweep"}
    doc["mock"] = {"target": "maas", "seconds_per_state": 0.2}
    doc["sweep"] = {"parameters": {"hyperparameters.learning_rate": rates}, "max_concurrent": 2}
    return doc


def _write(path, doc: dict) -> None:
    path.write_text("# azft-backend: mock\n" + yaml.safe_dump(doc, sort_keys=False))


def test_validate_holds_every_trial_to_the_spec_rules(run_cli, tmp_path):
    shutil.copytree(MOCK_SPEC.parent / "data", tmp_path / "data")
    spec = tmp_path / "sweep.yaml"
    doc = _sweep_doc([1e-5, -1.0, 2e-5])
    doc["sweep"]["parameters"]["lora.r"] = [8, 0]
    _write(spec, doc)
    res = run_cli("validate", str(spec), "--output", "json")
    assert res.code == 2, res.text
    problems = json.loads(res.out)["problems"]
    by_field = {p["field"]: p for p in problems}
    lines = spec.read_text().splitlines()
    # each bad value is reported once, with the trials it makes invalid and the line of its sweep parameter
    lr = by_field["hyperparameters.learning_rate"]
    assert lr["message"].startswith("trials 3, 4:") and "-1.0" in lr["message"]
    assert "hyperparameters.learning_rate" in lines[lr["line"] - 1]
    rank = by_field["lora.r"]
    assert rank["message"].startswith("trials 2, 4, 6:") and "lora.r" in lines[rank["line"] - 1]
    assert len(problems) == 2

    _write(spec, _sweep_doc([1e-5, 2e-5]))
    res = run_cli("validate", str(spec))
    assert res.code == 0 and "a sweep of 2 trials" in res.out, res.text
    # with a backend, every trial is planned: the bundled test model cannot run serverless, on any trial
    doc = _sweep_doc([1e-5, 2e-5])
    doc["model"] = "tiny-phi3"
    _write(spec, doc)
    res = run_cli("validate", str(spec), "--backend", "maas", "--output", "json")
    assert res.code == 2, res.text
    (problem,) = json.loads(res.out)["problems"]
    assert problem["message"].startswith("trials 1, 2: tiny-phi3") and problem["field"] == "model"
    assert "what works instead" in problem["hint"]


def test_ci_review_and_submit_of_a_sweep(run_cli, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    shutil.copytree(MOCK_SPEC.parent / "data", repo / "specs" / "data")
    spec = repo / "specs" / "bot.yaml"
    _write(spec, _sweep_doc([1e-5, 2e-5]))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "sweep")
    _write(spec, _sweep_doc([1e-5, 2e-5, 5e-5]))  # the change under review: one more trial
    _git(repo, "commit", "-qam", "one more rate")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert run_cli("ci", "specs", "--base", "HEAD~1", "--save", "sel.json").code == 0

    res = run_cli("ci", "review", "--specs", "sel.json", "--out", "out", "--output", "json")
    assert res.code == 0, res.text
    (folder,) = (repo / "out").iterdir()
    comment = (folder / "comment.md").read_text()
    assert "✅ can run on `mock`** · sweep `bot-sweep-sweep-" in comment and "3 trials" in comment
    assert "| max concurrent | 2 |" in comment and "pass --prices" in comment
    summary = (folder / "summary.md").read_text()
    assert "all 3 trials can run on mock" in summary and "### Sweep plan" in summary
    assert summary.count("| ✅ can run |") == 3 and "learning_rate=5e-05" in summary
    diff = (folder / "plan.diff").read_text()
    assert "+- trial: 3" in diff and "+    hyperparameters.learning_rate: 5.0e-05" in diff

    res = run_cli("ci", "submit", "--specs", "sel.json", "--out", "sub", "--timeout", "120", "--output", "json")
    assert res.code == 0, res.text
    summary = (next((repo / "sub").iterdir()) / "summary.md").read_text()
    assert "### Sweep trials" in summary and summary.count("✅ Completed") == 3
    assert "3 Completed" in summary

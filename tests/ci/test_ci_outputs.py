"""`--output json` of the CI steps: one JSON document on stdout saying what each step did, the files written as
without it (the step commands run as their own processes, as in CI)."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.conftest import EXAMPLES


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_ci_steps_print_one_json_document(run_cli, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    shutil.copytree(EXAMPLES / "data", repo / "specs" / "data")
    (repo / "specs" / "bot.yaml").write_text(
        "# azft-backend: local\nname: bot\nmodel: tiny-phi3\ndata: {train: data/chat_train.jsonl}\n"
    )
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=a@b.c", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-qm", "spec")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert run_cli("ci", "specs", "--all", "--save", "sel.json").code == 0

    res = run_cli("ci", "review", "--specs", "sel.json", "--out", "out", "--output", "json")
    assert res.code == 0, res.text
    doc = json.loads(res.out)
    assert doc == {
        "exit_code": 0,
        "specs": [{"spec": "specs/bot.yaml", "backend": "local", "exit_code": 0, "skipped": False}],
    }
    assert list((repo / "out").glob("*/plan.json"))  # the files are written either way

    res = run_cli("ci", "plan-diff", "specs/bot.yaml", "--backend", "local", "--base", "HEAD", "--output", "json")
    assert res.code == 0, res.text
    diff = json.loads(res.out)
    assert (
        diff["spec"] == "specs/bot.yaml" and diff["base"] == "HEAD" and isinstance(diff["diff"], str) and diff["note"]
    )

    res = run_cli("ci", "cancel", "--specs", "sel.json", "--out", "out", "--output", "json")
    assert res.code == 0 and json.loads(res.out) == {"exit_code": 0, "cancelled": []}
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("ci", "comment", "--out", str(empty), "--output", "json")
    assert res.code == 0 and json.loads(res.out)["comments"] == []

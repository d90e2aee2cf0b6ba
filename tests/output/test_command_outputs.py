"""Every command answers `--output json`, found by walking the whole click command tree (lazy groups included);
the commands that had none (logs, init, schema, runs flush, the ci steps) print one JSON document. `task: chat`
is a documented alias."""

from __future__ import annotations

import json
import os

import click
import pytest

from tests.conftest import EXAMPLES


def _leaves(cmd: click.Command, path: tuple[str, ...] = ()):
    ctx = click.Context(cmd)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"`azft {' '.join(path + (name,))}` is listed but cannot be loaded"
            yield from _leaves(sub, path + (name,))
    else:
        yield path, cmd


def _output_choices(cmd: click.Command) -> list[str]:
    for p in cmd.params:
        if isinstance(p, click.Option) and "--output" in p.opts:
            return list(getattr(p.type, "choices", []))
    return []


def test_every_command_in_the_tree_has_output_json():
    from azft.cli import cli

    leaves = dict(_leaves(cli))
    assert ("logs",) in leaves and ("ci", "review") in leaves and ("data", "split") in leaves  # the walk is whole
    missing = [" ".join(path) for path, cmd in leaves.items() if "json" not in _output_choices(cmd)]
    assert not missing, "no --output json on: azft " + ", azft ".join(missing)


def test_logs_json_is_the_jobs_lines(run_cli, in_jobs_home):
    res = run_cli("logs", in_jobs_home["completed"], "--output", "json")
    assert res.code == 0, res.text
    doc = json.loads(res.out)
    assert (
        doc["job_name"] == in_jobs_home["completed"] and doc["lines"] and all(isinstance(x, str) for x in doc["lines"])
    )


def test_init_and_schema_json(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = json.loads(run_cli("init", "a.yaml", "--output", "json").out)
    assert doc["wrote"] == "a.yaml" and doc["hyperparameters_from"] == "quickstart" and (tmp_path / "a.yaml").exists()
    again = run_cli("init", "a.yaml", "--output", "json")
    assert again.code == 2 and json.loads(again.out)["hint"] == "pass --force to overwrite it"
    schema = json.loads(run_cli("schema", "--output", "json").out)
    assert schema["title"] == "azft job spec"
    assert json.loads(run_cli("schema", "--out", "s.json", "--output", "json").out) == {"wrote": "s.json"}


def test_runs_flush_and_ci_summary_json(run_cli, tmp_path):
    doc = json.loads(run_cli("runs", "flush", "--output", "json").out)
    assert doc["sent"] == 0 and doc["pending"] == 0 and doc["tracking_uri"]
    res = run_cli("ci", "summary", "examples/x.yaml", "--out", "-", "--output", "json")
    assert res.code == 0, res.text
    summary = json.loads(res.out)
    assert summary["spec"] == "examples/x.yaml" and summary["markdown"].startswith("#") and summary["written"] is None


def test_task_chat_is_a_documented_alias(run_cli, tmp_path):
    from azft.spec import json_schema

    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"name: s\nmodel: tiny-phi3\ntask: chat\ndata: {{train: {EXAMPLES / 'data' / 'chat_train.jsonl'}}}\n"
    )
    res = run_cli("plan", str(spec), "--output", "json")
    assert res.code == 0, res.text
    assert json.loads(res.out)["task"] == "chat-completion"  # read as the full name everywhere after loading
    task = json_schema()["properties"]["task"]
    assert "chat" in task["enum"] and "`chat` = chat-completion" in task["description"]
    reference = (EXAMPLES.parent / "docs" / "spec-reference.md").read_text()
    assert "`chat` = chat-completion" in reference
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(
        {"name": "s", "model": "tiny-phi3", "task": "chat", "data": {"train": "t.jsonl"}}, json_schema()
    )


def test_first_plan_on_a_fresh_cache_prints_only_json(tmp_path):
    """The first local plan builds tiny-phi3; whatever that imports prints nothing on stdout (deepspeed's
    accelerator detection used to), so `-o json` is JSON on a newcomer's first run too."""
    import subprocess
    import sys

    env = {**os.environ, "AZFT_CACHE": str(tmp_path / "cache"), "AZFT_HOME": str(tmp_path / "home")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "azft",
            "plan",
            str(EXAMPLES / "tiny-local.yaml"),
            "--backend",
            "local",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["backend"] == "local"

"""`azft ci specs` (which specs a change touched, and their backends) and `azft ci summary` (the Markdown a CI run
shows), on a real git repository and real `azft plan` output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.ci.conftest import ROOT

SPEC = """\
{comment}name: {name}
model: phi-4-mini-instruct
task: chat-completion
data:
  train: {train}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    r = tmp_path / "repo"
    (r / "specs" / "maas").mkdir(parents=True)
    (r / "data").mkdir()
    (r / "data" / "train.jsonl").write_text('{"messages": []}\n')
    (r / "specs" / "maas" / "bot.yaml").write_text(SPEC.format(comment="", name="bot", train="../../data/train.jsonl"))
    (r / "specs" / "pinned.yaml").write_text(
        SPEC.format(comment="# azft-backend: mock\n", name="pinned", train="azureml://datastores/x/paths/t.jsonl")
    )
    (r / "specs" / "plain.yml").write_text(SPEC.format(comment="", name="plain", train="t.jsonl"))
    (r / "specs" / "prices.yaml").write_text("skus: {Standard_NC24ads_A100_v4: {price_per_hour: 3.67}}\n")
    git(r, "init", "-q", "-b", "main")
    git(r, "add", ".")
    git(r, "commit", "-qm", "specs")
    return r


def _specs(run_ci, repo: Path, *args: str) -> dict:
    res = run_ci("specs", "--repo", str(repo), *args)
    assert res.code == 0, res.out + res.err
    return json.loads(res.out)


def test_all_specs_with_backend_from_comment_path_or_default(run_ci, repo, clean_ci_env):
    got = _specs(run_ci, repo, "--all", "--default-backend", "maap")
    rows = {s["spec"]: (s["backend"], s["backend_source"], s["submit"]) for s in got["specs"]}
    assert rows == {  # the price table is not a spec
        "specs/maas/bot.yaml": ("maas", "path", True),
        "specs/pinned.yaml": ("mock", "comment", True),
        "specs/plain.yml": ("maap", "default", True),
    }
    keys = [s["key"] for s in got["specs"]]
    assert keys == ["specs_maas_bot", "specs_pinned", "specs_plain"]


def test_only_changed_specs_including_through_their_data(run_ci, repo, clean_ci_env):
    base = git(repo, "rev-parse", "HEAD")
    assert _specs(run_ci, repo, "--base", base)["specs"] == []
    (repo / "data" / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    (repo / "specs" / "plain.yml").write_text(
        SPEC.format(comment="# azft-backend: local\n", name="plain", train="t.jsonl")
    )
    git(repo, "commit", "-qam", "change data and a spec")
    got = _specs(run_ci, repo, "--base", base, "--submit-backends", "mock,maas")
    rows = {s["spec"]: (s["backend"], s["submit"], s["changed"]) for s in got["specs"]}
    assert rows == {
        "specs/maas/bot.yaml": ("maas", True, ["data/train.jsonl"]),
        "specs/plain.yml": ("local", False, ["specs/plain.yml"]),  # local specs are planned, never submitted
    }
    # a new branch's first push has no "before" revision: every spec
    assert _specs(run_ci, repo, "--base", "0" * 40)["count"] == 3


def test_github_outputs_are_matrices(run_ci, repo, clean_ci_env, tmp_path):
    out = tmp_path / "github_output"
    clean_ci_env.setenv("GITHUB_OUTPUT", str(out))
    res = run_ci("specs", "--repo", str(repo), "--all", "--submit-backends", "mock", "--format", "github")
    assert res.code == 0, res.err
    values = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert values["count"] == "3" and values["submit_count"] == "1"
    plan = json.loads(values["plan_matrix"])["include"]
    assert [e["spec"] for e in plan] == ["specs/maas/bot.yaml", "specs/pinned.yaml", "specs/plain.yml"]
    assert json.loads(values["submit_matrix"]) == {
        "include": [{"spec": "specs/pinned.yaml", "key": "specs_pinned", "backend": "mock", "submit": True}]
    }


def test_azure_devops_output_variables(run_ci, repo, clean_ci_env):
    res = run_ci("specs", "--repo", str(repo), "--all", "--format", "azure-devops")
    assert res.code == 0, res.err
    lines = dict(line.split("]", 1) for line in res.out.splitlines())
    matrix = json.loads(lines["##vso[task.setvariable variable=planMatrix;isOutput=true"])
    assert matrix["specs_pinned"] == {"spec": "specs/pinned.yaml", "backend": "mock"}
    assert lines["##vso[task.setvariable variable=count;isOutput=true"] == "3"


def test_unknown_base_after_a_force_push_takes_every_spec_with_a_notice(run_ci, repo, clean_ci_env, tmp_path):
    gone = "0123456789abcdef0123456789abcdef01234567"  # a base a force-push rewrote: not in this clone
    out = tmp_path / "gh_output"
    clean_ci_env.setenv("GITHUB_OUTPUT", str(out))
    res = run_ci("specs", "--repo", str(repo), "--base", gone, "--format", "github")
    assert res.code == 0, res.err
    assert res.out.startswith("::notice title=azft::") and gone in res.out and "every spec" in res.out
    values = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert values["count"] == "3" and values["base"] == ""
    res = run_ci("specs", "--repo", str(repo), "--base", gone)
    doc = json.loads(res.out)
    assert res.code == 0 and doc["all"] is True and doc["count"] == 3 and gone in doc["notice"]


def test_bad_inputs_exit_2_with_a_clear_message(run_ci, repo, clean_ci_env):
    res = run_ci("specs", "--repo", str(repo), "--base", "HEAD", "--head", "no-such-branch")
    assert res.code == 2 and "unknown revision 'no-such-branch'" in res.err and "fetch-depth: 0" in res.err
    res = run_ci("specs", "--repo", str(repo), "--all", "--submit-backends", "mock,local")
    assert res.code == 2 and "--submit-backends: unknown backend 'local'" in res.err
    (repo / "specs" / "typo.yaml").write_text("# azft-backend: masa\n" + SPEC.format(comment="", name="t", train="x"))
    res = run_ci("specs", "--repo", str(repo), "--all")
    assert res.code == 2 and "specs/typo.yaml:1: azft-backend: unknown backend 'masa'" in res.err


def test_this_repository_examples_all_get_a_passing_plan(run_ci, run_cli, clean_ci_env):
    """What the workflow picks in this repository: every example spec, with a backend whose plan passes."""
    got = _specs(run_ci, ROOT, "--glob", "examples/*.yaml", "--all")
    found = {s["spec"]: s["backend"] for s in got["specs"]}
    assert "examples/prices.yaml" not in found
    assert found["examples/mock-ci.yaml"] == "mock"
    for spec, backend in found.items():
        res = run_cli("plan", str(ROOT / spec), "--backend", backend, "--output", "json")
        assert res.code == 0, f"{spec} on {backend}: {res.out}"


def test_summary_of_a_refused_plan_and_an_invalid_spec(run_cli, run_ci, tmp_path, clean_ci_env):
    refused = tmp_path / "plan.json"
    res = run_cli("plan", str(ROOT / "examples" / "phi3-mini.yaml"), "--backend", "maas", "--output", "json")
    assert res.code == 2
    refused.write_text(res.out)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name | x\nmodel: phi-4-mini-instruct\ntask: chat-completion\n")
    invalid = tmp_path / "validate.json"
    res = run_cli("validate", str(bad), "--output", "json")
    assert res.code == 2
    invalid.write_text(res.out)
    summary = tmp_path / "summary.md"
    clean_ci_env.setenv("GITHUB_STEP_SUMMARY", str(summary))

    res = run_ci(
        "summary",
        "examples/phi3-mini.yaml",
        "--backend",
        "maas",
        "--plan",
        str(refused),
        "--submit",
        str(tmp_path / "never-ran.json"),
    )
    assert res.code == 0, res.err
    res = run_ci("summary", str(bad), "--validate", str(invalid))
    assert res.code == 0, res.err
    text = summary.read_text()
    assert "**Verdict:** ❌ cannot run on `maas`" in text and "retired by Azure on 2025-08-30" in text
    assert "➡️ instead:" in text and "⏭️ submit | did not run" in text
    assert "**validate failed** — exit 2 (invalid spec, data or usage)" in text
    assert "bad.yaml:1 | name | use 1-40 lowercase letters" in text  # file, line and field of each problem
    assert text.count("\n## azft · ") == 1 and text.startswith("## azft · ")  # appended, not overwritten


def test_summary_never_shows_a_secret(run_ci, tmp_path, clean_ci_env):
    sas = "https://acct.blob.core.windows.net/c/t.jsonl?sv=2024-01-01&sig=abcdefghijklmnop1234567890%3D"
    failed = {
        "name": "bot-1",
        "backend": "maas",
        "status": "Failed",
        "error_code": "UserError",
        "error": f"could not read {sas}",
        "outputs": {},
        "metrics": {},
        "extra": {"client_secret": "hunter2"},
    }
    path = tmp_path / "submit.json"
    path.write_text(json.dumps(failed))
    res = run_ci("summary", "specs/bot.yaml", "--submit", str(path), "--out", "-")
    assert res.code == 0
    assert "abcdefghijklmnop" not in res.out and "hunter2" not in res.out
    assert "❌ submit | Failed · job `bot-1` · UserError" in res.out


def test_markdown_cells_escape_pipes_and_newlines():
    from azft.ci_summary import md_cell

    assert md_cell("a | b\nc") == "a \\| b<br>c"
    assert md_cell(None) == "—" and md_cell(0.000012345678) == "1.23457e-05"

"""azft's GitHub Action used from another repository: a git repository holding only specs and data, a workflow
written as docs/ci.md shows it, and the action's steps run on the mock backend (tests/ci/action_runner.py stands in
for GitHub's runner). azft is installed by the action itself, by version, from a folder holding the wheel built from
this checkout (a package index the runner is pointed at with PIP_FIND_LINKS).

GitHub's REST API cannot run here: a small local server (GitHubStub) answers the three issue-comment endpoints the
comment step calls (list, create, update), checking the token, so the test sees exactly what would be posted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ci.action_runner import TOKEN, ActionRunner, GitHubStub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ACTION_REF = "example-org/azft@v0"
#: The workflow a specs-only repository writes (docs/ci.md, "Use it from your repository").
USER_WORKFLOW = f"""\
name: finetune
on:
  pull_request:
  push:
    branches: [main]
permissions:
  contents: read
  pull-requests: write
  id-token: write
jobs:
  finetune:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
        with:
          fetch-depth: 0
      - uses: {ACTION_REF}
        with:
          specs: "specs/**/*.yaml"
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _spec(name: str, lr: float) -> str:
    doc = yaml.safe_load((EXAMPLES / "mock-ci.yaml").read_text())
    doc.update(name=name, output={"model_name": name})
    doc["data"] = {"train": "../../data/chat_train.jsonl", "validation": "../../data/chat_val.jsonl"}
    doc["hyperparameters"]["learning_rate"] = lr
    doc["mock"] = {"target": "maas", "seconds_per_state": 0.2, "faults": []}
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def user_repo(tmp_path) -> dict:
    """Specs and data, nothing else: no azft source, no requirements file."""
    repo = tmp_path / "bots"
    (repo / "specs" / "mock").mkdir(parents=True)
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copytree(EXAMPLES / "data", repo / "data", ignore=shutil.ignore_patterns("*.py"))
    (repo / "specs" / "mock" / "support-bot.yaml").write_text(_spec("support-bot", 1e-5))
    (repo / "specs" / "mock" / "faq-bot.yaml").write_text(_spec("faq-bot", 1e-5))
    (repo / ".github" / "workflows" / "finetune.yml").write_text(USER_WORKFLOW)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "specs")
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-qb", "tune-lr")
    (repo / "specs" / "mock" / "support-bot.yaml").write_text(_spec("support-bot", 2e-5))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "support-bot: higher learning rate")
    head = _git(repo, "rev-parse", "HEAD")
    assert not (repo / "azft").exists() and not list(repo.glob("*.toml")) and not list(repo.glob("requirements*"))
    return {"repo": repo, "base": base, "head": head}


def _runner(tmp_path: Path, name: str, repo: Path, env: dict, github: dict, stub: GitHubStub) -> ActionRunner:
    temp = tmp_path / name
    temp.mkdir()
    event = temp / "event.json"
    event.write_text(json.dumps(github["event"]))
    env = {**env, "GITHUB_EVENT_PATH": str(event), "GITHUB_API_URL": stub.url}
    return ActionRunner(repo, ROOT, ACTION_REF, temp, env, {**github, "token": TOKEN})


def _pull_request(base_sha: str) -> dict:
    return {
        "event_name": "pull_request",
        "ref": "refs/pull/7/merge",
        "run_id": "42",
        "run_attempt": "1",
        "job": "finetune",
        "event": {
            "number": 7,
            "pull_request": {"number": 7, "base": {"sha": base_sha}},
            "repository": {"default_branch": "main"},
        },
    }


def test_the_action_reviews_pull_requests_and_submits_on_main(tmp_path, user_repo, runner_env):
    repo, stub = user_repo["repo"], GitHubStub()
    workflow = repo / ".github" / "workflows" / "finetune.yml"

    # --- a pull request changing one spec: validate, plan, the plan's diff, one comment -------------------------
    run = _runner(tmp_path, "pr", repo, runner_env, _pull_request(user_repo["base"]), stub)
    outputs = run.run_job(workflow, "finetune")
    failed = [r for r in run.records if r.ran and r.code]
    assert not failed, "\n".join(f"{r.name}: {r.stdout}\n{r.stderr}" for r in failed)
    install = run.record("Install azft")
    assert "installing azft==" in install.stdout and "azft " in install.stdout
    assert outputs["count"] == "1"
    ci = Path(outputs["run-record"]) / "ci"
    review = ci / "specs_mock_support_bot"
    assert json.loads((review / "validate.json").read_text())["ok"] is True
    plan = json.loads((review / "plan.json").read_text())
    assert plan["verdict"]["ok"] is True and plan["backend"] == "mock"
    diff = (review / "plan.diff").read_text()
    assert "-  learning_rate: 1.0e-05" in diff and "+  learning_rate: 2.0e-05" in diff
    assert str(repo) not in diff  # paths are the repository's, not the runner's
    body = (review / "comment.md").read_text()
    (tmp_path / "comment-body.md").write_text(body)
    assert body.startswith("<!-- azft-plan:specs_mock_support_bot -->")
    assert "✅ can run on `mock`" in body and plan["job_name"] in body and "estimate" in body
    assert "```diff" in body and "+  learning_rate: 2.0e-05" in body
    assert [c["body"] for c in stub.comments] == [body]
    assert TOKEN not in json.dumps([r.stdout + r.stderr for r in run.records])
    skipped = {r.name for r in run.records if not r.ran}
    assert {"Azure login (OIDC, no secret)", "Submit and wait"} <= skipped
    assert "✅ can run on `mock`" in run.summary.read_text()

    # --- a force-push: the base is not in the clone, so every spec, with a notice; one comment per spec ----------
    run = _runner(tmp_path, "forced", repo, runner_env, _pull_request("f" * 40), stub)
    outputs = run.run_job(workflow, "finetune")
    find = run.record("Find changed specs")
    assert find.code == 0 and "::notice title=azft::" in find.stdout and "f" * 40 in find.stdout
    assert outputs["count"] == "2"
    assert len(stub.comments) == 2 and ("PATCH", "/repos/acme/bots/issues/comments/100") in stub.calls
    assert sorted(c["body"].splitlines()[0] for c in stub.comments) == [
        "<!-- azft-plan:specs_mock_faq_bot -->",
        "<!-- azft-plan:specs_mock_support_bot -->",
    ]
    assert all("no base revision" in c["body"] for c in stub.comments)

    # --- merged to main: submit with the same action, wait, keep the whole run record ---------------------------
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--ff-only", "tune-lr")
    push = {
        "event_name": "push",
        "ref": "refs/heads/main",
        "run_id": "43",
        "run_attempt": "1",
        "job": "finetune",
        "event": {"before": user_repo["base"], "repository": {"default_branch": "main"}},
    }
    run = _runner(tmp_path, "main", repo, runner_env, push, stub)
    outputs = run.run_job(workflow, "finetune")
    failed = [r for r in run.records if r.ran and r.code]
    assert not failed, "\n".join(f"{r.name}: {r.stdout}\n{r.stderr}" for r in failed)
    assert outputs["submit-count"] == "1"
    assert not run.record("Comment on the pull request").ran and not run.record("Azure login (OIDC, no secret)").ran
    (artifact,) = (run.temp / "artifacts").iterdir()
    assert artifact.name == "azft-run-43-1-finetune"
    submitted = json.loads((artifact / "ci" / "specs_mock_support_bot" / "submit.json").read_text())
    assert submitted["status"] == "Completed" and submitted["name"] == plan["job_name"]
    results = json.loads((artifact / "ci" / "specs_mock_support_bot" / "results.json").read_text())
    assert results["status"] == "FINISHED" and results["metrics"]
    record = artifact / ".azft"
    assert (record / "mlflow.db").is_file()
    run_files = {p.name for p in (record / "mlartifacts").rglob("*") if p.is_file()}
    assert {"spec.json", "plan.json"} <= run_files, run_files
    assert "✅ **Completed**" in (artifact / "ci" / "specs_mock_support_bot" / "summary.md").read_text()
    assert not (repo / ".azft").exists(), "the run record belongs in the runner's temp folder, not the checkout"

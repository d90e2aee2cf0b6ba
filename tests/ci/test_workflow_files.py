"""The CI files users copy: they parse, trigger where the docs say, sign in to Azure with OIDC only, and every
`azft` command and option they call exists (checked against `azft <command> --help`)."""

from __future__ import annotations

import re

import click
import pytest

from tests.ci.conftest import (
    PIPELINE,
    WORKFLOW,
    azft_commands,
    github_on,
    github_run_steps,
    load_yaml,
    pipeline_scripts,
)

SPEC_PATHS = ("specs/**", "examples/*.yaml")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load_yaml(WORKFLOW)


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return load_yaml(PIPELINE)


def test_workflow_triggers_on_spec_changes_for_prs_and_main(workflow):
    on = github_on(workflow)
    assert set(on) >= {"pull_request", "push"}
    assert on["push"]["branches"] == ["main"]
    for event in ("pull_request", "push"):
        for path in SPEC_PATHS:
            assert path in on[event]["paths"], f"{event} does not trigger on {path}"


def test_workflow_permissions_are_least_privilege(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    for job_id, job in workflow["jobs"].items():
        uses_login = any(str(s.get("uses", "")).startswith("azure/login@") for s in job.get("steps", []))
        if uses_login:
            assert job["permissions"] == {"id-token": "write", "contents": "read"}, job_id
        else:
            assert "id-token" not in (job.get("permissions") or {}), f"{job_id} does not need an OIDC token"


def test_azure_login_uses_oidc_variables_and_no_secrets(workflow):
    text = WORKFLOW.read_text()
    assert "secrets." not in text, "OIDC needs no secret: credentials come from repository variables"
    assert not re.search(r"(?i)client[-_]secret|AZURE_CREDENTIALS|creds:", text)
    logins = [s for j in workflow["jobs"].values() for s in j.get("steps", [])
              if str(s.get("uses", "")).startswith("azure/login@")]
    assert len(logins) == 1
    login = logins[0]
    assert login["uses"] == "azure/login@v2"
    assert login["with"] == {
        "client-id": "${{ vars.AZURE_CLIENT_ID }}",
        "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
        "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
    }


def test_submit_runs_on_main_only_one_at_a_time_per_spec(workflow):
    jobs = workflow["jobs"]
    submit = jobs["submit"]
    assert "refs/heads/main" in submit["if"] and "pull_request" in submit["if"]
    assert set(submit["needs"]) == {"specs", "plan"}
    assert "matrix.key" in submit["concurrency"]["group"]
    assert submit["concurrency"]["cancel-in-progress"] is False  # a queued submit must not kill a running one
    assert "matrix.key" in jobs["plan"]["concurrency"]["group"]
    assert "github.ref" in jobs["plan"]["concurrency"]["group"]
    # the whole flow: validate and plan on every change, submit --wait and results on main
    plan_cmds = [c for _, s in github_run_steps(workflow) for c in azft_commands(s["run"])]
    names = [c[0] for c in plan_cmds]
    for needed in ("validate", "plan", "submit", "results", "cancel", "ci"):
        assert needed in names, needed
    submit_cmd = next(c for c in plan_cmds if c[0] == "submit")
    for opt in ("--wait", "--timeout", "--cancel-on-interrupt", "--output"):
        assert opt in submit_cmd
    assert submit_cmd[submit_cmd.index("--output") + 1] == "json"


def test_workflow_checks_out_history_for_the_diff(workflow):
    checkout = workflow["jobs"]["specs"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0


def test_run_steps_take_values_from_env_not_inline_expressions(workflow):
    """`${{ }}` inside a script is a script-injection risk (and keeps the steps runnable outside GitHub)."""
    for job_id, step in github_run_steps(workflow):
        assert "${{" not in step["run"], f"{job_id}: {step.get('name')}"


def test_azure_devops_pipeline_uses_a_federated_service_connection(pipeline):
    text = PIPELINE.read_text()
    assert not re.search(r"(?i)client[-_]?secret|\$\(\w*(secret|password|key)\w*\)", text)
    assert [s["stage"] for s in pipeline["stages"]] == ["Find", "Plan", "Submit"]
    assert pipeline["trigger"]["branches"]["include"] == ["main"]
    submit = pipeline["stages"][2]
    assert "refs/heads/main" in submit["condition"] and "PullRequest" in submit["condition"]
    tasks = [s for j in submit["jobs"] for s in j["steps"] if "task" in s]
    azure = [t for t in tasks if t["task"] == "AzureCLI@2"]
    assert azure and all(t["inputs"]["azureSubscription"] == "${{ parameters.serviceConnection }}" for t in azure)
    checkout = pipeline["stages"][0]["jobs"][0]["steps"][0]
    assert checkout == {"checkout": "self", "fetchDepth": 0}


def _all_commands(doc_name: str) -> list[tuple[str, list[str]]]:
    if doc_name == "github":
        doc = load_yaml(WORKFLOW)
        return [(f"{j}: {s.get('name')}", c) for j, s in github_run_steps(doc) for c in azft_commands(s["run"])]
    doc = load_yaml(PIPELINE)
    return [(name, c) for name, script in pipeline_scripts(doc) for c in azft_commands(script)]


def _command_path(args: list[str]) -> tuple[list[str], list[str]]:
    """Split `azft` arguments into the sub-command path and the options used."""
    from azft.cli import cli

    path: list[str] = []
    cmd: click.Command = cli
    for word in args:
        if word.startswith("-") or not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(click.Context(cmd), word)
        if sub is None:
            break
        path.append(word)
        cmd = sub
    options = [w.split("=", 1)[0] for w in args if re.match(r"^--?[A-Za-z]", w)]
    return path, options


@pytest.mark.parametrize("doc_name", ["github", "azure-devops"])
def test_every_azft_command_and_option_exists(doc_name, run_cli):
    commands = _all_commands(doc_name)
    assert commands, "no azft commands found"
    checked: dict[tuple[str, ...], str] = {}
    for where, args in commands:
        path, options = _command_path(args)
        assert path, (
            f"{where}: `azft {' '.join(args)}`: {args[0]!r} is not an azft command"
            + (" — wire it: add \"ci\": (\"azft.ci_summary:ci\", ...) to the lazy groups in azft/cli.py"
               if args[0] == "ci" else "")
        )
        key = tuple(path)
        if key not in checked:
            res = run_cli(*path, "--help")
            assert res.code == 0, f"azft {' '.join(path)} --help: exit {res.code}: {res.text}"
            checked[key] = res.out
        for opt in options:
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", checked[key]), (
                f"{where}: `azft {' '.join(path)}` has no option {opt}")

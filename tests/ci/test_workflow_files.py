"""The CI files users copy: they parse, trigger where the docs say, sign in to Azure with OIDC only, and every
`azft` command and option they call exists (checked against `azft <command> --help`)."""

from __future__ import annotations

import re

import click
import pytest

from tests.ci.conftest import (
    ACTION,
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
def action() -> dict:
    return load_yaml(ACTION)


def _action_run_steps(action: dict) -> list[tuple[str, dict]]:
    return [("action", s) for s in action["runs"]["steps"] if "run" in s]


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
    jobs = workflow["jobs"]
    # reviews comment on the pull request and never get an OIDC token; only the submitting job does
    assert jobs["review"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["submit"]["permissions"] == {"contents": "read", "id-token": "write"}


def test_azure_login_uses_oidc_variables_and_no_secrets(workflow, action):
    for path in (WORKFLOW, ACTION):
        text = path.read_text()
        assert "secrets." not in text, f"{path.name}: OIDC needs no secret"
        assert not re.search(r"(?i)client[-_]secret|AZURE_CREDENTIALS|creds:", text), path.name
    logins = [s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("azure/login@")]
    assert len(logins) == 1
    login = logins[0]
    assert login["uses"] == "azure/login@v3"
    assert login["with"] == {
        "client-id": "${{ inputs.azure-client-id }}",
        "tenant-id": "${{ inputs.azure-tenant-id }}",
        "subscription-id": "${{ inputs.azure-subscription-id }}",
    }
    # only runs that submit to Azure sign in (mock needs no Azure)
    assert "steps.specs.outputs.submit == 'true'" in login["if"] and "azure_count" in login["if"]
    submit = workflow["jobs"]["submit"]["steps"][-1]["with"]
    assert submit["azure-client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
    assert submit["azure-tenant-id"] == "${{ vars.AZURE_TENANT_ID }}"
    assert submit["azure-subscription-id"] == "${{ vars.AZURE_SUBSCRIPTION_ID }}"


def test_submit_runs_on_main_only_one_at_a_time(workflow, action):
    jobs = workflow["jobs"]
    submit = jobs["submit"]
    assert "refs/heads/main" in submit["if"] and "pull_request" in submit["if"]
    assert submit["concurrency"]["cancel-in-progress"] is False  # a queued submit must not kill a running one
    assert jobs["review"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["review"]["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in jobs["review"]["concurrency"]["group"]
    # both jobs use the action from the working tree, building azft from it
    for job in ("review", "submit"):
        step = jobs[job]["steps"][-1]
        assert step["uses"] == "./" and step["with"]["azft-version"] == "source"
    assert jobs["review"]["steps"][-1]["with"]["submit"] == "false"
    assert jobs["submit"]["steps"][-1]["with"]["submit"] == "true"
    # the whole flow: changed specs, validate and plan (review), comment, submit --wait and results
    names = [c[:2] for _, s in _action_run_steps(action) for c in azft_commands(s["run"])]
    for needed in (["ci", "specs"], ["ci", "review"], ["ci", "comment"], ["ci", "submit"]):
        assert needed in names, needed
    submit_step = next(s for s in action["runs"]["steps"] if s.get("name") == "Submit and wait")
    assert "exec azft ci submit" in submit_step["run"]  # the runner's interrupt reaches azft, which cancels
    from azft.ci_flow import submit_spec
    import inspect

    source = inspect.getsource(submit_spec)
    for opt in ("--wait", "--timeout", "--cancel-on-interrupt", "--output"):
        assert opt in source


def test_workflow_checks_out_history_for_the_diff(workflow):
    for job in ("review", "submit"):
        checkout = workflow["jobs"][job]["steps"][0]
        assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0


def test_action_installs_azft_by_version_and_keeps_the_whole_run_record(action):
    steps = {s.get("name") or s["uses"]: s for s in action["runs"]["steps"]}
    install = steps["Install azft"]["run"]
    assert "pip install ." not in install and 'req="azft==$want"' in install
    assert not any(str(s.get("with", {}).get("cache", "")) for s in action["runs"]["steps"]), (
        "setup-python's cache needs a requirements file a specs-only repository does not have"
    )
    cache = steps["Cache pip downloads and tokenizers"]["with"]["path"]
    assert "~/.cache/pip" in cache and "~/.cache/huggingface" in cache
    upload = steps["Keep the run record"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["include-hidden-files"] is True  # .azft is a hidden folder
    assert upload["with"]["path"] == "${{ steps.specs.outputs.home }}"


def test_run_steps_take_values_from_env_not_inline_expressions(workflow, action):
    """`${{ }}` inside a script is a script-injection risk (and keeps the steps runnable outside GitHub)."""
    for job_id, step in github_run_steps(workflow) + _action_run_steps(action):
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
        doc = load_yaml(ACTION)
        return [(f"action: {s.get('name')}", c) for _, s in _action_run_steps(doc) for c in azft_commands(s["run"])]
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
        if args and args[0].startswith("-"):  # an option of `azft` itself, e.g. --version
            res = run_cli(args[0])
            assert res.code == 0, f"{where}: `azft {args[0]}`: exit {res.code}: {res.text}"
            continue
        path, options = _command_path(args)
        assert path, f"{where}: `azft {' '.join(args)}`: {args[0]!r} is not an azft command" + (
            ' — wire it: add "ci": ("azft.ci_summary:ci", ...) to the lazy groups in azft/cli.py'
            if args[0] == "ci"
            else ""
        )
        key = tuple(path)
        if key not in checked:
            res = run_cli(*path, "--help")
            assert res.code == 0, f"azft {' '.join(path)} --help: exit {res.code}: {res.text}"
            checked[key] = res.out
        for opt in options:
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", checked[key]), (
                f"{where}: `azft {' '.join(path)}` has no option {opt}"
            )


def test_azure_devops_installs_by_version_and_keeps_the_run_record(pipeline):
    scripts = [script for _, script in pipeline_scripts(pipeline)]
    assert not any("pip install ." in s for s in scripts), "that would install the repository the pipeline runs in"
    installs = [s for s in scripts if "pip install" in s]
    assert installs and all('"azft==$(azftVersion)"' in s for s in installs)
    assert re.fullmatch(r"\d+\.\d+\.\d+", pipeline["variables"]["azftVersion"])
    assert pipeline["variables"]["AZFT_HOME"] == "$(Agent.TempDirectory)/azft"
    for stage in ("Plan", "Submit"):
        steps = next(s for s in pipeline["stages"] if s["stage"] == stage)["jobs"][0]["steps"]
        published = [s for s in steps if "publish" in s]
        assert [p["publish"] for p in published] == ["$(AZFT_HOME)"], stage  # .azft store, artifacts, every step
        assert all(p["condition"] == "always()" for p in published)
    text = PIPELINE.read_text()
    assert "does not post a pull-request thread" in text  # the summary only, said plainly

"""One workspace resolution for every command, exercised the way a user runs azft: a spec with an ``azure:`` section,
a fresh ``AZFT_HOME``, and each command in a new process.

The order is the spec's ``azure:`` section, then ``AZURE_*`` variables, then ``config.json``, value by value. Two cases
end with the job in the spec's workspace and every later command finding it there: no ``AZURE_*`` variables at all,
and ``AZURE_*`` variables that name another workspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAT = [
    {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{i + i}."}]}
    for i in range(10)
]
SPEC_WS = {
    "subscription_id": "5a5a5a5a-0000-4000-8000-00000000000a",
    "resource_group": "rg-spec",
    "workspace": "ws-spec",
    "region": "eastus2",
}
ELSEWHERE = {
    "AZURE_SUBSCRIPTION_ID": "e1e1e1e1-0000-4000-8000-00000000000e",
    "AZURE_RESOURCE_GROUP": "rg-elsewhere",
    "AZUREML_WORKSPACE_NAME": "ws-elsewhere",
}


def _azft() -> list[str]:
    script = Path(sys.executable).parent / "azft"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "azft.cli"]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZUREML_", "AZFT_", "MLFLOW_"))}
    env.update(AZFT_HOME=str(home), AZFT_CONFIG_DIR=str(home / "config"), CI="true", **extra)
    return env


def _write_spec(directory: Path, *, mock: dict | None = None, name: str = "ws-demo") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CHAT))
    lines = [
        f"name: {name}",
        "model: phi-4-mini-instruct",
        "task: chat-completion",
        "data: {train: train.jsonl}",
        "azure:",
        *[f"  {k}: {v}" for k, v in SPEC_WS.items()],
    ]
    if mock:
        lines.append(f"mock: {json.dumps(mock)}")
    path = directory / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_azft(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


def _ws_path(ws: dict) -> str:
    return (
        f"/subscriptions/{ws['subscription_id']}/resourceGroups/{ws['resource_group']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ws['workspace']}"
    )


def test_plan_shows_the_workspace_a_submit_uses_and_where_each_value_came_from(tmp_path):
    spec = tmp_path / "proj" / "spec.yaml"
    _write_spec(spec.parent)
    text = spec.read_text().replace("  resource_group: rg-spec\n", "").replace("  region: eastus2\n", "")
    spec.write_text(text)
    (spec.parent / "config.json").write_text(
        json.dumps(
            {
                "subscription_id": "cfg-sub",
                "resource_group": "rg-config",
                "workspace_name": "ws-config",
                "location": "westus",
            }
        )
    )
    env = _clean_env(tmp_path / "home", AZURE_LOCATION="eastus")
    res = _run(env, spec.parent, "plan", "spec.yaml", "--backend", "maas", "--output", "json")
    assert res.returncode == 0, res.stderr
    where = json.loads(res.stdout)["workspace"]
    assert (where["workspace"], where["resource_group"], where["region"]) == ("ws-spec", "rg-config", "eastus")
    assert where["sources"]["workspace"] == "the spec's azure: section"
    assert where["sources"]["resource_group"] == str(spec.parent / "config.json")
    assert where["sources"]["region"] == "environment variable AZURE_LOCATION"
    table = _run(env, spec.parent, "plan", "spec.yaml", "--backend", "maas")
    assert "ws-spec" in table.stdout and "AZURE_LOCATION" in table.stdout


def test_spec_only_workspace_every_command_from_a_new_process(tmp_path):
    """No AZURE_* variables, fresh AZFT_HOME: submit, status, logs, cancel and wait all use the spec's workspace."""
    # 20 s per state: the job is still running when `cancel` (the fourth new process) reaches it, and the
    # CancelRequested state the last `wait` sits through stays short
    spec = _write_spec(tmp_path / "proj", mock={"target": "maas", "seconds_per_state": 20})
    env = _clean_env(tmp_path / "home")
    sub = _run(env, spec.parent, "submit", "spec.yaml", "--backend", "mock", "--output", "json")
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)["job_name"]
    status = _run(env, tmp_path, "status", job, "--output", "json")
    assert status.returncode == 0, status.stderr
    assert _ws_path(SPEC_WS) in json.loads(status.stdout)["studio_url"]
    logs = _run(env, tmp_path, "logs", job)
    assert logs.returncode == 0, logs.stderr
    cancel = _run(env, tmp_path, "cancel", job, "--output", "json")
    assert cancel.returncode == 0, cancel.stderr
    wait = _run(env, tmp_path, "wait", job, "--timeout", "60", "--output", "json")
    assert wait.returncode == 3 and json.loads(wait.stdout)["status"] == "Canceled", wait.stdout + wait.stderr
    requests = json.loads(Path(json.loads(status.stdout)["extra"]["requests_file"]).read_text())
    assert requests and all(r["path"].startswith(_ws_path(SPEC_WS)) for r in requests if "/workspaces/" in r["path"])


def test_variables_naming_another_workspace_do_not_win_over_the_spec(tmp_path):
    spec = _write_spec(tmp_path / "proj", mock={"target": "maas", "seconds_per_state": 0.2})
    env = _clean_env(tmp_path / "home", **ELSEWHERE)
    sub = _run(env, spec.parent, "submit", "spec.yaml", "--backend", "mock", "--output", "json")
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)["job_name"]
    status = _run(env, tmp_path, "status", job, "--output", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "Completed"
    assert "ws-spec" in json.loads(status.stdout)["studio_url"]
    listed = _run(env, spec.parent, "list", "--backend", "mock", "--spec", "spec.yaml", "--output", "json")
    assert job in [j["name"] for j in json.loads(listed.stdout)]


@pytest.fixture
def standalone_emulator(tmp_path):
    """`python -m azft.emulator` serving the spec's workspace, the way a user points azft at it."""
    args = [
        sys.executable,
        "-m",
        "azft.emulator",
        "--json",
        "--ca-dir",
        str(tmp_path / "ca"),
        "--seconds-per-state",
        "0.2",
        "--subscription-id",
        SPEC_WS["subscription_id"],
        "--resource-group",
        SPEC_WS["resource_group"],
        "--workspace",
        SPEC_WS["workspace"],
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=_clean_env(tmp_path / "emu-home"))
    try:
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_maas_submit_goes_to_the_spec_workspace_when_variables_name_another(tmp_path, standalone_emulator):
    """The emulator answers only the spec's workspace (another one is a 404, as in Azure)."""
    spec = _write_spec(tmp_path / "proj")
    point = {k: v for k, v in standalone_emulator["env"].items() if k.startswith("AZFT_")}
    env = _clean_env(tmp_path / "home", **point, **ELSEWHERE)
    sub = _run(env, spec.parent, "submit", "spec.yaml", "--backend", "maas", "--output", "json")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job = json.loads(sub.stdout)["job_name"]
    wait = _run(env, tmp_path, "wait", job, "--poll", "0.2", "--timeout", "60", "--output", "json")
    assert wait.returncode == 0, wait.stdout + wait.stderr
    assert json.loads(wait.stdout)["status"] == "Completed"
    logs = _run(env, tmp_path, "logs", job)
    assert logs.returncode == 0, logs.stderr

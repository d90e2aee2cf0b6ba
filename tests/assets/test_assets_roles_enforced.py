"""The CI identity's role assignments, as infra/main.bicep makes them, enforced by the emulator while the CI
workflow's submit step runs the examples the docs tell CI to run; and every request azft sends there is an action the
role table (azft/azure/roles.py) names.

The emulator answers a request outside the roles the way ARM does (403 AuthorizationFailed): no Azure subscription
can run here, so the roles' action lists (a sourced table) stand in for Azure's role evaluation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from asset_runner import REPO

from azft.azure import roles as R

EXAMPLES = REPO / "examples"
#: What infra/main.bicep gives the CI identity with its default parameters (test_assets_roles.py checks the Bicep).
CI_ROLES = ["AzureML Data Scientist", "Storage Blob Data Contributor"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZUREML_", "MLFLOW_"))}
    env.update(AZFT_HOME=str(home), CI="true", HF_HUB_OFFLINE="1")
    return env


def _ci_spec(tmp: Path, example: str, target: str, **compute) -> Path:
    """The example as CI would submit it, on the mock backend with the CI identity's roles enforced."""
    shutil.copytree(EXAMPLES / "data", tmp / "data", dirs_exist_ok=True)
    spec = yaml.safe_load((EXAMPLES / example).read_text(encoding="utf-8"))
    spec["mock"] = {"target": target, "seconds_per_state": 0, "roles": CI_ROLES}
    if compute:
        spec["compute"] = {**spec.get("compute", {}), **compute}
    out = tmp / example
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def _submit(spec: Path, home: Path) -> subprocess.CompletedProcess:
    # the workflow's "Submit and wait" step, on the mock backend
    cmd = [
        sys.executable,
        "-m",
        "azft.cli",
        "submit",
        str(spec),
        "--backend",
        "mock",
        "--wait",
        "--timeout",
        "300",
        "--output",
        "json",
    ]
    return subprocess.run(cmd, cwd=spec.parent, env=_env(home), capture_output=True, text=True, timeout=600)


def _performed(home: Path) -> list[tuple[str, str, str | None]]:
    out = []
    for f in home.rglob("requests.json"):
        for r in json.loads(f.read_text()):
            out.append((r["method"], r["path"], R.action_for_request(r["method"], r["path"], r.get("query"))))
    return out


@pytest.mark.parametrize("example,target", [("phi4-mini-maas.yaml", "maas"), ("phi3-mini.yaml", "maap")])
def test_the_ci_submit_step_runs_with_the_ci_identitys_roles(tmp_path, example, target):
    home = tmp_path / "home"
    spec = _ci_spec(tmp_path, example, target)
    res = _submit(spec, home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["status"] == "Completed"
    performed = _performed(home)
    assert performed, "no request was recorded"
    named = {a.lower() for x in R.AZFT_ACTIONS for a in x.actions}
    actions = sorted({a for _, _, a in performed if a is not None})
    missing = [a for a in actions if a.lower() not in named]
    assert not missing, f"azft performs actions the role table (azft/azure/roles.py) does not name: {missing}"
    assert all(R.allowed(a, CI_ROLES) for a in actions), [a for a in actions if not R.allowed(a, CI_ROLES)]


def test_creating_a_cluster_needs_compute_operator_and_says_so(tmp_path):
    home = tmp_path / "home"
    spec = _ci_spec(tmp_path, "phi3-mini.yaml", "maap", cluster="new-gpu", create_cluster=True)
    res = _submit(spec, home)
    assert res.returncode == 4, res.stdout + res.stderr
    text = res.stdout + res.stderr
    assert "AuthorizationFailed" in text and "computes/write" in text
    assert json.loads(res.stdout)["hint"].startswith(
        "Microsoft.MachineLearningServices/workspaces/computes/write needs the built-in role 'AzureML Compute Operator'"
    )
    assert "Traceback" not in text
    # and with the role the Bicep grants under ciMayCreateClusters=true, the same submit goes through
    data = yaml.safe_load(spec.read_text())
    data["mock"]["roles"] = [*CI_ROLES, "AzureML Compute Operator"]
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    res = _submit(spec, tmp_path / "home2")
    assert res.returncode == 0, res.stdout + res.stderr

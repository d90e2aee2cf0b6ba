"""infra/: every Bicep file parses (pycep-parser), and checkov finds no failed check; every waiver has a reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from asset_runner import REPO

INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def _cfg(resource: dict) -> dict:
    """A resource's body; a `[for ...]` resource keeps it one level down."""
    cfg = resource["config"]
    return cfg["config"] if "loop_type" in cfg else cfg


def _parse(path: Path) -> dict:
    from pycep import BicepParser

    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_parses(path):
    parsed = _parse(path)
    assert parsed["resources"], f"{path} declares no resources"


@pytest.fixture(scope="module")
def main_bicep() -> dict:
    return _parse(INFRA / "main.bicep")


def test_main_deploys_what_the_issue_lists(main_bicep):
    types = {r["type"] for r in main_bicep["resources"].values()}
    assert {
        "Microsoft.MachineLearningServices/workspaces",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
        "Microsoft.ContainerRegistry/registries",
        "Microsoft.Insights/components",
        "Microsoft.MachineLearningServices/workspaces/computes",
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        "Microsoft.Authorization/roleAssignments",
    } <= types
    res = main_bicep["resources"]
    assert res["hub"]["config"]["kind"] == "Hub"
    cluster = _cfg(res["cluster"])["properties"]["properties"]
    assert cluster["scaleSettings"]["minNodeCount"] == 0  # nothing billed for the cluster while idle
    assert "LowPriority" in str(cluster["vmPriority"])
    fed = res["githubFederation"]["config"]["properties"]
    assert fed["issuer"] == "https://token.actions.githubusercontent.com"
    assert fed["audiences"] == ["api://AzureADTokenExchange"]


def test_role_assignments_are_least_privilege(main_bicep):
    roles = main_bicep["variables"]["roles"]["value"]
    # Owner, Contributor and User Access Administrator never appear
    forbidden = {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    }
    assert not forbidden & set(roles.values())
    assigned = [r for r in main_bicep["resources"].values() if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert len(assigned) >= 5 and all(_cfg(r).get("scope") for r in assigned)  # scoped to one resource each


def test_parameters_file_matches_the_template(main_bicep):
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = main_bicep["parameters"]
    assert set(params) <= set(declared), set(params) - set(declared)
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(params), f"parameters without a default missing from the file: {required - set(params)}"


def test_readme_has_the_deployment_command_and_idle_cost():
    text = (INFRA / "README.md").read_text(encoding="utf-8")
    assert "az deployment group create -g <resource-group> -f infra/main.bicep -p infra/main.parameters.json" in text
    assert "0 nodes" in text and "nothing" in text.lower()


def _checkov() -> str:
    explicit = os.environ.get("AZFT_CHECKOV")
    if explicit:
        return explicit
    local = REPO / ".venv-checkov" / "bin" / "checkov"
    if not local.exists():
        # checkov lives in its own venv (it pins older packaging/networkx/pycep-parser than the project uses)
        subprocess.run(["bash", str(INFRA / "tools" / "install-checkov.sh")], check=True, timeout=900)
    return str(local)


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    exe = _checkov()
    proc = subprocess.run(
        [exe, "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    return next(r for r in reports if r.get("check_type") == "bicep")


def test_checkov_finds_no_failed_check(checkov_report):
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 10 and summary["passed"] > 0  # it really scanned the template
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in checkov_report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)


def test_every_waived_check_has_a_reason(checkov_report):
    for check in checkov_report["results"].get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.split()) >= 3, f"{check['check_id']} on {check['resource']} is waived without a reason"
    text = "\n".join(p.read_text(encoding="utf-8") for p in BICEP_FILES)
    for m in re.finditer(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)", text):
        assert m.group(2) == ":" and m.group(3).strip(), f"{m.group(1)} waived without a reason"

"""The role table (azft/azure/roles.py, docs/roles.md) and infra/main.bicep agree: every identity gets exactly the
built-in roles its azft actions need, nothing broader; and the table holds the facts it cites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from asset_runner import REPO

from azft.azure import roles as R

ML = R.ML
WS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"


def _walk(node, found: set[str]) -> None:
    """Every `roles.<name>` the Bicep expression tree references."""
    if isinstance(node, dict):
        acc = node.get("operator", {}) if isinstance(node.get("operator"), dict) else {}
        if acc.get("type") == "property_accessor" and acc["operands"].get("operand_1") == "roles":
            found.add(acc["operands"]["operand_2"])
        for v in node.values():
            _walk(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk(v, found)


@pytest.fixture(scope="module")
def assignments() -> dict[str, set[str]]:
    """principal symbol -> role names (conditional ones suffixed with ' (if ciMayCreateClusters)')."""
    from pycep import BicepParser

    parsed = BicepParser().parse(text=(REPO / "infra" / "main.bicep").read_text(encoding="utf-8"))
    role_ids = parsed["variables"]["roles"]["value"]
    out: dict[str, set[str]] = {}
    for res in parsed["resources"].values():
        if res["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        cfg = res["config"]
        refs: set[str] = set()
        if "loop_type" in cfg:
            array = cfg["loop_type"]["detail"]["array_name"]
            if isinstance(array, str) and array in parsed["variables"]:
                _walk(parsed["variables"][array]["value"], refs)
            else:
                _walk(array, refs)
            cfg = cfg["config"]
        else:
            _walk(cfg["properties"], refs)
        principal = json.dumps(cfg["properties"]["principalId"])
        who = next(p for p in ("ciIdentity", "computeIdentity", "hub") if f'"{p}"' in principal)
        for ref in refs:
            out.setdefault(who, set()).add(R.ROLE_BY_ID[role_ids[ref]].name)
    return out


def _needed(*names: str) -> list[str]:
    acts = [a for x in R.AZFT_ACTIONS if x.name in names for a in x.actions]
    return R.least_roles(acts)


CI_ACTIONS = (
    "resolve the workspace",
    "upload training data",
    "submit a serverless (maas) fine-tune",
    "submit a cluster (maap) pipeline",
    "follow a job",
    "cancel a job",
    "deploy and delete an endpoint",
    "read MLflow tracking",
)


def test_docs_roles_md_is_generated_from_the_table():
    current = (REPO / "docs" / "roles.md").read_text(encoding="utf-8")
    assert current == R.render_markdown(), "docs/roles.md is stale: python -m azft.azure.roles > docs/roles.md"


def test_the_ci_identity_gets_exactly_what_ci_needs(assignments):
    need = set(_needed(*CI_ACTIONS))
    assert need == {"AzureML Data Scientist", "Storage Blob Data Contributor"}
    # Compute Operator comes only through the ciMayCreateClusters parameter (a conditional element of the role list)
    assert assignments["ciIdentity"] == need | {"AzureML Compute Operator"}
    text = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert "ciMayCreateClusters ? [\n  roles.azureMLComputeOperator\n] : []" in text


def test_the_compute_identity_gets_what_jobs_need(assignments):
    need = set(_needed("register the model", "run a job on the cluster"))
    assert (
        assignments["computeIdentity"] == need == {"AzureML Data Scientist", "Storage Blob Data Contributor", "AcrPull"}
    )


def test_the_hub_identity_reads_its_storage_and_the_project_identity_gets_nothing(assignments):
    assert assignments["hub"] == {"Storage Blob Data Contributor"}
    assert "project" not in assignments


@pytest.mark.parametrize(
    "method,path,action",
    [
        ("GET", WS, f"{ML}/workspaces/read"),
        ("PUT", WS + "/jobs/a-b_1", f"{ML}/workspaces/jobs/write"),
        ("GET", WS + "/jobs", f"{ML}/workspaces/jobs/read"),
        ("POST", WS + "/jobs/x/cancel", f"{ML}/workspaces/jobs/cancel/action"),
        ("PUT", WS + "/computes/gpu", f"{ML}/workspaces/computes/write"),
        (
            "POST",
            WS + "/codes/c/versions/1/startPendingUpload",
            f"{ML}/workspaces/codes/versions/startPendingUpload/action",
        ),
        ("DELETE", WS + "/serverlessEndpoints/e", f"{ML}/workspaces/serverlessEndpoints/delete"),
        ("PUT", "/_blob/acct/azureml/LocalUpload/x.jsonl", f"{R.BLOBS}/write"),
        ("GET", "/history/v1.0" + WS + "/runs/x", f"{ML}/workspaces/experiments/runs/read"),
        (
            "GET",
            "/subscriptions/s/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationsStatus/1",
            None,
        ),
        ("POST", "/metric/v2.0" + WS + "/runs/x/full", f"{ML}/workspaces/experiments/runs/read"),
        ("GET", "/discovery", None),
    ],
)
def test_actions_are_derived_from_the_rest_path(method, path, action):
    assert R.action_for_request(method, path) == action


def test_a_sas_signed_blob_request_needs_no_role():
    assert R.action_for_request("PUT", "/_blob/a/c/x", {"sig": "..."}) is None


def test_azure_wildcards_follow_the_role_definitions():
    ds = ["AzureML Data Scientist"]
    assert R.allowed(f"{ML}/workspaces/read", ds)  # workspaces/*/read covers the workspace itself
    assert not R.allowed(f"{ML}/workspaces/write", ds)  # ... which is why Azure lists it in NotActions
    assert not R.allowed(f"{ML}/workspaces/computes/write", ds)
    assert R.allowed(f"{ML}/workspaces/computes/read", ds)
    assert R.allowed(f"{ML}/workspaces/computes/write", ["AzureML Compute Operator"])
    assert not R.allowed(f"{R.BLOBS}/write", ds)
    assert R.allowed(f"{R.BLOBS}/write", ["Storage Blob Data Contributor"])
    assert not R.allowed(f"{ML}/workspaces/listKeys/action", ds)


def test_every_azft_action_is_allowed_by_its_roles():
    for a in R.AZFT_ACTIONS:
        for act in a.actions:
            assert R.allowed(act, a.roles), (a.name, act)
        if a.actions:
            assert set(R.least_roles(a.actions)) <= set(a.roles), a.name


def test_the_module_imports_nothing_heavy():
    code = (
        "import sys, azft.azure.roles; "
        "print(' '.join(m for m in ('azure.ai.ml','mlflow','torch','azure.core') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(REPO), check=True)
    assert out.stdout.strip() == ""

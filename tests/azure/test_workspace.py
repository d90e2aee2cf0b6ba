"""Workspace resolution order, its error messages, MLClient construction and Azure error mapping."""

from __future__ import annotations

import json

import pytest

from azft.azure.errors import map_error as map_azure_error
from azft.azure.workspace import (
    make_ml_client,
    redact,
    resolve_workspace,
)
from azft.errors import EXIT_AZURE, AzureError, UsageError

SUB = "11111111-1111-4111-8111-111111111111"
ENV = {"AZURE_SUBSCRIPTION_ID": "env-sub", "AZURE_RESOURCE_GROUP": "env-rg", "AZUREML_WORKSPACE_NAME": "env-ws"}


def write_config(directory, **data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data))
    return directory / "config.json"


def test_explicit_values_win_over_environment_and_config(tmp_path):
    write_config(tmp_path, subscription_id="cfg-sub", resource_group="cfg-rg", workspace_name="cfg-ws")
    ws = resolve_workspace({"subscription_id": SUB, "workspace": "spec-ws"}, env=ENV, cwd=tmp_path)
    assert (ws.subscription_id, ws.resource_group, ws.workspace) == (SUB, "env-rg", "spec-ws")
    assert ws.sources["subscription_id"] == "the spec's azure: section"
    assert ws.sources["resource_group"] == "environment variable AZURE_RESOURCE_GROUP"


def test_environment_wins_over_config_json(tmp_path):
    write_config(
        tmp_path, subscription_id="cfg-sub", resource_group="cfg-rg", workspace_name="cfg-ws", location="swedencentral"
    )
    ws = resolve_workspace(None, env={"AZURE_ML_WORKSPACE": "alt-ws"}, cwd=tmp_path)
    assert (ws.subscription_id, ws.resource_group, ws.workspace, ws.region) == (
        "cfg-sub",
        "cfg-rg",
        "alt-ws",
        "swedencentral",
    )
    assert ws.sources["workspace"] == "environment variable AZURE_ML_WORKSPACE"
    assert ws.sources["subscription_id"] == str(tmp_path / "config.json")


def test_keyword_values_and_objects_with_attributes(tmp_path):
    class AzureSection:  # the shape of the spec's parsed azure: section
        subscription_id = SUB
        resource_group = "rg"
        workspace = "ws"
        region = "eastus2"

    ws = resolve_workspace(AzureSection(), workspace="override", env={}, cwd=tmp_path)
    assert (ws.workspace, ws.region) == ("override", "eastus2")
    assert ws.arm_id.endswith("/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/override")


def test_config_json_found_in_a_parent_azureml_folder_with_scope(tmp_path):
    scope = (
        f"/subscriptions/{SUB}/resourceGroups/scoped-rg/providers/Microsoft.MachineLearningServices/workspaces/scoped"
    )
    write_config(tmp_path / ".azureml", Scope=scope)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    ws = resolve_workspace(None, env={}, cwd=deep)
    assert (ws.subscription_id, ws.resource_group, ws.workspace) == (SUB, "scoped-rg", "scoped")
    assert ws.sources["workspace"] == str(tmp_path / ".azureml" / "config.json")


def test_unrelated_config_json_is_ignored(tmp_path):
    (tmp_path / "config.json").write_text('{"theme": "dark"}')
    with pytest.raises(AzureError) as e:
        resolve_workspace(None, env={}, cwd=tmp_path)
    assert "none found" in e.value.message


def test_missing_values_error_says_what_was_tried(tmp_path):
    with pytest.raises(AzureError) as e:
        resolve_workspace({"subscription_id": SUB}, env={}, cwd=tmp_path)
    msg = e.value.message
    assert "missing resource_group, workspace" in msg
    assert "AZURE_RESOURCE_GROUP" in msg and "AZUREML_WORKSPACE_NAME" in msg and "AZURE_ML_WORKSPACE" in msg
    assert "config.json" in msg and str(tmp_path) in msg
    assert "subscription_id from the spec's azure: section" in msg
    assert e.value.exit_code == EXIT_AZURE and e.value.hint


def test_broken_config_json_names_file_and_line(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "subscription_id": "x",\n  "workspace_name": \n}\n')
    with pytest.raises(UsageError) as e:
        resolve_workspace(None, env={}, cwd=tmp_path)
    assert f"{tmp_path / 'config.json'}:4" in e.value.message
    assert e.value.problems[0].line == 4


def test_bad_scope_in_config_json(tmp_path):
    write_config(tmp_path, Scope="/subscriptions/x/resourceGroups/y")
    with pytest.raises(UsageError) as e:
        resolve_workspace(None, env={}, cwd=tmp_path)
    assert "Scope" in e.value.message


def test_make_ml_client_from_environment_reaches_the_emulator(emulator, monkeypatch, tmp_path):
    for k, v in emulator.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    ws = resolve_workspace(None)
    ml = make_ml_client(ws, retry_total=2, retry_backoff_factor=0.01, enable_telemetry=False)
    emulator.inject(r"/workspaces/ws-azft$", status=503)  # retried by the configured azure-core policy
    assert ml.workspaces.get(ws.workspace).location == emulator.location
    assert [r.status for r in emulator.requests] == [503, 200]
    import os

    assert "AZUREML_CURRENT_CLOUD" not in os.environ or os.environ["AZUREML_CURRENT_CLOUD"] != ml._cloud


def test_make_ml_client_rejects_plain_http_endpoints():
    from azft.azure.workspace import WorkspaceRef

    with pytest.raises(UsageError) as e:
        make_ml_client(WorkspaceRef("s", "r", "w"), endpoint="http://127.0.0.1:1", credential=object())
    assert "https" in e.value.message


def _sdk_error(emulator, ml, fault_status=None, workspace=None):
    if fault_status:
        emulator.inject(r"/workspaces/ws-azft$", status=fault_status, times=None)
    try:
        ml.workspaces.get(workspace or emulator.workspace_name)
    except Exception as e:
        return e
    raise AssertionError("expected the SDK call to fail")


def test_error_mapping_for_auth_forbidden_missing_and_throttled(emulator, ml_client):
    from azft.azure.workspace import WorkspaceRef

    ws = WorkspaceRef(emulator.subscription_id, emulator.resource_group, "missing-ws")
    err = map_azure_error(_sdk_error(emulator, ml_client, workspace="missing-ws"), "reading the workspace", ws)
    assert "not found" in err.message and "missing-ws" in err.message and "config.json" in err.hint

    err = map_azure_error(_sdk_error(emulator, ml_client, 401), "reading the workspace")
    assert "rejected the credentials" in err.message and "az login" in err.hint and "OIDC" in err.hint
    emulator.reset()
    err = map_azure_error(_sdk_error(emulator, ml_client, 403), "reading the workspace")
    assert "not authorized" in err.message and "AzureML Data Scientist" in err.hint
    emulator.reset()
    err = map_azure_error(_sdk_error(emulator, ml_client, 429), "reading the workspace")
    assert "429" in err.message
    emulator.reset()
    err = map_azure_error(_sdk_error(emulator, ml_client, 502), "reading the workspace")
    assert "HTTP 502" in err.message and err.exit_code == EXIT_AZURE


def test_credential_failure_explains_how_to_sign_in():
    from azure.core.exceptions import ClientAuthenticationError

    err = map_azure_error(
        ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"), "submitting the job"
    )
    assert err.message.startswith("could not get an Azure token while submitting the job")
    assert "AZURE_CLIENT_ID" in err.hint and "managed identity" in err.hint


def test_secrets_never_reach_error_messages():
    from azure.core.exceptions import HttpResponseError

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    text = (
        f"Authorization: Bearer {token} url=https://a.blob.core.windows.net/c?sv=1&sig=SECRETSIG "
        "AccountKey=SECRETKEY==; client_secret=SECRET2"
    )
    out = redact(text)
    for secret in (token, "SECRETSIG", "SECRETKEY", "SECRET2"):
        assert secret not in out
    err = map_azure_error(HttpResponseError(message=text), "uploading")
    assert token not in err.message and "SECRETSIG" not in err.message


def test_azure_errors_context_manager_maps_sdk_exceptions(emulator, ml_client):
    from azft.azure.errors import azure_errors

    emulator.inject(r"/workspaces/ws-azft$", status=403, times=None)
    with pytest.raises(AzureError) as e, azure_errors("reading the workspace"):
        ml_client.workspaces.get(emulator.workspace_name)
    assert "not authorized" in e.value.message

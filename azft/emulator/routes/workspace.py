"""The workspace, its default datastore and the discovery document the SDK reads run-history URLs from."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from azft.emulator.routes.base import WS, Route
from azft.emulator.wire import PROVIDER, HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

TENANT_ID = "72f988bf-0000-4000-8000-00000000a2f7"


def workspace_body(emu: Emulator) -> dict[str, Any]:
    sub, rg = emu.subscription_id, emu.resource_group
    arm = f"/subscriptions/{sub}/resourceGroups/{rg}/providers"
    return {
        "id": emu.workspace_id,
        "name": emu.workspace_name,
        "type": f"{PROVIDER}/workspaces",
        "location": emu.location,
        "kind": "Default",
        "tags": {},
        "sku": {"name": "Basic", "tier": "Basic"},
        "identity": {
            "type": "SystemAssigned",
            "principalId": str(uuid.uuid5(uuid.NAMESPACE_OID, emu.workspace_guid)),
            "tenantId": TENANT_ID,
        },
        "systemData": emu.store.system_data(),
        "properties": {
            "friendlyName": emu.workspace_name,
            "description": "azft emulator workspace",
            "provisioningState": "Succeeded",
            "workspaceId": emu.workspace_guid,
            "discoveryUrl": f"{emu.base_url}/discovery",
            "storageAccount": f"{arm}/Microsoft.Storage/storageAccounts/{emu.storage_account}",
            "keyVault": f"{arm}/Microsoft.KeyVault/vaults/kv-azft",
            "applicationInsights": f"{arm}/microsoft.insights/components/ai-azft",
            "mlFlowTrackingUri": f"azureml://{emu.location}.api.azureml.ms/mlflow/v1.0{emu.workspace_id}",
            "hbiWorkspace": False,
            "publicNetworkAccess": "Enabled",
            "v1LegacyMode": False,
            "storageHnsEnabled": False,
        },
    }


def datastore_body(emu: Emulator) -> dict[str, Any]:
    if not emu.blob_endpoint:  # the default datastore's container exists in the emulator's own Blob service
        emu.blob_store.create_container(emu.blob_container, exist_ok=True)
    return emu.store.shape(
        "datastores",
        "workspaceblobstore",
        {
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": emu.storage_account,
                "containerName": emu.blob_container,
                "endpoint": emu.storage_suffix,
                "protocol": "https",
                "credentials": {"credentialsType": "None"},
                "isDefault": True,
                "serviceDataAccessAuthIdentity": "None",
                "description": "Default blob datastore of the azft emulator workspace",
                "tags": {},
                "properties": {},
            }
        },
    )


def get_workspace(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, workspace_body(emu))


def list_datastores(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    return Response(200, {"value": [datastore_body(emu)]})


def get_datastore(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    if m["name"] != "workspaceblobstore":
        raise HttpError(404, "UserError", f"Datastore {m['name']} not found in workspace {emu.workspace_name}.")
    return Response(200, datastore_body(emu))


def discovery(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    services = (
        "api",
        "catalog",
        "experimentation",
        "gallery",
        "history",
        "hyperdrive",
        "labeling",
        "modelmanagement",
        "pipelines",
        "studiometadata",
    )
    return Response(200, {k: emu.base_url for k in services})


ROUTES = [
    Route("GET", WS + r"$", "workspaces.get", get_workspace, resource_type="workspaces"),
    Route("GET", WS + r"/datastores$", "datastores.list", list_datastores, resource_type="workspaces/datastores"),
    Route(
        "GET",
        WS + r"/datastores/(?P<name>[^/]+)$",
        "datastores.get",
        get_datastore,
        resource_type="workspaces/datastores",
    ),
    Route("GET", r"^/discovery$", "discovery", discovery, auth=False),
]

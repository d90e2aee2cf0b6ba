"""Azure ML registries, read side: discovery and model versions (what ``MLClient(registry_name=...).models.get`` asks).

Wire (azure-ai-ml 1.35, ``azure/ai/ml/_utils/_registry_utils.py``): ``GET {registry_discovery_endpoint}
registrymanagement/v1.0/registries/{name}/discovery`` answers the registry's region endpoint, subscription and
resource group; model reads then go to ``{primaryRegionResourceProviderUri}mferp/managementfrontend/subscriptions/
.../registries/{name}/models/{model}/versions[/{version}]`` at api-version ``2021-10-01-dataplanepreview``
(``label="latest"`` lists ``$orderBy=createdtime desc&$top=1`` first). Models are seeded with
:func:`add_registry_model` (tests) in the shape the registry returns: ``ModelVersion`` with ``properties.tags``,
``properties.properties``, ``isArchived``, ``modelUri``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from azft.emulator.routes.base import Route
from azft.emulator.wire import PROVIDER, HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

API_VERSION = "2021-10-01-dataplanepreview"
REGISTRY_RG = "registry-rg"
_REG = (
    r"^/mferp/managementfrontend/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/registries/(?P<reg>[^/]+)"
)


def _store(emu: "Emulator") -> dict[tuple[str, str], dict[str, dict]]:
    return emu.__dict__.setdefault("registry_models", {})


def add_registry_model(
    emu: "Emulator",
    name: str,
    version: int,
    *,
    registry: str = "azureml",
    tags: Optional[dict] = None,
    properties: Optional[dict] = None,
    archived: bool = False,
    created: str = "2026-07-01T00:00:00Z",
) -> dict:
    """Seed one model version in a registry, shaped as the registry answers it."""
    # a registry asset's id is its azureml:// URI (azure-ai-ml's AMLVersionedArmId accepts no ARM form for it)
    body = {
        "id": f"azureml://registries/{registry}/models/{name}/versions/{version}",
        "name": str(version),
        "type": f"{PROVIDER}/registries/models/versions",
        "properties": {
            "description": f"{name} version {version}",
            "tags": dict(tags or {}),
            "properties": dict(properties or {}),
            "isArchived": archived,
            "isAnonymous": False,
            "modelType": "mlflow_model",
            "flavors": {"python_function": {"data": {"loader_module": "mlflow.transformers"}}},
            "modelUri": f"azureml://registries/{registry}/models/{name}/versions/{version}",
        },
        "systemData": {"createdAt": created, "createdBy": "azureml", "lastModifiedAt": created},
    }
    _store(emu).setdefault((registry.lower(), name.lower()), {})[str(version)] = body
    return body


def _check(rec: RecordedRequest) -> None:
    if rec.api_version != API_VERSION:
        raise HttpError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{rec.api_version}' is invalid. The supported versions are '{API_VERSION}'.",
        )


def _versions(emu: "Emulator", m: "re.Match[str]") -> dict[str, dict]:
    found = _store(emu).get((m["reg"].lower(), m["model"].lower()))
    if not found:
        raise HttpError(404, "UserError", f"Model container with name: {m['model']} not found.")
    return found


def discovery(emu: "Emulator", rec: RecordedRequest, m: "re.Match[str]") -> Response:
    return Response(
        200,
        {
            "registryName": m["reg"],
            "primaryRegion": emu.location,
            "primaryRegionResourceProviderUri": emu.base_url + "/",
            "regions": [emu.location],
            "subscriptionId": emu.subscription_id,
            "resourceGroup": REGISTRY_RG,
            "mlflowRegistryUri": f"azureml://{emu.location}.api.azureml.ms/mlflow/v1.0",
        },
    )


def list_versions(emu: "Emulator", rec: RecordedRequest, m: "re.Match[str]") -> Response:
    _check(rec)
    items = sorted(
        _versions(emu, m).values(),
        key=lambda b: b["systemData"]["createdAt"],
        reverse="desc" in (rec.query.get("$orderBy") or "createdtime desc").lower(),
    )
    top = rec.query.get("$top")
    if top:
        items = items[: int(top)]
    return Response(200, {"value": items})


def get_version(emu: "Emulator", rec: RecordedRequest, m: "re.Match[str]") -> Response:
    _check(rec)
    body = _versions(emu, m).get(m["version"])
    if body is None:
        raise HttpError(404, "UserError", f"Model {m['model']} version {m['version']} not found.")
    return Response(200, body)


ROUTES = [
    Route(
        "GET",
        r"^/registrymanagement/v1\.0/registries/(?P<reg>[^/]+)/discovery$",
        "registry.discovery",
        discovery,
        auth="token",
    ),
    Route("GET", _REG + r"/models/(?P<model>[^/]+)/versions$", "registry.models.list", list_versions, auth="token"),
    Route(
        "GET",
        _REG + r"/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)$",
        "registry.models.get",
        get_version,
        auth="token",
    ),
]

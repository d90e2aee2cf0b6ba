"""Versioned assets (components, including anonymous ones, codes, environments, models, data) and
``startPendingUpload``, which hands out a SAS on the emulator's own Blob service as Azure does for code."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from azft.emulator.routes.base import WS, Route
from azft.emulator.store import asset_kind
from azft.emulator.wire import HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

_ASSET = WS + r"/(?P<kind>components|codes|environments|models|data)/(?P<name>[^/]+)"
_VERSION = _ASSET + r"/versions/(?P<version>[^/]+)"
#: The contract model of each kind's version body.
VERSION_MODELS = {
    "components": "ComponentVersion",
    "codes": "CodeVersion",
    "environments": "EnvironmentVersion",
    "models": "ModelVersion",
    "data": "DataVersionBase",
}


def put_version(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    kind = asset_kind(m["kind"])
    created, resource = emu.store.put_version(
        kind, m["name"], m["version"], rec.body if isinstance(rec.body, dict) else {}
    )
    return Response(201 if created else 200, resource)


def get_version(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    kind, key = asset_kind(m["kind"]), (m["name"], m["version"])
    if key not in emu.store.assets[kind]:
        raise HttpError(404, "UserError", f"{kind} {m['name']}:{m['version']} was not found.")
    return Response(200, emu.store.assets[kind][key])


def list_versions(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    kind = asset_kind(m["kind"])
    wanted = rec.query.get("hash")
    assets = emu.store.assets[kind]
    if wanted:
        # A content-hash lookup spans the workspace, as Azure's does: anonymous code gets a fresh random name
        # on every submit, and the hash is what finds an earlier upload of the same folder.
        items = [
            v
            for v in assets.values()
            if (v.get("properties", {}).get("properties") or {}).get("hash_sha256") == wanted
            or v.get("properties", {}).get("contentHash") == wanted
        ]
    else:
        items = [v for (n, _), v in assets.items() if n == m["name"]]
    items.reverse()  # newest first, as `$orderBy=createdtime desc` asks
    top = rec.query.get("$top")
    if top and top.isdigit():
        items = items[: int(top)]
    return emu.store.page(rec, items)


def get_container(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    kind = asset_kind(m["kind"])
    versions = [ver for (n, ver) in emu.store.assets[kind] if n == m["name"]]
    if not versions:
        raise HttpError(404, "UserError", f"{kind} {m['name']} was not found.")
    return Response(
        200,
        emu.store.shape(
            kind,
            m["name"],
            {"properties": {"latestVersion": versions[-1], "description": "", "tags": {}, "properties": {}}},
        ),
    )


def start_pending_upload(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    """A container SAS on the emulator's own Blob service (``blobReferenceForConsumption``). One container per asset
    version, so a retried upload finds its blobs."""
    kind = asset_kind(m["kind"])
    body = rec.body if isinstance(rec.body, dict) else {}
    upload_type = body.get("pendingUploadType") or "TemporaryBlobReference"
    if upload_type != "TemporaryBlobReference":
        raise HttpError(400, "UserError", f"pendingUploadType {upload_type!r} is not supported.")
    container = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{emu.workspace_id}/{kind}/{m['name']}/{m['version']}"))
    emu.blob_store.create_container(container, exist_ok=True)
    return Response(
        200,
        {
            "blobReferenceForConsumption": {
                "blobUri": emu.blob_service.container_url(emu.base_url, container),
                "storageAccountArmId": f"/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}"
                f"/providers/Microsoft.Storage/storageAccounts/{emu.storage_account}",
                "credential": {"credentialType": "SAS", "sasUri": emu.blob_service.sas_url(emu.base_url, container)},
            },
            "pendingUploadId": body.get("pendingUploadId") or str(uuid.uuid4()),
            "pendingUploadType": upload_type,
        },
    )


ROUTES = [
    Route(
        "PUT",
        _VERSION + r"$",
        "assets.put",
        put_version,
        resource_type="workspaces/versions",
        body=lambda m: VERSION_MODELS[asset_kind(m["kind"])],
    ),
    Route("GET", _VERSION + r"$", "assets.get", get_version, resource_type="workspaces/versions"),
    Route("GET", _ASSET + r"/versions$", "assets.versions", list_versions, resource_type="workspaces/versions"),
    Route(
        "POST",
        _VERSION + r"/startPendingUpload$",
        "assets.startPendingUpload",
        start_pending_upload,
        resource_type="workspaces/versions",
        body="PendingUploadRequestDto",
    ),
    Route("GET", _ASSET + r"$", "assets.container", get_container, resource_type="workspaces/containers"),
]

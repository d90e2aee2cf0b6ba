"""Named ARM resources served straight from the store: computes, marketplace subscriptions, serverless endpoints,
managed online endpoints and their deployments.

``crud(segment, title, ...)`` makes the four rows (PUT as an LRO, GET, DELETE as an LRO, list with paging) of a
resource kind; a new kind is one call plus whatever its PUT adds (``extra``), what it checks first (``check``: a
deployment needs its endpoint) and what a read fills in (``view``: scoring URLs name the port this emulator listens
on, so a workspace saved by one process and loaded by the next answers with a URL that works). The endpoints'
inference routes are in ``azft.emulator.routes.inference``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azft.emulator.routes.base import WS, Route
from azft.emulator.wire import HttpError, RecordedRequest, Response

#: Where the emulator serves the endpoints' inference (scoring) routes.
INFERENCE = "/_inference"

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

Extra = Callable[["Emulator", str, dict], None]
Check = Callable[["Emulator", "re.Match[str]", object], None]


def crud(
    segment: str,
    title: str,
    *,
    route: str,
    body: str | None = None,
    extra: Extra | None = None,
    parent: str = "",
    resource_type: str | None = None,
    check: Check | None = None,
    view: Extra | None = None,
) -> list[Route]:
    """The routes of a named resource kind under the workspace (``parent`` adds a path between, e.g.
    ``/onlineEndpoints/(?P<endpoint>[^/]+)`` with ``resource_type="workspaces/onlineEndpoints/deployments"``).
    ``extra(emu, name, resource)`` fills the properties the service sets on PUT."""
    item = WS + parent + f"/{segment}/(?P<name>[^/]+)$"
    rtype = resource_type or f"workspaces/{segment}"
    parent_keys = re.findall(r"\(\?P<(\w+)>", parent)

    def kind(m: re.Match[str]) -> str:
        """The store collection: the path below the workspace, so each parent has its own children."""
        return (
            "/".join(p for key in parent_keys for p in (_segment_before(parent, key), m[key]))
            + ("/" if parent_keys else "")
            + segment
        )

    def shown(emu: Emulator, res: dict) -> dict:
        if view is not None:
            view(emu, res["name"], res)
        return res

    def put(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        name = m["name"]
        if check is not None:
            check(emu, m, rec.body)
        return emu.store.put(kind(m), rec, name, (lambda res: extra(emu, name, res)) if extra else None)

    def get(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return Response(200, shown(emu, emu.store.get(kind(m), m["name"], title)))

    def delete(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return emu.store.delete(kind(m), rec, m["name"])

    def list_(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return emu.store.page(rec, [shown(emu, r) for r in emu.store.collection(kind(m)).values()])

    return [
        Route("PUT", item, f"{route}.put", put, resource_type=rtype, body=body),
        Route("GET", item, f"{route}.get", get, resource_type=rtype),
        Route("DELETE", item, f"{route}.delete", delete, resource_type=rtype),
        Route("GET", WS + parent + f"/{segment}$", f"{route}.list", list_, resource_type=rtype),
    ]


def _segment_before(parent: str, key: str) -> str:
    """``/onlineEndpoints/(?P<endpoint>[^/]+)`` and ``endpoint`` → ``onlineEndpoints``."""
    head = parent.split(f"(?P<{key}>")[0].rstrip("/")
    return head.rsplit("/", 1)[-1]


def _compute(emu: Emulator, name: str, res: dict) -> None:
    res.setdefault("location", emu.location)
    res["properties"].setdefault("computeLocation", emu.location)


def _marketplace(emu: Emulator, name: str, res: dict) -> None:
    model_id = res["properties"].get("modelId", "")
    res["properties"].setdefault("marketplaceSubscriptionStatus", "Subscribed")
    res["properties"].setdefault(
        "marketplacePlan",
        {"publisherId": "azureml", "offerId": model_id.rstrip("/").split("/")[-1] or "model", "planId": "standard"},
    )


def _serverless(emu: Emulator, name: str, res: dict) -> None:
    res.setdefault("location", emu.location)
    res["properties"].setdefault("authMode", "Key")
    res["properties"]["endpointState"] = "Online"
    _serverless_view(emu, name, res)


def _serverless_view(emu: Emulator, name: str, res: dict) -> None:
    # Azure: https://{name}.{region}.models.ai.azure.com; here the emulator's own host, which serves
    # /v1/chat/completions below it (azft.emulator.routes.inference).
    res["properties"]["inferenceEndpoint"] = {"uri": f"{emu.base_url}{INFERENCE}/serverless/{name}"}


def endpoint_keys(emu: Emulator, kind: str, name: str) -> dict[str, str]:
    """Deterministic, obviously fake keys: tests can check they never reach logs."""
    return {"primaryKey": f"emulator-primary-{kind}-{name}", "secondaryKey": f"emulator-secondary-{kind}-{name}"}


def serverless_keys(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    emu.store.get("serverlessEndpoints", m["name"], "Serverless endpoint")
    return Response(200, endpoint_keys(emu, "serverless", m["name"]))


def _online_endpoint(emu: Emulator, name: str, res: dict) -> None:
    res.setdefault("location", emu.location)
    res["properties"].setdefault("traffic", {})
    _online_view(emu, name, res)


def _online_view(emu: Emulator, name: str, res: dict) -> None:
    # Azure: https://{name}.{region}.inference.ml.azure.com/score
    res["properties"]["scoringUri"] = f"{emu.base_url}{INFERENCE}/online/{name}/score"
    res["properties"]["swaggerUri"] = f"{emu.base_url}{INFERENCE}/online/{name}/swagger.json"


def online_keys(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    res = emu.store.get("onlineEndpoints", m["name"], "Online endpoint")
    if str(res["properties"].get("authMode", "")).lower() != "key":
        raise HttpError(400, "UserError", f"Online endpoint '{m['name']}' does not use key authentication.")
    return Response(200, endpoint_keys(emu, "online", m["name"]))


_WS_MODEL = re.compile(r"/workspaces/(?P<ws>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.I)


def check_workspace_model(emu: Emulator, model_id: object, field: str) -> None:
    """A workspace model a deployment names must be registered (ARM ids and ``azureml://locations/.../workspaces/
    <guid>/models/...`` ids; registry models are not this workspace's to check)."""
    m = _WS_MODEL.search(str(model_id or ""))
    if m is None:
        return
    if (m["name"], m["version"]) not in emu.store.assets["models"]:
        raise HttpError(
            400,
            "UserError",
            f"{field}: model {m['name']} version {m['version']} was not found in workspace {emu.workspace_name}.",
        )


def _serverless_check(emu: Emulator, m: re.Match[str], body: object = None) -> None:
    settings = ((body or {}).get("properties") or {}).get("modelSettings") or {} if isinstance(body, dict) else {}
    check_workspace_model(emu, settings.get("modelId"), "properties.modelSettings.modelId")


def _endpoint_exists(emu: Emulator, m: re.Match[str], body: object = None) -> None:
    """A deployment needs its endpoint (Azure answers 404 for a deployment under a missing endpoint) and a
    registered model."""
    emu.store.get("onlineEndpoints", m["endpoint"], "Online endpoint")
    props = (body.get("properties") or {}) if isinstance(body, dict) else {}
    check_workspace_model(emu, props.get("model"), "properties.model")


#: What Azure fills in when a deployment PUT leaves them out (the defaults azure-ai-ml documents for
#: ``OnlineRequestSettings``, ``ProbeSettings`` and ``DefaultScaleSettings``).
_PROBE: dict[str, Any] = {
    "failureThreshold": 30,
    "successThreshold": 1,
    "timeout": "PT2S",
    "period": "PT10S",
    "initialDelay": "PT10S",
}
_DEPLOYMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "scaleSettings": {"scaleType": "Default"},
    "requestSettings": {"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S", "maxQueueWait": "PT0.5S"},
    "livenessProbe": _PROBE,
    "readinessProbe": _PROBE,
}


def _online_deployment(emu: Emulator, name: str, res: dict) -> None:
    res.setdefault("location", emu.location)
    res.setdefault("sku", {"name": "Default", "capacity": 1})
    for key, value in _DEPLOYMENT_DEFAULTS.items():
        if not res["properties"].get(key):
            res["properties"][key] = dict(value)


ROUTES = [
    *crud("computes", "Compute", route="computes", body="ComputeResource", extra=_compute),
    *crud(
        "marketplaceSubscriptions",
        "Marketplace subscription",
        route="marketplace",
        body="MarketplaceSubscription",
        extra=_marketplace,
    ),
    *crud(
        "serverlessEndpoints",
        "Serverless endpoint",
        route="serverless",
        body="ServerlessEndpoint",
        extra=_serverless,
        view=_serverless_view,
        check=_serverless_check,
    ),
    Route(
        "POST",
        WS + r"/serverlessEndpoints/(?P<name>[^/]+)/listKeys$",
        "serverless.listKeys",
        serverless_keys,
        resource_type="workspaces/serverlessEndpoints",
    ),
    *crud(
        "onlineEndpoints",
        "Online endpoint",
        route="online_endpoints",
        body="OnlineEndpoint",
        extra=_online_endpoint,
        view=_online_view,
    ),
    Route(
        "POST",
        WS + r"/onlineEndpoints/(?P<name>[^/]+)/listKeys$",
        "online_endpoints.listKeys",
        online_keys,
        resource_type="workspaces/onlineEndpoints",
    ),
    *crud(
        "deployments",
        "Online deployment",
        route="online_deployments",
        body="OnlineDeployment",
        extra=_online_deployment,
        parent="/onlineEndpoints/(?P<endpoint>[^/]+)",
        resource_type="workspaces/onlineEndpoints/deployments",
        check=_endpoint_exists,
    ),
]

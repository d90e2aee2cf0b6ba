"""Named ARM resources served straight from the store: computes, marketplace subscriptions, serverless endpoints.

``crud(segment, title, ...)`` makes the four rows (PUT as an LRO, GET, DELETE as an LRO, list with paging) of a
resource kind; a new kind (online endpoints, their deployments) is one call plus whatever its PUT adds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from azft.emulator.routes.base import WS, Route
from azft.emulator.wire import RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

Extra = Callable[["Emulator", str, dict], None]


def crud(segment: str, title: str, *, route: str, body: str | None = None, extra: Extra | None = None,
         parent: str = "", resource_type: str | None = None) -> list[Route]:
    """The routes of a named resource kind under the workspace (``parent`` adds a path between, e.g.
    ``/onlineEndpoints/(?P<endpoint>[^/]+)`` with ``resource_type="workspaces/onlineEndpoints/deployments"``).
    ``extra(emu, name, resource)`` fills the properties the service sets on PUT."""
    item = WS + parent + f"/{segment}/(?P<name>[^/]+)$"
    rtype = resource_type or f"workspaces/{segment}"
    parent_keys = re.findall(r"\(\?P<(\w+)>", parent)

    def kind(m: re.Match[str]) -> str:
        """The store collection: the path below the workspace, so each parent has its own children."""
        return "/".join(p for key in parent_keys for p in (_segment_before(parent, key), m[key])) + \
            ("/" if parent_keys else "") + segment

    def put(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        name = m["name"]
        return emu.store.put(kind(m), rec, name, (lambda res: extra(emu, name, res)) if extra else None)

    def get(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return Response(200, emu.store.get(kind(m), m["name"], title))

    def delete(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return emu.store.delete(kind(m), rec, m["name"])

    def list_(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
        return emu.store.page(rec, list(emu.store.collection(kind(m)).values()))

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
    res["properties"].setdefault("marketplacePlan", {
        "publisherId": "azureml", "offerId": model_id.rstrip("/").split("/")[-1] or "model", "planId": "standard"})


def _serverless(emu: Emulator, name: str, res: dict) -> None:
    res.setdefault("location", emu.location)
    res["properties"].setdefault("authMode", "Key")
    res["properties"]["inferenceEndpoint"] = {"uri": f"https://{name}.{emu.location}.models.ai.azure.com"}
    res["properties"]["endpointState"] = "Online"


def serverless_keys(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    emu.store.get("serverlessEndpoints", m["name"], "Serverless endpoint")
    # Deterministic, obviously fake keys: tests can check they never reach logs.
    return Response(200, {"primaryKey": f"emulator-primary-{m['name']}",
                          "secondaryKey": f"emulator-secondary-{m['name']}"})


ROUTES = [
    *crud("computes", "Compute", route="computes", body="ComputeResource", extra=_compute),
    *crud("marketplaceSubscriptions", "Marketplace subscription", route="marketplace",
          body="MarketplaceSubscription", extra=_marketplace),
    *crud("serverlessEndpoints", "Serverless endpoint", route="serverless", body="ServerlessEndpoint",
          extra=_serverless),
    Route("POST", WS + r"/serverlessEndpoints/(?P<name>[^/]+)/listKeys$", "serverless.listKeys", serverless_keys,
          resource_type="workspaces/serverlessEndpoints"),
]

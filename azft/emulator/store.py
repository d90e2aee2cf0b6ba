"""A small table-driven store of ARM resources: create, read, list, delete and long-running operations, once.

Every resource kind the emulator serves (computes, marketplace subscriptions, serverless endpoints, versioned assets
and whatever comes next) is a collection in this store keyed by name (or ``(name, version)``). Routes call
``put``/``get``/``delete``/``page``; the ARM envelope (``id``, ``name``, ``type``, ``systemData``,
``provisioningState``) and the LRO headers (``Azure-AsyncOperation``, ``Location``, ``Retry-After``) are built here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from azft.emulator.wire import PROVIDER, HttpError, RecordedRequest, Response, now_iso

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

ASSET_KINDS = ("components", "codes", "environments", "models", "data")
#: Collections keyed by name (versioned assets are keyed by (name, version) in ``assets``).
NAMED_KINDS = ("computes", "marketplaceSubscriptions", "serverlessEndpoints")


@dataclass
class Operation:
    """A long-running operation: answers 'in progress' ``polls`` times, then done."""

    id: str
    polls: int
    on_done: Callable[[], None] | None = None
    done: bool = False

    def poll(self) -> bool:
        if self.polls > 0:
            self.polls -= 1
            return False
        if not self.done:
            self.done = True
            if self.on_done:
                self.on_done()
        return True


def asset_kind(kind: str) -> str:
    return next(k for k in ASSET_KINDS if k.lower() == kind.lower())


class ResourceStore:
    """The workspace's resources. Reads its settings (URLs, page size, LRO polls) from the emulator."""

    def __init__(self, emulator: Emulator):
        self.emu = emulator
        self.named: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in NAMED_KINDS}
        self.assets: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in ASSET_KINDS}
        self.operations: dict[str, Operation] = {}

    def clear(self) -> None:
        for store in (*self.named.values(), *self.assets.values()):
            store.clear()
        self.operations.clear()

    def collection(self, kind: str) -> dict[str, dict[str, Any]]:
        """The named collection for ``kind``, created on first use (a new resource kind needs no setup)."""
        return self.named.setdefault(kind, {})

    # -- the ARM envelope ---------------------------------------------------------------------------------------
    def arm_id(self, kind: str, name: str, version: str | None = None) -> str:
        rid = f"{self.emu.workspace_id}/{kind}/{name}"
        return f"{rid}/versions/{version}" if version is not None else rid

    @staticmethod
    def system_data() -> dict[str, str]:
        now = now_iso()
        return {
            "createdAt": now,
            "createdBy": "azft emulator",
            "createdByType": "User",
            "lastModifiedAt": now,
            "lastModifiedBy": "azft emulator",
            "lastModifiedByType": "User",
        }

    def shape(
        self, kind: str, name: str, body: dict, provisioning: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """``body`` as an ARM resource of ``kind`` (``kind`` may be a nested path such as ``components/x``)."""
        out = dict(body or {})
        out["id"] = self.arm_id(kind, name, version)
        out["name"] = version if version is not None else name
        out["type"] = f"{PROVIDER}/workspaces/{kind}" + ("/versions" if version is not None else "")
        out.setdefault("systemData", self.system_data())
        props = dict(out.get("properties") or {})
        if provisioning is not None:
            props["provisioningState"] = provisioning
        out["properties"] = props
        return out

    def url(self, path: str, **query: str) -> str:
        return f"{self.emu.base_url}{path}" + (("?" + urlencode(query)) if query else "")

    # -- create / read / list / delete --------------------------------------------------------------------------
    def put(self, kind: str, rec: RecordedRequest, name: str, extra: Callable[[dict], None] | None = None) -> Response:
        """Create or update ``name`` as a long-running operation (201 Creating / 200 Updating, then Succeeded)."""
        store = self.collection(kind)
        body = rec.body if isinstance(rec.body, dict) else {}
        created = name not in store
        resource = self.shape(kind, name, body, provisioning="Creating" if created else "Updating")
        if extra:
            extra(resource)
        store[name] = resource
        op = self.new_operation(on_done=lambda: resource["properties"].update(provisioningState="Succeeded"))
        return Response(201 if created else 200, resource, self.op_headers(op, rec.api_version or ""))

    def get(self, kind: str, name: str, title: str) -> dict[str, Any]:
        store = self.collection(kind)
        if name not in store:
            raise HttpError(
                404, "ResourceNotFound", f"{title} '{name}' was not found in workspace {self.emu.workspace_name}."
            )
        return store[name]

    def delete(self, kind: str, rec: RecordedRequest, name: str) -> Response:
        store = self.collection(kind)
        if name not in store:
            return Response(204, None)

        def gone() -> None:
            store.pop(name, None)
            for child in [k for k in self.named if k.startswith(f"{kind}/{name}/")]:  # an endpoint's deployments
                del self.named[child]

        op = self.new_operation(on_done=gone)
        return Response(202, None, self.op_headers(op, rec.api_version or "", location=True))

    def page(self, rec: RecordedRequest, items: list[dict]) -> Response:
        """One page of ``items`` with a ``nextLink`` carrying ``$skipToken`` when more remain."""
        size = self.emu.page_size
        skip = int(rec.query.get("$skipToken") or 0)
        body: dict[str, Any] = {"value": items[skip : skip + size]}
        if skip + size < len(items):
            q = {k: v for k, v in rec.query.items() if k != "$skipToken"}
            q["$skipToken"] = str(skip + size)
            body["nextLink"] = self.url(rec.path, **q)
        return Response(200, body)

    # -- versioned assets ---------------------------------------------------------------------------------------
    def put_version(self, kind: str, name: str, version: str, body: dict) -> tuple[bool, dict[str, Any]]:
        store = self.assets[kind]
        created = (name, version) not in store
        resource = self.shape(f"{kind}/{name}", name, body, provisioning="Succeeded", version=version)
        resource["id"] = self.arm_id(kind, name, version)
        store.pop((name, version), None)
        store[(name, version)] = resource  # insertion order = creation order ("latest" is the last one)
        return created, resource

    # -- long-running operations --------------------------------------------------------------------------------
    def new_operation(self, on_done: Callable[[], None] | None = None) -> Operation:
        op = Operation(id=uuid.uuid4().hex, polls=self.emu.lro_polls, on_done=on_done)
        self.operations[op.id] = op
        return op

    def operation(self, op_id: str) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise HttpError(404, "ResourceNotFound", f"Operation {op_id} was not found.")
        return op

    def op_headers(self, op: Operation, api_version: str, location: bool = False) -> dict[str, str]:
        emu = self.emu
        base = f"/subscriptions/{emu.subscription_id}/providers/{PROVIDER}/locations/{emu.location}"
        headers = {
            "Azure-AsyncOperation": self.url(f"{base}/mfeOperationsStatus/{op.id}", **{"api-version": api_version})
        }
        headers.update(self.delay_header())
        if location:
            headers["Location"] = self.url(f"{base}/mfeOperationResults/{op.id}", **{"api-version": api_version})
        return headers

    def delay_header(self) -> dict[str, str]:
        # The generated clients parse Retry-After on LRO responses as an integer; without the header the poller
        # waits ``polling_interval`` (make_ml_client sets 0).
        ra = self.emu.lro_retry_after
        return {} if ra is None else {"Retry-After": str(int(ra))}

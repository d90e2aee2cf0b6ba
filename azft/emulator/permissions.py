"""The caller's permissions: which Azure RBAC actions a request may perform, and a record of those it performed.

Two ways to limit them (default: everything is allowed):
- ``roles``: built-in role names (``azft.azure.roles.BUILT_IN_ROLES``, e.g. ``["AzureML Data Scientist"]``): each
  request's RBAC action is derived from its method and path the way Azure names them
  (``azft.azure.roles.action_for_request``) and allowed only if one of the roles grants it. This is what a spec's
  ``mock.roles`` sets, to rehearse a CI identity's role assignments.
- ``allowed``: explicit ``"<METHOD> <resource type>"`` entries (``"*"`` as the method or a trailing ``/*`` on the
  type widens an entry), for tests that need one action removed.

A request outside them is answered the way ARM answers a missing role assignment: 403 ``AuthorizationFailed`` naming
the action and the scope (Blob requests: Azure Storage's 403 ``AuthorizationPermissionMismatch``).
"""

from __future__ import annotations

from collections.abc import Iterable

from azft.azure import roles as rbac
from azft.emulator.credential import FakeCredential
from azft.emulator.wire import HttpError


class Permissions:
    def __init__(
        self, allowed: Iterable[str] | None = None, object_id: str | None = None, roles: Iterable[str] | None = None
    ):
        self.allowed: set[str] | None = set(allowed) if allowed is not None else None
        self.roles: list[str] | None = list(roles) if roles is not None else None
        unknown = [r for r in self.roles or [] if r not in rbac.BUILT_IN_ROLES]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; known: {sorted(rbac.BUILT_IN_ROLES)}")
        self.object_id = object_id or FakeCredential().object_id
        #: The RBAC action of every request performed (allowed) during this emulator's run, in order.
        self.performed: list[str] = []

    def _allows_type(self, method: str, rtype: str) -> bool:
        if self.allowed is None:
            return True
        for entry in self.allowed:
            e_method, _, e_type = entry.partition(" ")
            if e_method not in ("*", method):
                continue
            if e_type == rtype or (e_type.endswith("/*") and rtype.startswith(e_type[:-1])) or e_type == "*":
                return True
        return False

    def check(self, method: str, resource_type: str, path: str) -> None:
        """An ARM request: 403 ``AuthorizationFailed`` unless allowed; recorded when it is."""
        action = rbac.action_for_request(method, path) or f"{resource_type}/{method.lower()}"
        scope = path.split("?", 1)[0]
        if not self._allows_type(method, resource_type) or (
            self.roles is not None
            and rbac.action_for_request(method, path) is not None
            and not rbac.allowed(action, self.roles)
        ):
            raise HttpError(
                403,
                "AuthorizationFailed",
                f"The client '{self.object_id}' with object id '{self.object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
                "invalid. If access was recently granted, please refresh your credentials.",
            )
        self.performed.append(action)

    def check_blob(self, method: str, path: str, signed: bool) -> bool:
        """A Blob request: True if allowed. One signed with a SAS carries its own grant and needs no role."""
        action = rbac.action_for_request(method, path, {"sig": ""} if signed else None)
        if action is None:
            return True
        if self.roles is not None and not rbac.allowed(action, self.roles):
            return False
        self.performed.append(action)
        return True

    def clear(self) -> None:
        self.performed.clear()

"""The identity's permissions: which ARM actions a request may perform, and a record of those it performed.

An action is ``"<METHOD> <resource type>"``, e.g. ``"PUT Microsoft.MachineLearningServices/workspaces/jobs"``.
``allowed=None`` (the default) allows everything; a set allows only its actions (``"*"`` as the method or a
trailing ``/*`` on the type widens an entry) and answers anything else the way ARM answers a missing role
assignment: 403 ``AuthorizationFailed`` naming the action and the scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from azft.emulator.credential import FakeCredential
from azft.emulator.wire import HttpError

_VERB = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "POST": "action", "DELETE": "delete"}


class Permissions:
    def __init__(self, allowed: Iterable[str] | None = None, object_id: str | None = None):
        self.allowed: set[str] | None = set(allowed) if allowed is not None else None
        self.object_id = object_id or FakeCredential().object_id
        #: Every ARM action performed (allowed) during this emulator's run, in order.
        self.performed: list[str] = []

    def allows(self, action: str) -> bool:
        if self.allowed is None:
            return True
        method, _, rtype = action.partition(" ")
        for entry in self.allowed:
            e_method, _, e_type = entry.partition(" ")
            if e_method not in ("*", method):
                continue
            if e_type == rtype or (e_type.endswith("/*") and rtype.startswith(e_type[:-1])) or e_type == "*":
                return True
        return False

    def check(self, method: str, resource_type: str, scope: str) -> None:
        action = f"{method} {resource_type}"
        if not self.allows(action):
            verb = _VERB.get(method, "action")
            raise HttpError(403, "AuthorizationFailed",
                            f"The client '{self.object_id}' with object id '{self.object_id}' does not have "
                            f"authorization to perform action '{resource_type}/{verb}' over scope '{scope}' or the "
                            "scope is invalid. If access was recently granted, please refresh your credentials.")
        self.performed.append(action)

    def clear(self) -> None:
        self.performed.clear()

"""A token credential for a loopback Azure endpoint (an emulator): well-formed JWTs, one audience per scope.

The Azure ML SDK decodes the token it sends with pipeline jobs and checks that ``aud`` equals the cloud's
``aml_resource_id``; Azurite (``--oauth basic``) checks ``iss``, ``aud``, ``nbf`` and ``exp``. A token whose audience
is the scope minus ``/.default`` satisfies both, exactly like Microsoft Entra ID does.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

DEFAULT_TENANT_ID = "72f988bf-0000-4000-8000-00000000a2f7"


def _scope_to_audience(scope: str) -> str:
    return scope.removesuffix("/.default")


class LoopbackCredential:
    """Implements azure-core's ``TokenCredential`` protocol (``get_token``) without any network call.

    ``calls`` records the scopes asked for, so tests can check which resources a client authenticated against.
    """

    def __init__(self, tenant_id: str = DEFAULT_TENANT_ID, lifetime_s: int = 3600, object_id: str | None = None):
        self.tenant_id = tenant_id
        self.lifetime_s = lifetime_s
        self.object_id = object_id or str(uuid.uuid4())
        self.calls: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def token_for(self, *scopes: str) -> str:
        import jwt  # PyJWT

        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": _scope_to_audience(scopes[0]) if scopes else "https://management.azure.com",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "tid": self.tenant_id,
            "oid": self.object_id,
            "sub": self.object_id,
            "appid": "azft-emulator",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + self.lifetime_s,
        }
        # Unsigned-looking but decodable: HS256 with a fixed local key (nothing verifies signatures here).
        return jwt.encode(claims, "azft-emulator-signing-key-not-a-secret-000", algorithm="HS256")

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        with self._lock:
            self.calls.append(tuple(scopes))
        return AccessToken(self.token_for(*scopes), int(time.time()) + self.lifetime_s)

    def close(self) -> None:  # the TokenCredential protocol allows context-manager use
        return None

    def __enter__(self) -> LoopbackCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A route row and the path prefixes the route modules share (the dispatcher is in the package's ``__init__``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azft.emulator.wire import PROVIDER, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

Handler = Callable[["Emulator", RecordedRequest, "re.Match[str]"], Response]

WS = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/(?P<ws>[^/]+)"
)
OPS = r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<loc>[^/]+)"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    name: str
    handler: Handler
    #: True = ARM (bearer token + api-version), "token" = bearer only (data plane), "key" = an endpoint's own key
    #: (inference routes), False = none.
    auth: Any = True
    #: The ARM resource type below the provider, e.g. "workspaces/jobs": the permission check's action is
    #: "<METHOD> Microsoft.MachineLearningServices/<resource_type>".
    resource_type: str | None = None
    #: The REST contract model the request body must satisfy (``azft.emulator.contract``), e.g. "JobBase", or a
    #: function of the path match naming it.
    body: str | Callable[[re.Match[str]], str] | None = None

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)

    @property
    def action_type(self) -> str:
        return f"{PROVIDER}/{self.resource_type}" if self.resource_type else self.name

"""The emulator's routes: one table, one dispatcher, every check in one place.

A route is a row: method, path pattern, name, handler, how it authenticates, the ARM resource type it acts on (for
the permission check and Azure's api-version answer) and the REST contract model its body must satisfy. The
dispatcher answers, in Azure's order: authentication (401), api-version (400 ``NoRegisteredProviderFound``),
workspace (404), permission (403 ``AuthorizationFailed``), request body against the contract (400 ``UserError``),
then a served fixture (Azure's recorded answer, ``azft.emulator.fixtures``) or the handler. Adding a resource kind is a route module with rows (see ``resources.crud``), nothing else; the row type is in
``base``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from azft.emulator.routes.base import Route
from azft.emulator.wire import PROVIDER, HttpError, RecordedRequest, Response, azure_error

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator


def _auth_error() -> Response:
    return Response(
        401,
        azure_error(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
        ),
        {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/"'},
    )


class Router:
    """Matches a request to its route and runs the checks every ARM request goes through."""

    def __init__(self, routes: Iterable[Route]):
        self.routes = [(r, r.compiled()) for r in routes]

    def dispatch(self, emu: Emulator, rec: RecordedRequest, authorization: str | None) -> Response:
        path_matched = False
        for route, rx in self.routes:
            m = rx.match(rec.path)
            if not m:
                continue
            path_matched = True
            if route.method != rec.method:
                continue
            rec.route = route.name
            try:
                self._check(emu, route, m, rec, authorization)
                with emu._lock:
                    served = emu.fixture_answer(route.name, m.groupdict().get("name"))
                    return served if served is not None else route.handler(emu, rec, m)
            except HttpError as e:
                return e.response()
        if path_matched:
            return Response(405, azure_error("MethodNotAllowed", f"{rec.method} is not allowed on {rec.path}."))
        return Response(
            404,
            azure_error(
                "NoRouteInEmulator" if not rec.path.startswith("/subscriptions/") else "ResourceNotFound",
                f"The azft emulator has no route for {rec.method} {rec.path} (api-version {rec.api_version}).",
            ),
        )

    def _check(
        self, emu: Emulator, route: Route, m: re.Match[str], rec: RecordedRequest, authorization: str | None
    ) -> None:
        if route.auth == "key":  # an endpoint's inference route: one of that endpoint's keys
            from azft.emulator.routes.inference import key_ok

            if not key_ok(emu, m.groupdict(), authorization):
                raise _Answer(Response(401, azure_error("Unauthorized", "Missing or invalid endpoint key.")))
            return
        if route.auth and not (authorization or "").startswith("Bearer "):
            raise _Answer(_auth_error())
        if route.auth is not True:  # data-plane and control routes carry no api-version
            return
        check_api_version(emu, route, rec.api_version)
        groups = m.groupdict()
        if "ws" in groups and not emu.is_our_workspace(groups):
            raise HttpError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{groups['ws']}' under resource group "
                f"'{groups['rg']}' was not found.",
            )
        emu.permissions.check(rec.method, route.action_type, rec.path)
        if route.body is not None and emu.strict:
            model = route.body(m) if callable(route.body) else route.body
            emu.contract.check(model, rec.body, rec.api_version)


class _Answer(HttpError):
    """A check that answers with a ready response (401 with its WWW-Authenticate header)."""

    def __init__(self, response: Response):
        super().__init__(response.status, "", "")
        self._response = response

    def response(self) -> Response:
        return self._response


_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def check_api_version(emu: Emulator, route: Route, av: str | None) -> None:
    """Azure's answers: no api-version → ``MissingApiVersionParameter``; a malformed one →
    ``InvalidApiVersionParameter``; a well-formed one the resource type does not support →
    ``NoRegisteredProviderFound`` naming it, the type, the supported versions and locations (the message ARM
    returns, as quoted in Azure/azure-sdk-for-js#4097 and Azure/azure-rest-api-specs#18857)."""
    supported = ", ".join(sorted(emu.api_versions))
    if not av:
        raise HttpError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION.match(av):
        raise HttpError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{av}' is invalid. The supported versions are '{supported}'.",
        )
    if av not in emu.api_versions:
        rtype = route.resource_type or "workspaces"
        raise HttpError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{emu.location}' and API version "
            f"'{av}' for type '{rtype}'. The supported api-versions are '{supported}'. The supported "
            f"locations are '{emu.location}'.",
        )


def all_routes() -> list[Route]:
    from azft.emulator import control
    from azft.emulator.routes import assets, history, inference, jobs, operations, registry, resources, workspace

    return [
        *workspace.ROUTES,
        *jobs.ROUTES,
        *resources.ROUTES,
        *assets.ROUTES,
        *operations.ROUTES,
        *history.ROUTES,
        *registry.ROUTES,
        *inference.ROUTES,
        *control.ROUTES,
    ]

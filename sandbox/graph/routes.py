"""Graph v1.0: users by id or UPN, service principals by id or `$filter=appId eq`."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, graph_error
from ppcmk_sandbox.identity.principals import Principal

APP_ID_FILTER = re.compile(r"\s*appId\s+eq\s+'(?P<app_id>[^']+)'\s*", re.IGNORECASE)


def _not_found(key: str) -> SandboxHttpError:
    return SandboxHttpError(
        graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    )


def _user(principal: Principal) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": principal.object_id,
        "userPrincipalName": principal.upn,
        "displayName": principal.display_name,
        "mail": principal.upn,
    }


def _service_principal(principal: Principal) -> dict[str, Any]:
    return {
        "id": principal.object_id,
        "appId": principal.app_id,
        "displayName": principal.display_name,
        "servicePrincipalType": "ManagedIdentity" if principal.trusted_service else "Application",
    }


def get_user(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    key = unquote(match["key"])
    principal = req.world.identities.get(key) or next(
        (p for p in req.world.identities.all() if p.upn and p.upn.lower() == key.lower()), None
    )
    if principal is None or principal.kind != "User":
        raise _not_found(key)
    return SandboxResponse(200, _user(principal))


def get_service_principal(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    principal = req.world.identities.get(match["key"])
    if principal is None or principal.kind != "ServicePrincipal":
        raise _not_found(match["key"])
    return SandboxResponse(200, _service_principal(principal))


def list_service_principals(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    principals = [p for p in req.world.identities.all() if p.kind == "ServicePrincipal"]
    query = req.query.get("$filter")
    if query is not None:
        found = APP_ID_FILTER.fullmatch(query)
        if found is None:
            raise SandboxHttpError(
                graph_error(400, "Request_UnsupportedQuery", "Only $filter=appId eq '<app id>' is supported.")
            )
        principals = [p for p in principals if (p.app_id or "").lower() == found["app_id"].lower()]
    return SandboxResponse(200, {"value": [_service_principal(p) for p in principals]})


ROUTES = [
    Route("GET", r"/v1\.0/users/(?P<key>[^/]+)", get_user, "graph"),
    Route("GET", r"/v1\.0/servicePrincipals/(?P<key>[^/]+)", get_service_principal, "graph"),
    Route("GET", r"/v1\.0/servicePrincipals", list_service_principals, "graph"),
]

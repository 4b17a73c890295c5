"""The fake token endpoint and the App-Service-style managed identity endpoint (no authentication)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.identity.principals import Principal
from ppcmk_sandbox.identity.tokens import audience_from_scope, issue_token

TOKEN_PATH = "/oauth2/token"
IDENTITY_PATH = "/metadata/identity/oauth2/token"


def _persona(req: SandboxRequest, key: str, field_name: str) -> Principal:
    principal = req.world.identities.find(key) if key else None
    if principal is None:
        known = ", ".join(sorted(p.name for p in req.world.identities.all()))
        raise SandboxHttpError(
            arm_error(400, "invalid_client", f"{field_name}: unknown principal {key!r}; use one of: {known}")
        )
    return principal


def issue(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    """``POST {token}`` with form or JSON ``{"principal": name, "scope": "<aud>/.default"}``."""
    if req.headers.get("content-type", "").startswith("application/json"):
        fields = {k: str(v) for k, v in (req.json() or {}).items()}
    else:
        fields = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
    principal = _persona(req, fields.get("principal") or fields.get("client_id", ""), "principal")
    scope = fields.get("scope") or fields.get("resource", "")
    if not scope:
        raise SandboxHttpError(
            arm_error(
                400, "invalid_scope", "scope: give the audience, e.g. https://management.azure.com/.default"
            )
        )
    audience = audience_from_scope(scope)
    token, expires_on = issue_token(principal, audience, req.world.tenant_id)
    return SandboxResponse(
        200,
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_on": expires_on,
            "expires_in": 3600,
            "resource": audience,
        },
    )


def managed_identity(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    """``GET {identity}?resource=...``, ``X-IDENTITY-HEADER: <persona>`` (azure-identity App Service)."""
    principal = _persona(req, req.headers.get("x-identity-header", ""), "X-IDENTITY-HEADER")
    resource = req.query.get("resource", "")
    if not resource:
        raise SandboxHttpError(
            arm_error(400, "invalid_resource", "resource: the audience to issue a token for")
        )
    audience = audience_from_scope(resource)
    token, expires_on = issue_token(principal, audience, req.world.tenant_id)
    return SandboxResponse(
        200,
        {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.app_id or principal.object_id,
        },
    )


ROUTES = [
    Route("POST", TOKEN_PATH, issue, "token"),
    Route("GET", IDENTITY_PATH, managed_identity, "token"),
]

"""The front door's check of every bearer token, as each service does it: signature against the authority's
key (RS256 only, never `none`), issuer and tenant, audience of that service, lifetime; then the 401 each
service answers, with its challenge."""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Any, Literal

import jwt

from ppcmk_sandbox.http import ERROR_BUILDERS, Plane, SandboxResponse

if TYPE_CHECKING:
    from ppcmk_sandbox.identity.authority import Authority
    from ppcmk_sandbox.identity.principals import Principal
    from ppcmk_sandbox.world import World

Reason = Literal["missing", "invalid", "expired", "audience", "issuer"]
CLOCK_SKEW_SECONDS = 300  # what Microsoft's token validation tolerates either side of nbf and exp
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# (code, message) per plane and reason; ARM's, Key Vault's AKV10000/10022/10032 and Graph's are the services'
# own, the rest inferred (docs/SANDBOX.md).
_MESSAGES: dict[str, dict[Reason, tuple[str, str]]] = {
    "arm": {
        "missing": ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."),
        "invalid": ("InvalidAuthenticationToken", "The access token is invalid."),
        "expired": (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time '{exp}' is earlier than current UTC time '{now}'.",
        ),
        "audience": (
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource '{found}'. It should "
            "exactly match with one of the allowed audiences '{expected}/','{expected}'.",
        ),
        "issuer": (
            "InvalidAuthenticationTokenTenant",
            "The access token is from the wrong issuer '{found}'. It must match the tenant '{issuer}' "
            "associated with this subscription. Please use the authority (URL) '{authority}' to get the "
            "token.",
        ),
    },
    "keyvault": {
        "missing": ("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
        "invalid": ("Unauthorized", "Invalid token: its signature does not verify."),
        "expired": ("Unauthorized", "Token is expired: it expired at '{exp}' (now '{now}')."),
        "audience": ("Unauthorized", "AKV10022: Invalid audience. Expected {expected}, found: {found}."),
        "issuer": ("Unauthorized", "AKV10032: Invalid issuer. Expected one of {issuer}, found: {found}."),
    },
    "graph": {
        "missing": ("InvalidAuthenticationToken", "Access token is empty."),
        "invalid": ("InvalidAuthenticationToken", "Access token validation failure."),
        "expired": ("InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."),
        "audience": ("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."),
        "issuer": ("InvalidAuthenticationToken", "Access token validation failure. Invalid issuer."),
    },
}
_OTHER: dict[Reason, tuple[str, str]] = {
    "missing": ("MissingAuthenticationToken", "The request has no bearer token."),
    "invalid": ("InvalidAuthenticationToken", "The access token is invalid."),
    "expired": ("ExpiredAuthenticationToken", "The access token expired at '{exp}' (now '{now}')."),
    "audience": (
        "InvalidAuthenticationTokenAudience",
        "The access token is for '{found}', not '{expected}'.",
    ),
    "issuer": ("InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer '{found}'."),
}


def authenticate(
    authority: Authority, world: World, headers: dict[str, str], plane: Plane, audience: str
) -> tuple[Principal | None, SandboxResponse | None]:
    """The caller a valid token names, or the service's 401 (Key Vault: its challenge, the body unread)."""
    authorization = headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    reason, found = _judge(authority, world, token, audience) if token else ("missing", {})
    if reason is None:
        principal = world.identities.get(str(found.get("oid", "")))
        if principal is not None:
            return principal, None
        reason = "invalid"  # signed by the authority, but for nobody in this tenant (any more)
    return None, _refusal(authority, world.tenant_id, plane, audience, reason, found)


def _judge(
    authority: Authority, world: World, token: str, audience: str
) -> tuple[Reason | None, dict[str, Any]]:
    try:
        claims = authority.signed_claims(token)
    except jwt.InvalidTokenError:
        return "invalid", {}
    tenant_id = world.tenant_id
    if claims.get("tid") != tenant_id or claims.get("iss") not in (
        authority.issuer(tenant_id, 1),
        authority.issuer(tenant_id, 2),
    ):
        return "issuer", {"found": claims.get("iss")}
    now = time.time()
    if (
        not isinstance(claims.get("exp"), int)
        or claims["exp"] + CLOCK_SKEW_SECONDS < now
        or (int(claims.get("nbf", 0)) - CLOCK_SKEW_SECONDS > now)
    ):
        return "expired", {"exp": _utc(claims.get("exp")), "now": _utc(now)}
    if str(claims.get("aud", "")).rstrip("/") != audience:
        return "audience", {"found": claims.get("aud")}
    return None, claims


def _refusal(
    authority: Authority, tenant_id: str, plane: Plane, audience: str, reason: Reason, found: dict[str, Any]
) -> SandboxResponse:
    authority_url = f"{authority.origin}/{tenant_id}"
    code, template = _MESSAGES.get(plane, _OTHER)[reason]
    message = template.format(
        expected=audience,
        authority=authority_url,
        issuer=authority.issuer(tenant_id, 1),
        **{"found": "", "exp": "", "now": "", **found},
    )
    response = ERROR_BUILDERS[plane](401, code, message)
    response.headers["WWW-Authenticate"] = challenge(authority_url, plane, audience, message)
    return response


def challenge(authority_url: str, plane: Plane, audience: str, message: str) -> str:
    """The WWW-Authenticate header of a 401. Key Vault names the authority and the resource to ask for (its
    clients take both from it); Graph names its own app; ARM and the others say why the token failed."""
    if plane == "keyvault":
        return f'Bearer authorization="{authority_url}", resource="{audience}"'
    if plane == "graph":
        authorize = f"{authority_url}/oauth2/authorize"
        return f'Bearer realm="", authorization_uri="{authorize}", client_id="{GRAPH_APP_ID}"'
    described = message.replace('"', "'")
    return (
        f'Bearer authorization_uri="{authority_url}", error="invalid_token", error_description="{described}"'
    )


def _utc(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "unknown"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%m/%d/%Y %H:%M:%S")

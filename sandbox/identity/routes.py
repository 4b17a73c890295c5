"""The sandbox authority's endpoints: OpenID Connect discovery (v2.0 and v1.0), the signing keys, the token
endpoints, the sign-in flows and the App-Service-style managed identity endpoint."""

from __future__ import annotations

import re
import time
from typing import Any

from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.identity import interactive
from ppcmk_sandbox.identity.authority import Authority
from ppcmk_sandbox.identity.claims import ACCESS_TOKEN_SECONDS, Grant, UnknownResource, resource_for
from ppcmk_sandbox.identity.grants import authority_of, token_v1, token_v2

IDENTITY_PATH = "/metadata/identity/oauth2/token"
TENANT = interactive.TENANT


def discovery_v2(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """What MSAL reads to find a tenant's endpoints (its `token_endpoint` names the tenant it caches
    under)."""
    authority = authority_of(req)
    tenant_id = authority.tenant(req.world, match["tenant"])
    return SandboxResponse(200, _discovery(authority, tenant_id, 2))


def discovery_v1(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authority = authority_of(req)
    return SandboxResponse(200, _discovery(authority, authority.tenant(req.world, match["tenant"]), 1))


def _discovery(authority: Authority, tenant_id: str, version: int) -> dict[str, Any]:
    base = f"{authority.origin}/{tenant_id}"
    flavour = "/v2.0" if version == 2 else ""
    return {
        "issuer": authority.issuer(tenant_id, version),
        "authorization_endpoint": f"{base}/oauth2{flavour}/authorize",
        "token_endpoint": authority.token_endpoint(tenant_id, version),
        "device_authorization_endpoint": f"{base}/oauth2{flavour}/devicecode",
        "end_session_endpoint": f"{base}/oauth2{flavour}/logout",
        "jwks_uri": f"{base}/discovery{flavour}/keys",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "tid",
            "ver",
            "oid",
            "preferred_username",
            "upn",
            "email",
        ],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "sandbox",
        "msgraph_host": f"{authority.origin.removeprefix('https://')}/v1.0",
    }


def keys_v2(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authority = authority_of(req)
    return SandboxResponse(200, authority.jwks(authority.tenant(req.world, match["tenant"]), 2))


def keys_v1(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authority = authority_of(req)
    return SandboxResponse(200, authority.jwks(authority.tenant(req.world, match["tenant"]), 1))


def managed_identity(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    """`GET {IDENTITY_ENDPOINT}?resource=...` with the host's secret `X-IDENTITY-HEADER` (App Service): a
    token for the identity of the host that header belongs to."""
    authority = authority_of(req)
    name = authority.credentials.by_identity_header(req.headers.get("x-identity-header", ""))
    principal = req.world.identities.find(name) if name else None
    if principal is None:
        raise SandboxHttpError(
            SandboxResponse(
                401, {"statusCode": 401, "message": "The X-IDENTITY-HEADER is missing or not this host's."}
            )
        )
    asked = req.query.get("client_id") or req.query.get("principal_id") or req.query.get("object_id")
    if asked and asked.lower() not in ((principal.app_id or "").lower(), principal.object_id.lower()):
        raise SandboxHttpError(
            SandboxResponse(
                400,
                {
                    "statusCode": 400,
                    "message": "No User Assigned or "
                    "Delegated Managed Identity found for specified ClientId/"
                    "ResourceId/PrincipalId.",
                },
            )
        )
    resource_uri = req.query.get("resource", "")
    try:
        resource = resource_for([f"{resource_uri}/.default"] if resource_uri else [], req.world.identities)
    except UnknownResource:
        raise SandboxHttpError(
            arm_error(400, "invalid_resource", f"resource: no API answers to {resource_uri!r}")
        ) from None
    grant = Grant(principal, principal.app_id or principal.object_id, "2", delegated=False)
    return SandboxResponse(
        200,
        {
            "access_token": authority.access_token(req.world, grant, resource),
            "expires_on": str(int(time.time()) + ACCESS_TOKEN_SECONDS),
            "resource": resource_uri,
            "token_type": "Bearer",
            "client_id": grant.client_id,
        },
    )


ROUTES = [
    Route("GET", rf"{TENANT}/v2\.0/\.well-known/openid-configuration", discovery_v2, "token"),
    Route("GET", rf"{TENANT}/\.well-known/openid-configuration", discovery_v1, "token"),
    Route("GET", rf"{TENANT}/discovery/v2\.0/keys", keys_v2, "token"),
    Route("GET", rf"{TENANT}/discovery/keys", keys_v1, "token"),
    Route("POST", rf"{TENANT}/oauth2/v2\.0/token", token_v2, "token"),
    Route("POST", rf"{TENANT}/oauth2/token", token_v1, "token"),
    Route("GET", IDENTITY_PATH, managed_identity, "token"),
    *interactive.ROUTES,
]

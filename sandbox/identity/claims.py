"""The claims of the tokens the sandbox authority issues, in Entra's v1.0 and v2.0 shapes.

Which shape an access token takes is the resource's choice (its accessTokenAcceptedVersion): Microsoft's APIs
the sandbox serves take v1.0 tokens (issuer `<authority>/<tenant>/`, audience the resource URI as requested,
`appid`, `upn`), a tenant's own API registered with version 2 gets v2.0 (issuer `<authority>/<tenant>/v2.0`,
audience its application id, `azp`, `preferred_username`). ID tokens come from the v2.0 endpoint.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from ppcmk_sandbox.http import AUDIENCES, MANAGED_HSM_AUDIENCE
from ppcmk_sandbox.identity.keys import b64url
from ppcmk_sandbox.identity.principals import Application, Identities, Principal

MICROSOFT_APIS = frozenset([*AUDIENCES.values(), MANAGED_HSM_AUDIENCE])
OIDC_SCOPES = frozenset(["openid", "profile", "offline_access", "email"])
# Entra's default lifetime is a random 60 to 90 minutes; the sandbox answers what app tokens usually show.
ACCESS_TOKEN_SECONDS = 3599
DEFAULT_USER_ROLE_WID = "b79fbf4d-3ef9-4689-8143-76b194e85509"  # every member's `wids`: never an admin role
ClientAuth = Literal["0", "1", "2"]  # appidacr / azpacr: public client, client secret, certificate/assertion


@dataclass(frozen=True)
class Resource:
    """What a token is for: the API named by the requested scopes, and the delegated scopes asked of it."""

    uri: str  # as requested, e.g. https://vault.azure.net or https://service.powerapps.com/
    version: Literal[1, 2]
    app_id: str | None  # a tenant API's application id (the v2.0 audience)
    scope_names: tuple[str, ...]  # ".default" or the API's own scope names

    @property
    def audience(self) -> str:
        return self.app_id if self.version == 2 and self.app_id else self.uri

    def granted(self, api: Application | None) -> str:
        """The `scp` of a person's token: the asked scopes, or for `.default` all of the API's."""
        if ".default" not in self.scope_names:
            return " ".join(self.scope_names)
        return " ".join(api.scopes) if api and api.scopes else "user_impersonation"


class UnknownResource(ValueError):
    """No API of the tenant or of Microsoft answers to the requested scopes."""


def resource_for(scopes: list[str], identities: Identities) -> Resource:
    """The one API that `scopes` (OpenID scopes aside) name: `<resource>/<scope>` each."""
    named = [scope for scope in scopes if scope not in OIDC_SCOPES]
    if not named:
        raise UnknownResource("")
    uri = named[0].rsplit("/", 1)[0] if "/" in named[0] else named[0]
    names = tuple(scope.rsplit("/", 1)[-1] for scope in named if scope.startswith(uri))
    if uri.rstrip("/") in MICROSOFT_APIS:
        return Resource(uri, 1, None, names)
    api = identities.api(uri)
    if api is None:
        raise UnknownResource(uri)
    return Resource(uri, api.access_token_version, api.app_id, names)


@dataclass(frozen=True)
class Grant:
    """Who a token is for and how they proved it: a person signed in (delegated) or an application alone."""

    principal: Principal
    client_id: str
    client_auth: ClientAuth
    delegated: bool


def _pairwise_subject(object_id: str, client_id: str) -> str:
    """`sub` is unique per principal and application (pairwise); an app-only token's `sub` is its `oid`."""
    return b64url(hashlib.sha256(f"{object_id}:{client_id}".encode()).digest())


def _opaque() -> str:
    return b64url(secrets.token_bytes(16))


def access_token_claims(
    grant: Grant, resource: Resource, api: Application | None, issuer: str, tenant_id: str, now: int
) -> dict[str, Any]:
    principal = grant.principal
    claims: dict[str, Any] = {
        "aud": resource.audience,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TOKEN_SECONDS,
        "aio": _opaque(),
        "idtyp": "user" if grant.delegated else "app",
        "oid": principal.object_id,
        "rh": _opaque(),
        "tid": tenant_id,
        "uti": _opaque(),
        "ver": f"{resource.version}.0",
    }
    client = (
        {"azp": grant.client_id, "azpacr": grant.client_auth}
        if resource.version == 2
        else {"appid": grant.client_id, "appidacr": grant.client_auth}
    )
    claims.update(client)
    wids = list(principal.wids)
    if grant.delegated:
        wids.append(DEFAULT_USER_ROLE_WID)
        claims.update(
            _person(principal, resource.version),
            scp=resource.granted(api),
            amr=["pwd"],
            sub=_pairwise_subject(principal.object_id, grant.client_id),
        )
    else:
        claims.update(sub=principal.object_id, idp=issuer)
    if wids:
        claims["wids"] = wids
    return claims


def _person(principal: Principal, version: int) -> dict[str, Any]:
    if version == 2:
        return {"name": principal.display_name, "preferred_username": principal.upn}
    return {
        "name": principal.display_name,
        "upn": principal.upn,
        "unique_name": principal.upn,
        "acr": "1",
        "ipaddr": "127.0.0.1",
    }


def id_token_claims(
    principal: Principal, client_id: str, issuer: str, tenant_id: str, now: int, nonce: str | None
) -> dict[str, Any]:
    """A v2.0 ID token: who signed in, for the client that asked (`aud` = its application id)."""
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TOKEN_SECONDS,
        "name": principal.display_name,
        "oid": principal.object_id,
        "preferred_username": principal.upn,
        "sub": _pairwise_subject(principal.object_id, client_id),
        "tid": tenant_id,
        "uti": _opaque(),
        "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    return claims


def client_info(principal: Principal, tenant_id: str) -> str:
    """What MSAL keys its account cache on: base64url JSON of the object id and the tenant."""
    return b64url(json.dumps({"uid": principal.object_id, "utid": tenant_id}).encode())

"""The token endpoints (`/{tenant}/oauth2/v2.0/token` with `scope`, `/{tenant}/oauth2/token` with `resource`)
and their grants: client credentials, device code, authorization code with PKCE, refresh token."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse
from ppcmk_sandbox.identity.authority import Authority
from ppcmk_sandbox.identity.claims import Grant, Resource, UnknownResource, resource_for
from ppcmk_sandbox.identity.client_auth import authenticate_client
from ppcmk_sandbox.identity.errors import aad_error
from ppcmk_sandbox.identity.keys import b64url
from ppcmk_sandbox.identity.principals import Application, Principal

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def already_redeemed() -> SandboxHttpError:
    return aad_error(
        "invalid_grant",
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with "
        "a new valid code or use an existing refresh token.",
    )


def expired_grant() -> SandboxHttpError:
    return aad_error(
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due "
        "to inactivity. Send a new interactive authorization request for this user and resource.",
    )


def form_of(req: SandboxRequest) -> dict[str, str]:
    return dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))


def authority_of(req: SandboxRequest) -> Authority:
    assert req.authority is not None  # the front door hands every request its sandbox's authority
    return req.authority


def token_v2(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    form = form_of(req)
    return SandboxResponse(200, _grant(req, match["tenant"], form, form.get("scope", "").split()))


def token_v1(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """The v1.0 endpoint names the API with `resource`; its answer adds string times and the resource."""
    form = form_of(req)
    resource = form.get("resource", "")
    body = _grant(req, match["tenant"], form, [f"{resource}/.default"] if resource else [])
    now = int(time.time())
    body.update({key: str(value) for key, value in body.items() if key in ("expires_in", "ext_expires_in")})
    body.update(expires_on=str(now + int(body["expires_in"])), not_before=str(now), resource=resource)
    return SandboxResponse(200, body)


def _grant(req: SandboxRequest, tenant_alias: str, form: dict[str, str], scopes: list[str]) -> dict[str, Any]:
    tenant_id = authority_of(req).tenant(req.world, tenant_alias)
    grant_type = form.get("grant_type", "")
    redeem = GRANTS.get(grant_type)
    if redeem is None:
        raise aad_error(
            "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )
    return redeem(req, form, scopes, tenant_id)


def requested_resource(req: SandboxRequest, scopes: list[str], tenant_id: str) -> Resource:
    try:
        return resource_for(scopes, req.world.identities)
    except UnknownResource as unknown:
        if not str(unknown):
            raise aad_error(
                "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            ) from None
        raise aad_error(
            "invalid_resource",
            500011,
            f"The resource principal named {unknown} was not found in "
            f"the tenant named {tenant_id}. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You might have sent your authentication request to the wrong tenant.",
        ) from None


def public_client(req: SandboxRequest, client_id: str, tenant_id: str) -> Application:
    """A person signs in to a registered public client (the Azure CLI is built in)."""
    application = req.world.identities.application(client_id)
    if application is None or not application.public_client:
        raise aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'.",
        )
    return application


def _client_credentials(
    req: SandboxRequest, form: dict[str, str], scopes: list[str], tenant_id: str
) -> dict[str, Any]:
    authority = authority_of(req)
    principal, client_id, proof = authenticate_client(req, authority, form, tenant_id)
    resource = requested_resource(req, scopes, tenant_id)
    if resource.scope_names != (".default",):
        raise aad_error(
            "invalid_scope",
            1002012,
            f"The provided value for scope {' '.join(scopes)} is not "
            "valid. Client credential flows must have a scope value with /.default suffixed to the "
            "resource identifier (application ID URI).",
        )
    return authority.app_tokens(req.world, Grant(principal, client_id, proof, delegated=False), resource)


def person_tokens(
    req: SandboxRequest,
    object_id: str,
    client_id: str,
    scopes: list[str],
    tenant_id: str,
    nonce: str | None = None,
) -> dict[str, Any]:
    """What a person's sign-in (or refresh) answers: tokens for the API the scopes name."""
    principal = req.world.identities.get(object_id)
    if principal is None:
        raise aad_error(
            "invalid_grant",
            50034,
            f"The user account {object_id} does not exist in the {tenant_id} directory.",
        )
    resource = requested_resource(req, scopes, tenant_id)
    named = [scope for scope in scopes if scope.startswith(resource.uri)]
    grant = Grant(principal, client_id, "0", delegated=True)
    return authority_of(req).user_tokens(req.world, grant, resource, named, nonce)


def _device_code(
    req: SandboxRequest, form: dict[str, str], scopes: list[str], tenant_id: str
) -> dict[str, Any]:
    flow = authority_of(req).sign_ins.device_flow(form.get("device_code", ""))
    if flow is None or flow.client_id != form.get("client_id"):
        raise aad_error(
            "invalid_grant", 70000, "The provided value for the input parameter 'device_code' is not valid."
        )
    if flow.redeemed:
        raise already_redeemed()
    if flow.expires_at <= time.time():
        raise aad_error("expired_token", 70019, "Verification code expired.")
    if flow.signed_in is None:
        raise aad_error(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
    flow.redeemed = True
    return person_tokens(req, flow.signed_in, flow.client_id, flow.scopes, tenant_id)


def _authorization_code(
    req: SandboxRequest, form: dict[str, str], scopes: list[str], tenant_id: str
) -> dict[str, Any]:
    authorization = authority_of(req).sign_ins.authorization(form.get("code", ""))
    if (
        authorization is None
        or authorization.signed_in is None
        or authorization.client_id != form.get("client_id")
    ):
        raise aad_error(
            "invalid_grant", 70000, "The provided value for the input parameter 'code' is not valid."
        )
    if authorization.redeemed:
        raise already_redeemed()
    if authorization.expires_at <= time.time():
        raise expired_grant()
    if form.get("redirect_uri") != authorization.redirect_uri:
        raise aad_error(
            "invalid_grant",
            50011,
            f"The redirect URI '{form.get('redirect_uri')}' specified in "
            "the request does not match the redirect URI of the authorization request.",
        )
    verifier = form.get("code_verifier", "")
    if authorization.code_challenge and b64url(hashlib.sha256(verifier.encode()).digest()) != (
        authorization.code_challenge
    ):
        raise aad_error(
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        )
    authorization.redeemed = True
    return person_tokens(
        req,
        authorization.signed_in,
        authorization.client_id,
        scopes or authorization.scopes,
        tenant_id,
        authorization.nonce,
    )


def _refresh_token(
    req: SandboxRequest, form: dict[str, str], scopes: list[str], tenant_id: str
) -> dict[str, Any]:
    grant = authority_of(req).sign_ins.refresh_grant(form.get("refresh_token", ""))
    if grant is None or grant.client_id != form.get("client_id"):
        raise expired_grant()
    return person_tokens(req, grant.object_id, grant.client_id, scopes, tenant_id)


GRANTS: dict[str, Callable[[SandboxRequest, dict[str, str], list[str], str], dict[str, Any]]] = {
    "client_credentials": _client_credentials,
    DEVICE_CODE_GRANT: _device_code,
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
}


def signed_in_person(req: SandboxRequest, login: str, password: str) -> Principal | str:
    """The person a sign-in page's username and password prove, or the page's refusal text."""
    principal = req.world.identities.find(login.strip()) if login.strip() else None
    if (
        principal is None
        or principal.kind != "User"
        or not principal.upn
        or (principal.upn.lower() != login.strip().lower())
    ):
        return (
            f"AADSTS50034: The user account {login} does not exist in the {req.world.tenant_id} directory. "
            "To sign into this application, the account must be added to the directory."
        )
    if not authority_of(req).credentials.password_matches(principal.name, password):
        return "AADSTS50126: Error validating credentials due to invalid username or password."
    return principal

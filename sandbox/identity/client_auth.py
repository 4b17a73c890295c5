"""How a confidential client proves itself at the token endpoint: a client secret (form body or HTTP Basic), a
client assertion signed with its registered certificate, or a federated token from a trusted workload issuer
(workload identity federation)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import jwt

from ppcmk_sandbox.identity.claims import ClientAuth
from ppcmk_sandbox.identity.credentials import FEDERATED_AUDIENCE, federated_subject
from ppcmk_sandbox.identity.errors import aad_error
from ppcmk_sandbox.identity.principals import Principal

if TYPE_CHECKING:
    from ppcmk_sandbox.http import SandboxRequest
    from ppcmk_sandbox.identity.authority import Authority

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LEEWAY_SECONDS = 300  # clock skew Entra tolerates on an assertion's lifetime


def authenticate_client(
    req: SandboxRequest, authority: Authority, form: dict[str, str], tenant_id: str
) -> tuple[Principal, str, ClientAuth]:
    """The principal a confidential client signs in as, its client id and how it proved itself."""
    basic_id, basic_secret = _basic(req.headers.get("authorization", ""))
    client_id = form.get("client_id") or basic_id
    principal = req.world.identities.by_client_id(client_id) if client_id else None
    if principal is None:
        raise aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not "
            f"found in the directory '{tenant_id}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the tenant. "
            "You may have sent your authentication request to the wrong tenant.",
        )
    secret = form.get("client_secret") or basic_secret
    if secret:
        if not authority.credentials.secret_matches(principal.name, secret):
            raise aad_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being "
                "sent in the request is the client secret value, not the client secret ID, for a "
                f"secret added to app '{client_id}'.",
            )
        return principal, client_id, "1"
    assertion = form.get("client_assertion", "")
    if assertion and form.get("client_assertion_type") == ASSERTION_TYPE:
        _check_assertion(authority, principal, client_id, assertion, tenant_id)
        return principal, client_id, "2"
    raise aad_error(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def _basic(authorization: str) -> tuple[str, str]:
    """client_secret_basic: `Basic base64(urlencoded id ":" urlencoded secret)`."""
    if not authorization.lower().startswith("basic "):
        return "", ""
    try:
        decoded = base64.b64decode(authorization[6:].strip()).decode()
    except ValueError:
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)


def _check_assertion(
    authority: Authority, principal: Principal, client_id: str, assertion: str, tenant_id: str
) -> None:
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise aad_error("invalid_client", 50027, "JWT token is invalid or malformed.") from None
    if claims.get("iss") == client_id:
        _certificate_assertion(authority, principal, assertion, header, claims, tenant_id)
    else:
        _federated_assertion(authority, principal, assertion, claims)


def _certificate_assertion(
    authority: Authority,
    principal: Principal,
    assertion: str,
    header: dict[str, Any],
    claims: dict[str, Any],
    tenant_id: str,
) -> None:
    """Signed with the app's registered certificate (named by `x5t` or `x5t#S256`), for this endpoint."""
    pair = authority.credentials.certificate(principal.name)
    # MSAL writes x5t in padded standard base64, the JOSE spec in base64url: compare the digests
    thumbprint = (
        (header.get("x5t") or header.get("x5t#S256") or "").rstrip("=").replace("+", "-").replace("/", "_")
    )
    if pair is None or thumbprint not in (pair.thumbprint_sha1, pair.thumbprint_sha256):
        raise aad_error(
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client "
            f"assertion is not registered on application. Thumbprint of key used by client: "
            f"'{thumbprint}'.",
        )
    audiences = [authority.token_endpoint(tenant_id, 2), authority.token_endpoint(tenant_id, 1)]
    _verified(
        lambda: pair.verify(
            assertion,
            ("RS256", "PS256"),
            audience=audiences,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "aud", "sub"]},
        )
    )
    if claims.get("sub") != claims.get("iss"):
        raise aad_error(
            "invalid_client", 50027, "JWT token is invalid or malformed: its subject is not the client id."
        )


def _federated_assertion(
    authority: Authority, principal: Principal, assertion: str, claims: dict[str, Any]
) -> None:
    """A federated identity credential of the app matches the assertion's issuer, subject and audience."""
    credentials = authority.credentials
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    matches = (
        claims.get("iss") == credentials.workload_issuer
        and claims.get("sub") == federated_subject(principal.name)
        and FEDERATED_AUDIENCE in audiences
    )
    if principal.kind != "ServicePrincipal" or not matches:
        raise aad_error(
            "invalid_request",
            70021,
            "No matching federated identity record found for presented "
            f"assertion. Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
            f"'{claims.get('sub')}'. Assertion Audience: '{audience}'.",
        )
    _verified(
        lambda: credentials.workload_key.verify(assertion, audience=FEDERATED_AUDIENCE, leeway=LEEWAY_SECONDS)
    )


def _verified(check: Callable[[], object]) -> None:
    """Run a signature and lifetime check, turning its failure into Entra's refusal."""
    try:
        check()
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
        raise aad_error(
            "invalid_client", 700024, "Client assertion is not within its valid time range."
        ) from None
    except jwt.InvalidAudienceError:
        raise aad_error(
            "invalid_client",
            50027,
            "JWT token is invalid or malformed: the audience is not this token endpoint.",
        ) from None
    except jwt.InvalidTokenError:
        raise aad_error("invalid_client", 700027, "Client assertion failed signature validation.") from None

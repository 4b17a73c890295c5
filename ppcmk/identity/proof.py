"""A person's proof: an access token the tenant's identity provider issued to them for the approvals app, an
app registration that exposes one scope and no API, so the token opens nothing anywhere. The run verifies it
itself (the Microsoft identity platform's rules for a resource server): the RS256 signature against the
tenant's published keys, the issuer and tenant, the audience (the approvals app) and scope, a user's token
(not an app's), its lifetime, and that it was issued after the question was asked and only minutes ago. What
comes out (`ProvenPerson`) holds the claims that say who, never the token: a token is a bearer credential
until it expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from pydantic import BaseModel, Field

from ppcmk.errors import ProofRefused
from ppcmk.identity.keys import TenantKeys

ALGORITHMS = ["RS256"]  # never taken from the token: `none` and HMAC tricks fail here
LEEWAY_S = 120  # clock skew allowed between the identity provider and the run's host
PROOF_MAX_AGE_S = 600  # a proof older than this is not "at the moment they act"


@dataclass(frozen=True)
class Expected:
    """What a proof must be: for this tenant's approvals app and scope, issued after `asked_at` (epoch
    seconds, wall clock: tokens carry wall-clock times whatever the cloud's clock says)."""

    tenant_id: str
    audiences: tuple[str, ...]  # the approvals app's client id, and its identifier URI (v1 tokens carry it)
    scope: str
    asked_at: float
    max_age_s: int = PROOF_MAX_AGE_S


class ProvenPerson(BaseModel):
    """Who a verified proof says answered: the claims, never the token."""

    object_id: str
    tenant_id: str
    name: str = Field(description="the sign-in name (UPN) the token carries, for people to read")
    roles: tuple[str, ...] = Field(default=(), description="Entra directory role template ids (`wids`)")
    token_id: str = Field(description="`uti`: the token's unique id, which may be used once")
    issued_at: int
    expires_at: int


def verify(token: str, expected: Expected, keys: TenantKeys, now: float | None = None) -> ProvenPerson:
    """The person the proof names, or `ProofRefused` saying why not."""
    claims = _signed_claims(token.strip(), expected, keys)
    now = time.time() if now is None else now
    _check_person(claims)
    _check_lifetime(claims, expected, now)
    if expected.scope not in str(claims.get("scp", "")).split():
        raise ProofRefused(f"the proof is not for the {expected.scope} scope of the approvals app")
    return ProvenPerson(object_id=str(claims["oid"]), tenant_id=str(claims["tid"]),
                        name=str(claims.get("preferred_username") or claims.get("upn") or claims["oid"]),
                        roles=tuple(str(r) for r in claims.get("wids") or ()), token_id=str(claims["uti"]),
                        issued_at=int(claims["iat"]), expires_at=int(claims["exp"]))


def _signed_claims(token: str, expected: Expected, keys: TenantKeys) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise ProofRefused("the proof is not a token: paste the whole access token") from None
    if header.get("alg") not in ALGORITHMS:
        raise ProofRefused(f"the proof is not signed by the identity provider (alg {header.get('alg')!r})")
    key, issuer = keys.signing_key(str(header.get("kid", "")), _version(token))
    try:
        # the lifetime is judged on the caller's clock (`verify`'s `now`), the rest by PyJWT
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=ALGORITHMS, audience=list(expected.audiences), issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "oid", "tid", "uti"], "verify_exp": False,
                     "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidAudienceError:
        raise ProofRefused("the proof is for another application, not the approvals app") from None
    except jwt.InvalidIssuerError:
        raise ProofRefused("the proof comes from another identity provider or tenant") from None
    except jwt.InvalidSignatureError:
        raise ProofRefused("the proof's signature is not the identity provider's: altered or forged") \
            from None
    except jwt.PyJWTError as bad:
        raise ProofRefused(f"the proof is not valid: {bad}") from None
    if str(claims["tid"]).lower() != expected.tenant_id.lower():
        raise ProofRefused("the proof comes from another tenant")
    return claims


def _version(token: str) -> int:
    """The token's own version (v1 and v2 tokens have their own issuer and keys); unverified, only to pick
    which issuer to check it against."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return 1 if str(claims.get("ver", "2.0")).startswith("1") else 2


def _check_person(claims: dict[str, Any]) -> None:
    if claims.get("idtyp") == "app" or "scp" not in claims:
        raise ProofRefused("the proof is an application's token: a person must sign in")


def _check_lifetime(claims: dict[str, Any], expected: Expected, now: float) -> None:
    if now > int(claims["exp"]) + LEEWAY_S:
        raise ProofRefused("the proof has expired: sign in again now")
    if now < int(claims.get("nbf", claims["iat"])) - LEEWAY_S:
        raise ProofRefused("the proof is not valid yet: check the clock of this machine")
    issued = int(claims["iat"])
    if issued < expected.asked_at - LEEWAY_S:
        raise ProofRefused("the proof was issued before the question was asked: sign in again now")
    if now - issued > expected.max_age_s + LEEWAY_S:
        raise ProofRefused(f"the proof is older than {expected.max_age_s // 60} minutes: sign in again now")

"""The sandbox's Entra-shaped authority: its signing key, issuers, the proofs of every principal and the
sign-ins in progress. Tokens expire in real (wall-clock) time, not on the virtual clock: clients cache them
by the wall clock, and a test that moves the virtual clock by months must not expire every cached token.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from ppcmk_sandbox.identity.claims import (
    ACCESS_TOKEN_SECONDS,
    Grant,
    Resource,
    access_token_claims,
    client_info,
    id_token_claims,
)
from ppcmk_sandbox.identity.credentials import TenantCredentials
from ppcmk_sandbox.identity.errors import aad_error
from ppcmk_sandbox.identity.keys import KeyPair
from ppcmk_sandbox.identity.signins import SignIns

if TYPE_CHECKING:
    from ppcmk_sandbox.world import World

VERIFIED_CACHE_SIZE = 4096
TENANT_ALIASES = ("organizations", "common")


class Authority:
    """One per sandbox; its files live in the sandbox home beside the CA."""

    def __init__(self, home: Path, origin: str) -> None:
        self.origin = origin.rstrip("/")
        self.signing = KeyPair.load_or_create(home / "authority-signing.pem", "ppcmk sandbox token signing")
        workload = KeyPair.load_or_create(home / "workload-issuer.pem", "ppcmk sandbox workload issuer")
        self.credentials = TenantCredentials(home, f"{self.origin}/workload-issuer", workload)
        self.sign_ins = SignIns()
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._guard = threading.Lock()

    def issuer(self, tenant_id: str, version: int) -> str:
        return f"{self.origin}/{tenant_id}/v2.0" if version == 2 else f"{self.origin}/{tenant_id}/"

    def token_endpoint(self, tenant_id: str, version: int = 2) -> str:
        return f"{self.origin}/{tenant_id}/oauth2/{'v2.0/' if version == 2 else ''}token"

    def tenant(self, world: World, alias: str) -> str:
        """The tenant id a path names: its id, a verified domain (the people's UPN suffix) or an alias."""
        domains = {(p.upn or "").partition("@")[2].lower() for p in world.identities.all()}
        if alias.lower() in (world.tenant_id, *TENANT_ALIASES) or alias.lower() in domains - {""}:
            return world.tenant_id
        raise aad_error(
            "invalid_request",
            90002,
            f"Tenant '{alias}' not found. Check to make sure you have the "
            "correct tenant ID and are signing into the correct cloud.",
        )

    def jwks(self, tenant_id: str, version: int) -> dict[str, Any]:
        return {"keys": [self.signing.jwk(self.issuer(tenant_id, version))]}

    def sign(self, claims: dict[str, Any]) -> str:
        """v1.0 tokens carry `x5t` beside `kid` in their header, v2.0 tokens `kid` alone."""
        header = {"x5t": self.signing.thumbprint_sha1} if claims.get("ver") != "2.0" else {}
        return self.signing.sign(claims, **header)

    def signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token this authority signed (RS256 with its key, nothing else); raises
        jwt.InvalidTokenError. Verified tokens are remembered, so a client's every call costs one lookup."""
        with self._guard:
            cached = self._verified.get(token)
        if cached is not None:
            return cached
        if jwt.get_unverified_header(token).get("kid") != self.signing.thumbprint_sha1:
            raise jwt.InvalidSignatureError("the token names no signing key of this authority")
        # the signature only: the front door judges issuer, audience and lifetime, each with its own answer
        claims = self.signing.verify(
            token,
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
        with self._guard:
            self._verified[token] = claims
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def access_token(self, world: World, grant: Grant, resource: Resource) -> str:
        api = world.identities.api(resource.uri) if resource.app_id else None
        issuer = self.issuer(world.tenant_id, resource.version)
        issued = int(time.time() + world.settings.token_clock_offset_seconds)
        return self.sign(access_token_claims(grant, resource, api, issuer, world.tenant_id, issued))

    def app_tokens(self, world: World, grant: Grant, resource: Resource) -> dict[str, Any]:
        """The token endpoint's answer to a client-credentials grant (no refresh token, no ID token)."""
        return {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "ext_expires_in": ACCESS_TOKEN_SECONDS,
            "access_token": self.access_token(world, grant, resource),
        }

    def user_tokens(
        self, world: World, grant: Grant, resource: Resource, scopes: list[str], nonce: str | None = None
    ) -> dict[str, Any]:
        """The answer to a person's sign-in or refresh: access, refresh and ID tokens and the client info."""
        principal = grant.principal
        id_claims = id_token_claims(
            principal,
            grant.client_id,
            self.issuer(world.tenant_id, 2),
            world.tenant_id,
            int(time.time()),
            nonce,
        )
        refresh = self.sign_ins.new_refresh_token(principal.object_id, grant.client_id)
        return {
            **self.app_tokens(world, grant, resource),
            "scope": " ".join(scopes),
            "refresh_token": refresh,
            "id_token": self.sign(id_claims),
            "client_info": client_info(principal, world.tenant_id),
        }

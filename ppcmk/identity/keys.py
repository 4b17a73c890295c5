"""A tenant's published signing keys and issuers, read from its OpenID Connect discovery documents (v1.0 and
v2.0 each have their own issuer and key set) over TLS verified with the connection's trust (the sandbox's CA
like a corporate TLS-inspection CA). Keys are cached; an unknown key id reads the set again, at most once per
`REFETCH_COOLDOWN_S`, so that a forged key id cannot make a verifier hammer the identity provider."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from jwt import PyJWK

from ppcmk import USER_AGENT
from ppcmk.errors import ProofRefused

REFETCH_COOLDOWN_S = 30.0


class TenantKeys:
    def __init__(self, authority: str, tenant_id: str, ca_bundle: str | None = None,
                 timeout: float = 30.0) -> None:
        origin = authority if authority.startswith("https://") else f"https://{authority}"
        self._origin, self._tenant = origin.rstrip("/"), tenant_id
        self._verify: str | bool = ca_bundle or True
        self._timeout = timeout
        self._issuers: dict[int, str] = {}
        self._keys: dict[tuple[int, str], PyJWK] = {}
        self._read_at: dict[int, float] = {}
        self._lock = threading.Lock()

    def signing_key(self, kid: str, version: int) -> tuple[PyJWK, str]:
        """The key that signed a token of this version, and the issuer such a token must name."""
        with self._lock:
            if (version, kid) not in self._keys and self._may_read(version):
                self._read(version)
            key = self._keys.get((version, kid))
        if key is None:
            raise ProofRefused("the proof is not signed by a key the tenant publishes")
        return key, self._issuers[version]

    def _may_read(self, version: int) -> bool:
        return time.monotonic() - self._read_at.get(version, -REFETCH_COOLDOWN_S) >= REFETCH_COOLDOWN_S

    def _read(self, version: int) -> None:
        path = "v2.0/.well-known/openid-configuration" if version == 2 else ".well-known/openid-configuration"
        discovery = self._get(f"{self._origin}/{self._tenant}/{path}")
        self._issuers[version] = str(discovery["issuer"]).replace("{tenantid}", self._tenant)
        for entry in self._get(str(discovery["jwks_uri"])).get("keys", []):
            if entry.get("kid") and entry.get("use", "sig") == "sig" and entry.get("kty") == "RSA":
                self._keys[(version, str(entry["kid"]))] = PyJWK(entry, algorithm="RS256")
        self._read_at[version] = time.monotonic()

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, verify=self._verify, timeout=self._timeout,
                                 headers={"User-Agent": USER_AGENT})
            response.raise_for_status()
        except httpx.HTTPError as unreachable:
            raise ProofRefused(f"the identity provider's keys could not be read ({unreachable}); "
                               "try again") from None
        document: dict[str, Any] = response.json()
        return document

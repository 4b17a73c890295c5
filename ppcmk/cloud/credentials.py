"""Token credentials for every connection mode.

Real clouds use azure-identity. The sandbox has its own token issuer; `SandboxCredential` asks it for
tokens for one persona over TLS verified with the sandbox CA, and caches each scope's token until
shortly before it expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError

from ppcmk import USER_AGENT
from ppcmk.cloud.settings import ConnectionSettings

# Refresh a cached token when less than this many seconds of its life remain (as azure-core does).
REFRESH_MARGIN = 300


class SandboxCredential:
    """Gets bearer tokens for a sandbox persona from the sandbox token endpoint.

    Sandbox tokens expire in wall-clock time (like the SDKs' own token caches), even in virtual time.
    """

    def __init__(self, token_endpoint: str, principal: str, ca_bundle: str, timeout: float = 30.0) -> None:
        self._endpoint = token_endpoint
        self._principal = principal
        self._http = httpx.Client(verify=ca_bundle, timeout=timeout, headers={"User-Agent": USER_AGENT})
        self._cache: dict[str, AccessTokenInfo] = {}
        self._lock = threading.Lock()

    @property
    def principal(self) -> str:
        return self._principal

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        info = self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        if not scopes:
            raise ValueError("get_token_info needs at least one scope")
        scope = scopes[0]
        with self._lock:
            cached = self._cache.get(scope)
            if cached is not None and cached.expires_on - time.time() > REFRESH_MARGIN:
                return cached
            fresh = self._request(scope)
            self._cache[scope] = fresh
            return fresh

    def _request(self, scope: str) -> AccessTokenInfo:
        response = self._http.post(self._endpoint, json={"principal": self._principal, "scope": scope})
        if response.status_code != 200:
            # The body names the problem (unknown persona, bad scope); it never carries a token on failure.
            raise ClientAuthenticationError(
                f"sandbox token endpoint refused {self._principal!r} for {scope}: "
                f"HTTP {response.status_code} {response.text[:300]}")
        body = response.json()
        return AccessTokenInfo(body["access_token"], int(body["expires_on"]))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_credential(settings: ConnectionSettings) -> TokenCredential:
    """The credential for a connection's mode. Nothing here sends a request until a token is needed."""
    mode = settings.credential_mode
    endpoints = settings.endpoints
    if mode == "sandbox":
        assert endpoints.token_endpoint and settings.ca_bundle  # guaranteed by ConnectionSettings validation
        return SandboxCredential(endpoints.token_endpoint, settings.sandbox_principal, settings.ca_bundle,
                                 timeout=settings.request_timeout)
    from azure import identity

    authority = endpoints.authority
    if mode == "client_secret":
        assert settings.client_id and settings.client_secret
        return identity.ClientSecretCredential(settings.tenant_id, settings.client_id,
                                               settings.client_secret.get_secret_value(), authority=authority)
    if mode == "workload_identity":
        return identity.WorkloadIdentityCredential(tenant_id=settings.tenant_id, client_id=settings.client_id,
                                                   authority=authority)
    if mode == "managed_identity":
        verify: dict[str, Any] = {"connection_verify": settings.ca_bundle} if settings.ca_bundle else {}
        # No connect retries inside the token request: the caller's retries already cover a refused
        # connection, and stop at a certificate failure, which each layer of retries would repeat.
        return identity.ManagedIdentityCredential(client_id=settings.client_id, retry_connect=0, **verify)
    return identity.DefaultAzureCredential(authority=authority, managed_identity_client_id=settings.client_id)

"""Test helpers: a static TokenCredential per persona (tokens from the sandbox token endpoint) and the
real Azure SDK clients built against a running sandbox."""

from __future__ import annotations

import time
from typing import Any

import httpx
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient
from azure.mgmt.keyvault import KeyVaultManagementClient

from sandbox import Sandbox


class PersonaCredential:
    """Asks the sandbox token endpoint for a token of ``persona``, once per scope."""

    def __init__(self, cloud: Sandbox, persona: str) -> None:
        self._endpoints = cloud.endpoints
        self._persona = persona
        self._tokens: dict[str, AccessTokenInfo] = {}

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        scope = scopes[0]
        cached = self._tokens.get(scope)
        if cached is None or cached.expires_on < time.time() + 300:
            response = httpx.post(
                self._endpoints.token,
                json={"principal": self._persona, "scope": scope},
                verify=self._endpoints.ca,
            )
            response.raise_for_status()
            body = response.json()
            cached = self._tokens[scope] = AccessTokenInfo(body["access_token"], int(body["expires_on"]))
        return cached

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        info = self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    def close(self) -> None:
        """Nothing to release."""


def key_client(cloud: Sandbox, vault: str, persona: str = "kv-admin", **kwargs: Any) -> KeyClient:
    return KeyClient(
        cloud.endpoints.vaults[vault],
        PersonaCredential(cloud, persona),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
        retry_backoff_factor=0,
        **kwargs,
    )


def crypto_client(cloud: Sandbox, key_id: str, persona: str = "kv-admin") -> CryptographyClient:
    return CryptographyClient(
        key_id,
        PersonaCredential(cloud, persona),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
        retry_backoff_factor=0,
    )


def keyvault_mgmt(cloud: Sandbox, persona: str = "kv-admin") -> KeyVaultManagementClient:
    return KeyVaultManagementClient(
        PersonaCredential(cloud, persona),
        cloud.endpoints.subscription_id,
        base_url=cloud.endpoints.arm,
        connection_verify=cloud.endpoints.ca,
        polling_interval=0,
        retry_backoff_factor=0,
    )


def http(
    cloud: Sandbox, persona: str | None = None, audience: str = "https://management.azure.com"
) -> httpx.Client:
    """A plain HTTPS client for the main origin, with a bearer token of ``persona`` when given."""
    headers = {"Authorization": f"Bearer {cloud.token_for(persona, audience)}"} if persona else {}
    return httpx.Client(base_url=cloud.endpoints.url, verify=cloud.endpoints.ca, headers=headers)

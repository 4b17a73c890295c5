"""The unmodified Azure SDK clients and plain HTTPS clients the sandbox's contract tests talk to it with, per
persona (tokens from the sandbox authority through azure-identity's ClientSecretCredential, with the persona's
secret from the sandbox's credentials file): no ppcmk factory in between, so a test sees exactly what the
service answers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.powerplatform import PowerPlatformMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient

from ppcmk_cli.sandbox_blocks import service_credential
from ppcmk_sandbox import Sandbox

BAP = "/providers/Microsoft.BusinessAppPlatform"


class ServiceIdentity:
    """A Microsoft service's own identity (an enterprise policy's), as the service hosting it signs in: at the
    sandbox's managed-identity endpoint with that identity's header (`Sandbox.token_for`)."""

    def __init__(self, cloud: Sandbox, principal: str) -> None:
        self._cloud = cloud
        self._principal = principal

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        info = self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token = self._cloud.token_for(self._principal, scopes[0])
        return AccessTokenInfo(token, int(jwt.decode(token, options={"verify_signature": False})["exp"]))


def credential(cloud: Any, persona: str) -> ClientSecretCredential | ServiceIdentity:
    """The unmodified ClientSecretCredential of a persona (a service principal or an admin's stand-in app)."""
    endpoints = cloud.endpoints
    if cloud.world.identities.require(persona).trusted_service:
        return ServiceIdentity(cloud, persona)
    held = service_credential(endpoints.credentials, persona)
    return ClientSecretCredential(endpoints.tenant_id, held["client_id"], held["client_secret"],
                                  authority=endpoints.authority, disable_instance_discovery=True,
                                  connection_verify=endpoints.ca)


def key_client(cloud: Sandbox, vault: str, persona: str = "kv-admin", **kwargs: Any) -> KeyClient:
    return KeyClient(
        cloud.endpoints.vaults[vault],
        credential(cloud, persona),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
        retry_backoff_factor=0,
        **kwargs,
    )


def crypto_client(cloud: Sandbox, key_id: str, persona: str = "kv-admin") -> CryptographyClient:
    return CryptographyClient(
        key_id,
        credential(cloud, persona),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
        retry_backoff_factor=0,
    )


def keyvault_mgmt(cloud: Sandbox, persona: str = "kv-admin") -> KeyVaultManagementClient:
    return KeyVaultManagementClient(
        credential(cloud, persona), cloud.endpoints.subscription_id, **_arm_kwargs(cloud)
    )


def http(
    cloud: Sandbox, persona: str | None = None, audience: str = "https://management.azure.com"
) -> httpx.Client:
    """A plain HTTPS client for the main origin, with a bearer token of ``persona`` when given."""
    headers = {"Authorization": f"Bearer {cloud.token_for(persona, audience)}"} if persona else {}
    return httpx.Client(base_url=cloud.endpoints.url, verify=cloud.endpoints.ca, headers=headers)


def role_definition_id(cloud: Any, guid: str) -> str:
    subscription = f"/subscriptions/{cloud.endpoints.subscription_id}"
    return f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def _arm_kwargs(cloud: Any) -> dict[str, Any]:
    endpoints = cloud.endpoints
    return {
        "base_url": endpoints.arm,
        "connection_verify": endpoints.ca,
        "polling_interval": 0,
        "retry_backoff_factor": 0,
    }


def resources(cloud: Any, persona: str = "runbook") -> ResourceManagementClient:
    return ResourceManagementClient(
        credential(cloud, persona), cloud.endpoints.subscription_id, **_arm_kwargs(cloud)
    )


def authorization(cloud: Any, persona: str = "runbook") -> AuthorizationManagementClient:
    return AuthorizationManagementClient(
        credential(cloud, persona), cloud.endpoints.subscription_id, **_arm_kwargs(cloud)
    )


def assign_role(
    cloud: Any,
    scope: str,
    role: str,
    principal: str,
    *,
    persona: str = "runbook",
    name: str | None = None,
    **properties: Any,
) -> Any:
    """A role assignment made through ARM with the real AuthorizationManagementClient (it still has to
    propagate); ``properties`` adds e.g. ``principalType``."""
    role_id = role_definition_id(cloud, role)
    body = {"properties": {"roleDefinitionId": role_id, "principalId": principal, **properties}}
    return authorization(cloud, persona).role_assignments.create(scope, name or str(uuid.uuid4()), body)


def powerplatform(cloud: Any, persona: str = "runbook") -> PowerPlatformMgmtClient:
    return PowerPlatformMgmtClient(
        credential(cloud, persona), cloud.endpoints.subscription_id, **_arm_kwargs(cloud)
    )


def bap(cloud: Any, persona: str = "pp-admin") -> httpx.Client:
    """httpx against the Power Platform admin API, TLS verified with the sandbox CA."""
    token = cloud.token_for(persona, "https://service.powerapps.com")
    return httpx.Client(
        base_url=cloud.endpoints.bap,
        verify=cloud.endpoints.ca,
        headers={"Authorization": f"Bearer {token}"},
        params={"api-version": "2019-10-01"},
    )


def arm_http(cloud: Any, persona: str = "runbook") -> httpx.Client:
    token = cloud.token_for(persona, "https://management.azure.com")
    return httpx.Client(
        base_url=cloud.endpoints.arm, verify=cloud.endpoints.ca, headers={"Authorization": f"Bearer {token}"}
    )

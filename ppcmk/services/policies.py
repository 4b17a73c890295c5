"""The Microsoft.PowerPlatform resource provider and the Encryption enterprise policy as ARM shows them, and
the body a policy is created with (versionless by default, so it follows rotation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from ppcmk.cloud.settings import TargetSettings
from ppcmk.cloud.transport import text
from ppcmk.models.azure import PolicyInfo, ProviderStatus
from ppcmk.models.environments import pick
from ppcmk.services.factory import ClientFactory

PROVIDER = "Microsoft.PowerPlatform"


def read_provider(factory: ClientFactory) -> ProviderStatus:
    provider = factory.resources().providers.get(PROVIDER)
    locations: list[str] = []
    for resource_type in provider.resource_types or []:
        if (resource_type.resource_type or "").lower() == "enterprisepolicies":
            locations = [str(loc) for loc in resource_type.locations or []]
    return ProviderStatus(
        namespace=PROVIDER,
        registration_state=text(provider.registration_state or "Unknown"),
        policy_locations=locations,
    )


def policy_from_arm(raw: Mapping[str, Any]) -> PolicyInfo:
    """A policy from its ARM JSON; the principal id is read under both names the service has used."""
    identity = pick(raw, "identity", default={})
    key_vault = pick(raw, "properties", "encryption", "keyVault", default={})
    return PolicyInfo(
        policy_id=str(pick(raw, "id", default="")),
        name=str(pick(raw, "name", default="")),
        location=str(pick(raw, "location", default="")),
        kind=str(pick(raw, "kind", default="")),
        identity_type=pick(identity, "type"),
        principal_id=pick(identity, "principalId") or pick(identity, "systemAssignedIdentityPrincipalId"),
        tenant_id=pick(identity, "tenantId"),
        system_id=pick(raw, "properties", "systemId"),
        health_status=pick(raw, "properties", "healthStatus"),
        encryption_state=pick(raw, "properties", "encryption", "state"),
        key_vault_id=pick(key_vault, "id"),
        key_name=pick(key_vault, "key", "name"),
        key_version=pick(key_vault, "key", "version") or None,
    )


def read_policy(factory: ClientFactory, target: TargetSettings) -> PolicyInfo | None:
    try:
        policy = factory.powerplatform_mgmt().enterprise_policies.get(
            target.policy_name, target.resource_group
        )
    except ResourceNotFoundError:
        return None
    return policy_from_arm(policy.as_dict())


def policy_body(target: TargetSettings, key_version: str | None) -> dict[str, Any]:
    """The Encryption policy body; versionless by default so rotation is followed without a policy change."""
    key: dict[str, str] = {"name": target.key_name}
    if key_version:
        key["version"] = key_version
    return {
        "location": target.geo,
        "kind": "Encryption",
        "identity": {"type": "SystemAssigned"},
        "properties": {"encryption": {"state": "Enabled", "keyVault": {"id": target.vault_id, "key": key}}},
    }

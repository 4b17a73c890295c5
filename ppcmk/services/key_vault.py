"""The vault (or managed HSM) and its keys as ARM and the Key Vault data plane show them, and the one
write every key change shares: a new key version with the target's type and size.

Reads through ARM (`read_key_via_arm`) need no data-plane access and are not subject to the vault's
firewall; the doctor and watch use them. The tasks in `tasks/keyvault.py` and `tasks/rotation.py` wrap
these in retries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.keys import KeyClient, KeyProperties, KeyRotationPolicy, KeyVaultKey

from ppcmk.cloud.settings import TargetSettings
from ppcmk.cloud.transport import service_errors, text
from ppcmk.errors import ConfigError
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, ResourceId, parse_resource_id
from ppcmk.models.azure import (
    AccessPolicyEntry,
    KeyInfo,
    KeyVersionInfo,
    KeyVersions,
    RotationPolicyInfo,
    VaultStatus,
    parse_iso_duration,
)
from ppcmk.models.environments import pick
from ppcmk.services.factory import ClientFactory

CMK_KEY_OPS = ["wrapKey", "unwrapKey", "encrypt", "decrypt"]


def read_vault(factory: ClientFactory, vault_id: str) -> VaultStatus:
    """The vault's (or managed HSM's) ARM properties, read from the raw JSON (case-insensitively)."""
    rid = parse_resource_id(vault_id)
    mgmt = factory.keyvault_mgmt()
    hsm = rid.is_type(*MANAGED_HSM_TYPE)
    resource = (mgmt.managed_hsms if hsm else mgmt.vaults).get(rid.resource_group, rid.name)
    if resource is None:  # the SDK types a managed HSM GET as optional; ARM answers 404 instead
        raise ResourceNotFoundError(f"{vault_id} was not found")
    raw = resource.as_dict()
    props = pick(raw, "properties", default={})
    acls = pick(props, "networkAcls", default={})
    policies = [
        AccessPolicyEntry(
            object_id=str(pick(entry, "objectId")),
            tenant_id=pick(entry, "tenantId"),
            key_permissions=[str(k) for k in pick(entry, "permissions", "keys", default=[])],
        )
        for entry in pick(props, "accessPolicies", default=[])
    ]
    return VaultStatus(
        vault_id=str(rid),
        name=rid.name,
        kind="managedHSM" if hsm else "vault",
        vault_uri=str(pick(props, "hsmUri" if hsm else "vaultUri", default="")),
        location=pick(raw, "location"),
        tenant_id=pick(props, "tenantId"),
        # Soft delete is on by default (cannot be turned off) since 2020, and always on for a managed HSM.
        soft_delete=hsm or bool(pick(props, "enableSoftDelete", default=True)),
        purge_protection=bool(pick(props, "enablePurgeProtection", default=False)),
        # Managed HSMs only have (local) RBAC.
        rbac_authorization=hsm or bool(pick(props, "enableRbacAuthorization", default=False)),
        public_network_access=str(pick(props, "publicNetworkAccess", default="Enabled")),
        default_action=str(pick(acls, "defaultAction", default="Allow")),
        bypass=str(pick(acls, "bypass", default="AzureServices")),
        ip_rules=len(pick(acls, "ipRules", default=[])),
        virtual_network_rules=len(pick(acls, "virtualNetworkRules", default=[])),
        access_policies=policies,
    )


def key_client(factory: ClientFactory, vault_id: str) -> KeyClient:
    return factory.key_client(factory.vault_url(vault_id))


def _rsa_size(key: KeyVaultKey) -> int | None:
    modulus = getattr(key.key, "n", None)
    return len(modulus) * 8 if modulus else None


def key_info(vault_id: str, key: KeyVaultKey, created: bool = False) -> KeyInfo:
    props = key.properties
    return KeyInfo(
        vault_id=vault_id,
        name=key.name or props.name,
        kid=str(key.id),
        version=str(props.version),
        kty=text(key.key_type),
        size=_rsa_size(key),
        key_ops=[text(op) for op in key.key_operations or []],
        enabled=bool(props.enabled),
        not_before=props.not_before,
        expires_on=props.expires_on,
        created_on=props.created_on,
        updated_on=props.updated_on,
        created=created,
    )


def read_key(factory: ClientFactory, vault_id: str, name: str, version: str | None = None) -> KeyInfo | None:
    """The key (current version unless `version`), or None when it does not exist."""
    try:
        key = key_client(factory, vault_id).get_key(name, version=version)
    except ResourceNotFoundError:
        return None
    return key_info(vault_id, key)


def rotation_info(
    expires_in: str | None, actions: Iterable[tuple[str, str | None, str | None]]
) -> RotationPolicyInfo:
    """A rotation policy from its expiry and (action, timeAfterCreate, timeBeforeExpiry) triples."""
    info = RotationPolicyInfo(expires_after=parse_iso_duration(expires_in) if expires_in else None)
    for action, after_create, before_expiry in actions:
        rotate = action.lower() == "rotate"
        if after_create and rotate:
            info.rotate_after_create = parse_iso_duration(after_create)
        if before_expiry:
            before = parse_iso_duration(before_expiry)
            if rotate:
                info.rotate_before_expiry = before
            else:
                info.notify_before_expiry = before
    return info


def epoch_time(value: Any) -> datetime | None:
    """A time as ARM gives a key's attributes: Unix seconds."""
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def _arm_keys(factory: ClientFactory, vault_id: str) -> tuple[ResourceId, Any]:
    """The vault's ARM key collection: a managed HSM's keys have their own."""
    rid, mgmt = parse_resource_id(vault_id), factory.keyvault_mgmt()
    return rid, mgmt.managed_hsm_keys if rid.is_type(*MANAGED_HSM_TYPE) else mgmt.keys


def _arm_key_info(vault_id: str, name: str, props: Any) -> KeyInfo:
    attributes = pick(props, "attributes", default={})
    kid = str(pick(props, "keyUriWithVersion", default=""))
    return KeyInfo(
        vault_id=vault_id,
        name=name,
        kid=kid,
        version=kid.rstrip("/").rsplit("/", 1)[-1],
        kty=str(pick(props, "kty", default="")),
        size=pick(props, "keySize"),
        key_ops=[str(op) for op in pick(props, "keyOps", default=[])],
        enabled=bool(pick(attributes, "enabled", default=True)),
        not_before=epoch_time(pick(attributes, "nbf")),
        expires_on=epoch_time(pick(attributes, "exp")),
        created_on=epoch_time(pick(attributes, "created")),
        updated_on=epoch_time(pick(attributes, "updated")),
    )


def read_key_via_arm(
    factory: ClientFactory, vault_id: str, name: str
) -> tuple[KeyInfo | None, RotationPolicyInfo]:
    """The key's metadata and rotation policy through ARM: needs no data-plane access and is not subject to
    the vault's firewall (what the doctor uses)."""
    rid, keys = _arm_keys(factory, vault_id)
    try:
        found = keys.get(rid.resource_group, rid.name, name)
    except ResourceNotFoundError:
        found = None
    if found is None:  # the SDK types a managed HSM key GET as optional
        return None, RotationPolicyInfo()
    props = pick(found.as_dict(), "properties", default={})
    rotation = pick(props, "rotationPolicy", default={})
    actions = (
        (
            str(pick(a, "action", "type", default="")),
            pick(a, "trigger", "timeAfterCreate"),
            pick(a, "trigger", "timeBeforeExpiry"),
        )
        for a in pick(rotation, "lifetimeActions", default=[])
    )
    expiry = pick(rotation, "attributes", "expiryTime")
    return _arm_key_info(vault_id, name, props), rotation_info(expiry, actions)


def read_key_version_via_arm(
    factory: ClientFactory, vault_id: str, name: str, version: str
) -> KeyInfo | None:
    """One version through ARM (not subject to the vault's firewall); None when it does not exist."""
    rid, keys = _arm_keys(factory, vault_id)
    try:
        found = keys.get_version(rid.resource_group, rid.name, name, version)
    except ResourceNotFoundError:
        return None
    props = pick(found.as_dict(), "properties", default={}) if found is not None else None
    return None if props is None else _arm_key_info(vault_id, name, props)


def require_target_shape(target: TargetSettings, existing: KeyInfo) -> None:
    """Refuse a key whose type or size is not the target's: adopting it would change what the target
    means."""
    expected_kty = {"RSA": {"RSA", "RSA-HSM"}, "RSA-HSM": {"RSA-HSM"}}[target.key_type]
    if existing.kty not in expected_kty:
        raise ConfigError(
            "key_name",
            f"key {target.key_name!r} already exists as {existing.kty}, not {target.key_type}",
            "choose another key_name, or set key_type to match the key",
        )
    if existing.size is not None and existing.size != target.key_size:
        raise ConfigError(
            "key_size",
            f"key {target.key_name!r} already exists with {existing.size} bits, not {target.key_size}",
            "choose another key_name, or set key_size to match the key",
        )


def create_key_version(
    factory: ClientFactory, target: TargetSettings, expires_on: datetime | None = None
) -> KeyInfo:
    """Create the key, or a new version of it, with the target's type and size and the CMK operations."""
    with service_errors():
        key = key_client(factory, target.vault_id).create_rsa_key(
            target.key_name,
            size=target.key_size,
            hardware_protected=target.key_type == "RSA-HSM",
            key_operations=list(CMK_KEY_OPS),
            expires_on=expires_on,
        )
    return key_info(target.vault_id, key, created=True)


def read_rotation_policy(factory: ClientFactory, vault_id: str, name: str) -> RotationPolicyInfo:
    try:
        policy = key_client(factory, vault_id).get_key_rotation_policy(name)
    except ResourceNotFoundError:
        return RotationPolicyInfo()
    return _policy_info(policy)


def read_key_versions(factory: ClientFactory, vault_id: str, name: str) -> KeyVersions:
    client = key_client(factory, vault_id)
    current = client.get_key(name).properties.version
    now = factory.now()
    versions = [_version_info(p, now, current) for p in client.list_properties_of_key_versions(name)]
    versions.sort(key=lambda v: v.created_on or datetime.min.replace(tzinfo=now.tzinfo), reverse=True)
    return KeyVersions(vault_id=vault_id, name=name, versions=versions)


def _version_info(props: KeyProperties, now: datetime, current: str | None) -> KeyVersionInfo:
    age = (now - props.created_on).total_seconds() / 86400 if props.created_on else None
    return KeyVersionInfo(
        version=str(props.version),
        kid=str(props.id),
        enabled=bool(props.enabled),
        created_on=props.created_on,
        not_before=props.not_before,
        expires_on=props.expires_on,
        age_days=age,
        current=props.version == current,
    )


def _policy_info(policy: KeyRotationPolicy) -> RotationPolicyInfo:
    return rotation_info(
        policy.expires_in,
        ((text(a.action), a.time_after_create, a.time_before_expiry) for a in policy.lifetime_actions or []),
    )

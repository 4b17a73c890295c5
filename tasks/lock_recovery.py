"""Lock recovery tasks: read why a policy's identity cannot use its key (`ppcmk.locks.causes` judges it), and
the Key Vault repairs the unlock runbook makes: recover a deleted vault or key, let trusted Microsoft services
through the vault's firewall, repair the key version in use. (Giving the identity its access back is
`tasks.access`.)

Reads go through ARM wherever it offers them, because a vault's firewall does not apply there: a vault whose
network was closed can still be diagnosed. Every repair re-reads before it writes, so a re-run converges.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.keyvault.models import (
    ManagedHsm,
    Sku,
    VaultCreateOrUpdateParameters,
    VaultPatchParameters,
    VaultProperties,
)

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.cloud.transport import raise_service_error, service_errors
from ppcmk.errors import ConfigError
from ppcmk.locks.causes import EXPIRY_EXTENSION, WRAP_OPERATIONS, DeletedItem, KeyAccessReading
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, parse_resource_id, same_id
from ppcmk.models.azure import KeyInfo, PolicyInfo, VaultStatus
from ppcmk.models.environments import pick
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk_tasks.access import read_key_grants
from ppcmk_tasks.keyvault import key_client, key_info, read_key_version_via_arm, read_key_via_arm, read_vault
from ppcmk_tasks.policy import read_policy

TRUSTED_SERVICES = "AzureServices"


# ------------------------------------------------------------------------------------------------ reading


@cmk_task(task_run_name="read-key-access-{target.policy_name}")
def read_key_access(conn: ConnectionSettings, target: TargetSettings) -> KeyAccessReading:
    """Everything `ppcmk.locks.causes.diagnose` judges: the policy, its vault (or the deleted vault), the key
    versions in use (or the deleted key) and the identity's grants, on the cloud's clock."""
    factory = ClientFactory.for_settings(conn)
    policy = read_policy(factory, target)
    reading = KeyAccessReading(
        policy_name=target.policy_name, policy=policy, now=factory.now(),
        vault_id=policy.key_vault_id if policy and policy.key_vault_id else target.vault_id,
        key_name=policy.key_name if policy and policy.key_name else target.key_name,
    )
    if policy is None:
        return reading
    try:
        vault = read_vault(factory, reading.vault_id)
    except ResourceNotFoundError:
        return reading.model_copy(update={"deleted_vault": read_deleted_vault(factory, reading.vault_id)})
    versions = versions_in_use(factory, reading.vault_id, reading.key_name, policy)
    return reading.model_copy(update={
        "vault": vault, "versions_in_use": versions,
        "data_plane_reachable": not vault.network_restricted or data_plane_reachable(factory, vault),
        "deleted_key": None if versions else read_deleted_key(factory, vault, reading.key_name),
        "grants": read_key_grants(factory, vault, policy.principal_id, reading.key_name)
        if policy.principal_id else [],
    })


def versions_in_use(
    factory: ClientFactory, vault_id: str, key_name: str, policy: PolicyInfo
) -> list[KeyInfo]:
    """The key's current version, then the version the policy pins if another; none if the key is gone."""
    current, _ = read_key_via_arm(factory, vault_id, key_name)
    if current is None:
        return []
    pinned = policy.key_version
    if not pinned or pinned.lower() == current.version.lower():
        return [current]
    found = read_key_version_via_arm(factory, vault_id, key_name, pinned)
    return [current, found] if found else [current]


def _deleted_vault_properties(factory: ClientFactory, vault_id: str) -> dict[str, Any] | None:
    """ARM's properties of the soft-deleted vault (or managed HSM) that had this id."""
    rid, mgmt = parse_resource_id(vault_id), factory.keyvault_mgmt()
    hsm = rid.is_type(*MANAGED_HSM_TYPE)
    for deleted in mgmt.managed_hsms.list_deleted() if hsm else mgmt.vaults.list_deleted():
        props = pick(deleted.as_dict(), "properties", default={})
        if same_id(pick(props, "mhsmId" if hsm else "vaultId"), vault_id):
            return dict(props)
    return None


def read_deleted_vault(factory: ClientFactory, vault_id: str) -> DeletedItem | None:
    props = _deleted_vault_properties(factory, vault_id)
    if props is None:
        return None
    return DeletedItem(name=parse_resource_id(vault_id).name,
                       deleted_on=_instant(pick(props, "deletionDate")),
                       purge_on=_instant(pick(props, "scheduledPurgeDate")))


def data_plane_reachable(factory: ClientFactory, vault: VaultStatus) -> bool:
    """Whether the vault's firewall lets this caller's data-plane calls through (a worker inside its network
    does); one listing call answers it."""
    try:
        next(iter(key_client(factory, vault.vault_id).list_properties_of_keys()), None)
    except HttpResponseError as exc:
        inner = getattr(exc.error, "innererror", None) or {}
        if exc.status_code == 403 and inner.get("code") == "ForbiddenByFirewall":
            return False
        raise_service_error(exc)
    return True


def read_deleted_key(factory: ClientFactory, vault: VaultStatus, name: str) -> DeletedItem | None:
    """The soft-deleted key, or None when it is not recoverable. Behind a closed firewall the data plane does
    not answer: the key then counts as deleted, and its recovery is tried once the network is open again."""
    try:
        deleted = key_client(factory, vault.vault_id).get_deleted_key(name)
    except ResourceNotFoundError:
        return None
    except HttpResponseError as exc:
        if exc.status_code == 403 and vault.network_restricted:
            return DeletedItem(name=name)
        raise
    return DeletedItem(name=name, deleted_on=deleted.deleted_date, purge_on=deleted.scheduled_purge_date)


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# ------------------------------------------------------------------------------------------------ repairs


@cmk_task(task_run_name="recover-vault-{vault_id}")
def recover_vault(conn: ConnectionSettings, vault_id: str) -> bool:
    """Recover a soft-deleted vault as it was (ARM `createMode: recover`); False when it already exists."""
    factory = ClientFactory.for_settings(conn)
    try:
        read_vault(factory, vault_id)
        return False
    except ResourceNotFoundError:
        pass
    rid = parse_resource_id(vault_id)
    if rid.is_type(*MANAGED_HSM_TYPE):
        raise ConfigError("vault_id", f"the managed HSM {rid.name} is deleted",
                          f"recover it (az keyvault recover --hsm-name {rid.name}), then run unlock again")
    deleted = _deleted_vault_properties(factory, vault_id)
    if deleted is None:
        raise ConfigError("vault_id", f"the key vault {rid.name} is neither present nor recoverable",
                          "restore it from a backup, then run unlock again")
    properties = VaultProperties(tenant_id=conn.tenant_id, sku=Sku(family="A", name="standard"),
                                 create_mode="recover")
    parameters = VaultCreateOrUpdateParameters(location=str(pick(deleted, "location")), properties=properties)
    vaults = factory.keyvault_mgmt().vaults
    with service_errors():
        vaults.begin_create_or_update(rid.resource_group, rid.name, parameters).result()
    return True


@cmk_task(task_run_name="allow-trusted-services-{vault_id}")
def allow_trusted_services(conn: ConnectionSettings, vault_id: str) -> bool:
    """Let trusted Microsoft services (Power Platform among them) through the vault's firewall, keeping every
    rule and the default action; False when the bypass is already there."""
    factory = ClientFactory.for_settings(conn)
    vault = read_vault(factory, vault_id)
    if vault.trusted_services_bypass:
        return False
    rid, mgmt = parse_resource_id(vault_id), factory.keyvault_mgmt()
    hsm = rid.is_type(*MANAGED_HSM_TYPE)
    resource = (mgmt.managed_hsms if hsm else mgmt.vaults).get(rid.resource_group, rid.name)
    acls = dict(pick(resource.as_dict(), "properties", "networkAcls", default={}) if resource else {})
    acls["bypass"] = TRUSTED_SERVICES
    body = {"properties": {"networkAcls": acls}}
    with service_errors():
        if hsm:
            mgmt.managed_hsms.begin_update(rid.resource_group, rid.name, ManagedHsm(body)).result()
        else:
            mgmt.vaults.update(rid.resource_group, rid.name, VaultPatchParameters(body))
    return True


@cmk_task(task_run_name="recover-key-{key_name}")
def recover_key(conn: ConnectionSettings, vault_id: str, key_name: str) -> bool:
    """Recover the soft-deleted key with all its versions; False when the key exists."""
    factory = ClientFactory.for_settings(conn)
    current, _ = read_key_via_arm(factory, vault_id, key_name)
    if current is not None:
        return False
    try:
        key_client(factory, vault_id).begin_recover_deleted_key(key_name).result()
    except ResourceNotFoundError:
        raise ConfigError("key_name", f"the key {key_name} is deleted and no longer recoverable",
                          "restore it from its backup (az keyvault key restore), then run unlock again"
                          ) from None
    except HttpResponseError as exc:
        raise_service_error(exc)
    return True


@cmk_task(task_run_name="repair-key-version-{key_name}-{version}")
def repair_key_version(conn: ConnectionSettings, vault_id: str, key_name: str, version: str) -> bool:
    """Make the version usable for wrapping again: enabled, active now, not expired (EXPIRY_EXTENSION more),
    allowing wrapKey and unwrapKey. Only what is wrong is written; False when the version was usable."""
    factory = ClientFactory.for_settings(conn)
    client, now = key_client(factory, vault_id), factory.now()
    before = key_info(vault_id, client.get_key(key_name, version=version))
    changes: dict[str, Any] = {}
    if not before.enabled:
        changes["enabled"] = True
    if before.expires_on is not None and before.expires_on <= now:
        changes["expires_on"] = now + EXPIRY_EXTENSION
    if before.not_before is not None and before.not_before > now:
        changes["not_before"] = now
    if before.key_ops and not set(WRAP_OPERATIONS) <= set(before.key_ops):
        missing = [op for op in WRAP_OPERATIONS if op not in before.key_ops]
        changes["key_operations"] = [*before.key_ops, *missing]
    if not changes:
        return False
    with service_errors():
        client.update_key_properties(key_name, version, **changes)
    return True

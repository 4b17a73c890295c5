"""Lock recovery tasks: read why a policy's identity cannot use its key (`ppcmk.locks.causes` judges it), and
the Key Vault repairs the unlock runbook makes: recover a deleted vault or key, let trusted Microsoft services
through the vault's firewall, repair the key version in use. (Giving the identity its access back is
`tasks.access`.) The reads are `ppcmk.services.key_access`'s. Every repair re-reads before it writes, so a
re-run converges.
"""

from __future__ import annotations

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
from ppcmk.locks.causes import EXPIRY_EXTENSION, WRAP_OPERATIONS, KeyAccessReading
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, parse_resource_id
from ppcmk.models.environments import pick
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_access import (
    data_plane_reachable,
    deleted_vault_properties,
    read_deleted_key,
    read_deleted_vault,
    versions_in_use,
)
from ppcmk.services.key_vault import key_client, key_info, read_key_via_arm, read_vault
from ppcmk.services.policies import read_policy
from ppcmk.services.role_grants import read_key_grants

TRUSTED_SERVICES = "AzureServices"


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
    deleted = deleted_vault_properties(factory, vault_id)
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

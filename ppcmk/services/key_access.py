"""What a lock diagnosis reads about a policy's key beyond its grants: the versions the policy uses, whether
the vault's data plane answers this caller, and what soft delete kept of a deleted vault or key.

Reads go through ARM wherever it offers them, because a vault's firewall does not apply there: a vault whose
network was closed can still be diagnosed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from ppcmk.cloud.transport import raise_service_error
from ppcmk.locks.causes import DeletedItem
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, parse_resource_id, same_id
from ppcmk.models.azure import KeyInfo, PolicyInfo, VaultStatus
from ppcmk.models.environments import pick
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import key_client, read_key_version_via_arm, read_key_via_arm


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


def deleted_vault_properties(factory: ClientFactory, vault_id: str) -> dict[str, Any] | None:
    """ARM's properties of the soft-deleted vault (or managed HSM) that had this id."""
    rid, mgmt = parse_resource_id(vault_id), factory.keyvault_mgmt()
    hsm = rid.is_type(*MANAGED_HSM_TYPE)
    for deleted in mgmt.managed_hsms.list_deleted() if hsm else mgmt.vaults.list_deleted():
        props = pick(deleted.as_dict(), "properties", default={})
        if same_id(pick(props, "mhsmId" if hsm else "vaultId"), vault_id):
            return dict(props)
    return None


def read_deleted_vault(factory: ClientFactory, vault_id: str) -> DeletedItem | None:
    props = deleted_vault_properties(factory, vault_id)
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

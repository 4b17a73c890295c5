"""ARM management of ``Microsoft.KeyVault/vaults`` and ``managedHSMs``: create/update (sync, provisioningState
Succeeded), get, list, delete (soft), deleted vaults and purge."""

from __future__ import annotations

import re
from typing import Any

from ppcmk_sandbox.arm.common import not_found
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.keyvault.hsm_roles import initial_admin_assignments
from ppcmk_sandbox.keyvault.state import ARM_TYPES, Vault, VaultKind
from ppcmk_sandbox.rbac.authorize import authorize

KINDS: dict[str, VaultKind] = {"vaults": "vault", "managedhsms": "managedHSM"}
URI_PROPERTY: dict[VaultKind, str] = {"vault": "vaultUri", "managedHSM": "hsmUri"}
VAULT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]")


def bad_request(message: str) -> SandboxHttpError:
    return SandboxHttpError(arm_error(400, "BadRequest", message))


def _kind(match: re.Match[str]) -> VaultKind:
    return KINDS[match["collection"].lower()]


def vault_resource(req: SandboxRequest, vault: Vault) -> dict[str, Any]:
    properties = {
        **vault.properties,
        URI_PROPERTY[vault.kind]: req.world.keyvault.url_for(vault, req.base_url),
        "provisioningState": "Succeeded",
    }
    resource: dict[str, Any] = {
        "id": vault.arm_id,
        "name": vault.name,
        "type": ARM_TYPES[vault.kind],
        "location": vault.location,
        "tags": vault.tags,
        "properties": properties,
    }
    if vault.kind == "managedHSM":
        resource["sku"] = properties.pop("sku", {"family": "B", "name": "Standard_B1"})
    return resource


def find_vault(req: SandboxRequest, match: re.Match[str]) -> Vault:
    vault = req.world.keyvault.get(match["name"])
    if (
        vault is None
        or vault.kind != _kind(match)
        or vault.resource_group.lower() != match["resource_group"].lower()
    ):
        raise not_found(ARM_TYPES[_kind(match)], match["name"], match["resource_group"])
    return vault


def _validate(
    kind: VaultKind, properties: dict[str, Any], previous: dict[str, Any] | None, tenant: str
) -> None:
    """ARM's rules for vault properties; the irreversible switches are checked against the previous state."""
    if str(properties.get("tenantId", "")).lower() != tenant.lower():
        raise bad_request(f"properties.tenantId must be the tenant of the subscription ({tenant}).")
    if kind == "vault" and not isinstance(properties.get("sku"), dict):
        raise bad_request('properties.sku is required, e.g. {"family": "A", "name": "standard"}.')
    if previous is not None:
        if previous.get("enablePurgeProtection") and not properties.get("enablePurgeProtection"):
            raise bad_request(
                'The property "enablePurgeProtection" cannot be set to false. Enabling the purge '
                "protection for a vault is an irreversible action."
            )
        if previous.get("enableSoftDelete", True) and properties.get("enableSoftDelete") is False:
            raise bad_request(
                'The property "enableSoftDelete" cannot be set to false once soft delete is on.'
            )
        if previous.get("softDeleteRetentionInDays") not in (
            None,
            properties.get("softDeleteRetentionInDays"),
        ):
            raise bad_request(
                "properties.softDeleteRetentionInDays cannot be changed after the vault is created."
            )
    if properties.get("enablePurgeProtection") is False and previous is None:
        properties.pop("enablePurgeProtection")  # ARM stores "not set" for an explicit false on create
    if properties.get("enablePurgeProtection") and properties.get("enableSoftDelete") is False:
        raise bad_request("enablePurgeProtection requires enableSoftDelete.")
    retention = properties.get("softDeleteRetentionInDays", 90)
    if not isinstance(retention, int) or not 7 <= retention <= 90:
        raise bad_request("properties.softDeleteRetentionInDays must be an integer from 7 to 90.")
    if str(properties.get("publicNetworkAccess", "Enabled")) not in ("Enabled", "Disabled"):
        raise bad_request("properties.publicNetworkAccess must be Enabled or Disabled.")
    acls = properties.get("networkAcls") or {}
    if str(acls.get("defaultAction", "Allow")) not in ("Allow", "Deny"):
        raise bad_request("properties.networkAcls.defaultAction must be Allow or Deny.")
    if str(acls.get("bypass", "AzureServices")) not in ("AzureServices", "None"):
        raise bad_request("properties.networkAcls.bypass must be AzureServices or None.")
    for index, policy in enumerate(properties.get("accessPolicies") or []):
        if not policy.get("objectId") or not isinstance(policy.get("permissions"), dict):
            raise bad_request(f"properties.accessPolicies[{index}] needs objectId and permissions.")


def _stored_properties(properties: dict[str, Any], kind: VaultKind) -> dict[str, Any]:
    stored = {k: v for k, v in properties.items() if k not in ("vaultUri", "hsmUri", "provisioningState")}
    stored.setdefault("enableSoftDelete", True)
    stored.setdefault("softDeleteRetentionInDays", 90)
    if kind == "vault":
        stored.setdefault("accessPolicies", [])
    return stored


def put_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    kind, name, group = _kind(match), match["name"], match["resource_group"]
    authorize(req, f"{subscription_scope(req)}/resourceGroups/{group}", "write", f"{ARM_TYPES[kind]}/write")
    body = req.json_object(lambda m: arm_error(400, "BadRequest", m))
    if not VAULT_NAME.fullmatch(name):
        raise bad_request(
            f"Vault name {name!r} is invalid: 3-24 letters, digits and dashes, starting with a letter."
        )
    if not body.get("location"):
        raise bad_request("location is required.")
    existing = req.world.keyvault.get(name, include_deleted=True)
    if existing is not None and existing.deleted and _recovering(body):
        return _recover(req, existing, kind, group)
    if existing is not None and existing.deleted:
        raise SandboxHttpError(
            arm_error(
                409,
                "ConflictError",
                f"A vault with the name {name} exists in a deleted state; recover or purge it first.",
            )
        )
    if existing is not None and (existing.kind != kind or existing.resource_group.lower() != group.lower()):
        raise SandboxHttpError(
            arm_error(409, "VaultAlreadyExists", f"The vault name '{name}' is already in use.")
        )
    properties = dict(body.get("properties") or {})
    if kind == "managedHSM" and body.get("sku"):
        properties["sku"] = body["sku"]
    previous = existing.properties if existing else None
    if previous is not None:
        properties = {
            **{
                k: previous[k]
                for k in ("enablePurgeProtection", "softDeleteRetentionInDays")
                if k in previous and k not in properties
            },
            **properties,
        }
    _validate(kind, properties, previous, req.world.tenant_id)
    stored = _stored_properties(properties, kind)
    if existing is not None:
        existing.properties, existing.tags = stored, dict(body.get("tags") or {})
        return SandboxResponse(200, vault_resource(req, existing))
    vault = req.world.keyvault.add(
        Vault(
            name=name,
            subscription_id=req.world.subscription_id,
            resource_group=group,
            kind=kind,
            location=str(body["location"]),
            properties=stored,
            tags=dict(body.get("tags") or {}),
            role_assignments=initial_admin_assignments(
                list(stored.get("initialAdminObjectIds") or []), req.world.clock.now()
            )
            if kind == "managedHSM"
            else {},
        )
    )
    return SandboxResponse(201 if kind == "vault" else 200, vault_resource(req, vault))


def _recovering(body: dict[str, Any]) -> bool:
    return str((body.get("properties") or {}).get("createMode", "")).lower() == "recover"


def _recover(req: SandboxRequest, vault: Vault, kind: VaultKind, group: str) -> SandboxResponse:
    """`createMode: recover` brings a soft-deleted vault back as it was, keys and access policies included;
    the request's other properties are not applied."""
    if vault.kind != kind or vault.resource_group.lower() != group.lower():
        raise SandboxHttpError(arm_error(409, "VaultAlreadyExists",
                                         f"The vault name '{vault.name}' is already in use."))
    authorize(req, vault.arm_id, "write", "Microsoft.KeyVault/locations/deletedVaults/recover/action")
    vault.deleted_at = None
    return SandboxResponse(200, vault_resource(req, vault))


def subscription_scope(req: SandboxRequest) -> str:
    return f"/subscriptions/{req.world.subscription_id}"


def patch_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "write", f"{ARM_TYPES[vault.kind]}/write")
    body = req.json_object(lambda m: arm_error(400, "BadRequest", m))
    properties = {**vault.properties, **(body.get("properties") or {})}
    _validate(vault.kind, properties, vault.properties, req.world.tenant_id)
    vault.properties = _stored_properties(properties, vault.kind)
    if body.get("tags") is not None:
        vault.tags = dict(body["tags"])
    return SandboxResponse(200, vault_resource(req, vault))


def get_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "read", f"{ARM_TYPES[vault.kind]}/read")
    return SandboxResponse(200, vault_resource(req, vault))


def list_vaults(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    kind, group = _kind(match), match.groupdict().get("resource_group")
    scope = f"{subscription_scope(req)}/resourceGroups/{group}" if group else subscription_scope(req)
    authorize(req, scope, "read", f"{ARM_TYPES[kind]}/read")
    vaults = [
        vault_resource(req, v)
        for v in req.world.keyvault.vaults.values()
        if v.kind == kind and not v.deleted and (group is None or v.resource_group.lower() == group.lower())
    ]
    return SandboxResponse(200, {"value": vaults, "nextLink": None})


def delete_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "write", f"{ARM_TYPES[vault.kind]}/delete")
    if vault.properties.get("enableSoftDelete", True):
        vault.deleted_at = req.world.clock.now()
    else:
        del req.world.keyvault.vaults[vault.name.lower()]
    return SandboxResponse(200)


def _deleted_resource(req: SandboxRequest, vault: Vault) -> dict[str, Any]:
    assert vault.deleted_at is not None
    collection = "deletedVaults" if vault.kind == "vault" else "deletedManagedHSMs"
    return {
        "id": f"{subscription_scope(req)}/providers/Microsoft.KeyVault/locations/{vault.location}/"
        f"{collection}/"
        f"{vault.name}",
        "name": vault.name,
        "type": f"Microsoft.KeyVault/{collection}",
        "properties": {
            "vaultId" if vault.kind == "vault" else "mhsmId": vault.arm_id,
            "location": vault.location,
            "deletionDate": vault.deleted_at.isoformat(),
            "scheduledPurgeDate": (vault.deleted_at + vault.retention).isoformat(),
            "purgeProtectionEnabled": vault.purge_protection,
            "tags": vault.tags,
        },
    }


def _deleted(req: SandboxRequest, match: re.Match[str]) -> Vault:
    vault = req.world.keyvault.get(match["name"], include_deleted=True)
    if vault is None or not vault.deleted or vault.location.lower() != match["location"].lower():
        raise not_found("Microsoft.KeyVault/deletedVaults", match["name"])
    return vault


def get_deleted_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "read", "Microsoft.KeyVault/deletedVaults/read")
    return SandboxResponse(200, _deleted_resource(req, _deleted(req, match)))


def list_deleted_vaults(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, subscription_scope(req), "read", "Microsoft.KeyVault/deletedVaults/read")
    kind = "vault" if match["collection"].lower() == "deletedvaults" else "managedHSM"
    items = [
        _deleted_resource(req, v) for v in req.world.keyvault.vaults.values() if v.deleted and v.kind == kind
    ]
    return SandboxResponse(200, {"value": items, "nextLink": None})


def purge_deleted_vault(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _deleted(req, match)
    authorize(req, vault.arm_id, "write", "Microsoft.KeyVault/locations/deletedVaults/purge/action")
    if vault.purge_protection:
        raise SandboxHttpError(
            arm_error(
                409,
                "PurgeProtectionEnabled",
                f"Vault {vault.name} has purge protection "
                "enabled; it is purged automatically when its retention period ends.",
            )
        )
    del req.world.keyvault.vaults[vault.name.lower()]
    return SandboxResponse(200)

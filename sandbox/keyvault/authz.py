"""Who may do what on a vault's keys: RBAC roles or access policies, and the vault firewall."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ppcmk_sandbox.http import SandboxHttpError, kv_error
from ppcmk_sandbox.keyvault.hsm_roles import DATA_ACTIONS, has_local_role, key_scope, local_roles_allowing
from ppcmk_sandbox.rbac.roles import (
    KEY_VAULT_ADMINISTRATOR,
    KEY_VAULT_CRYPTO_OFFICER,
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    KEY_VAULT_CRYPTO_USER,
    KEY_VAULT_READER,
)

if TYPE_CHECKING:
    from ppcmk_sandbox.identity.principals import Principal
    from ppcmk_sandbox.keyvault.state import Vault
    from ppcmk_sandbox.world import World

# Key operations by the access-policy permission name that allows them (also our operation names).
KEY_OPERATIONS = (
    "get",
    "list",
    "create",
    "import",
    "update",
    "delete",
    "recover",
    "purge",
    "backup",
    "restore",
    "encrypt",
    "decrypt",
    "wrapKey",
    "unwrapKey",
    "sign",
    "verify",
    "rotate",
    "getrotationpolicy",
    "setrotationpolicy",
)
_CRYPTO = {"encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"}

# RBAC data-plane roles -> the operations they allow (the built-in role definitions, reduced to keys).
ROLE_OPERATIONS: dict[str, frozenset[str]] = {
    KEY_VAULT_ADMINISTRATOR: frozenset(KEY_OPERATIONS),
    KEY_VAULT_CRYPTO_OFFICER: frozenset(KEY_OPERATIONS),
    KEY_VAULT_CRYPTO_USER: frozenset({"get", "list", "update", "backup"} | _CRYPTO),
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: frozenset({"get", "wrapKey", "unwrapKey"}),
    KEY_VAULT_READER: frozenset({"get", "list", "getrotationpolicy"}),
}


def roles_allowing(operation: str) -> frozenset[str]:
    return frozenset(role for role, operations in ROLE_OPERATIONS.items() if operation in operations)


def firewall_blocks(vault: Vault, principal: Principal) -> bool:
    """Every caller counts as outside the vault's network; only trusted Microsoft services (system-assigned
    identities such as enterprise policies) pass a closed firewall, and only with the AzureServices bypass."""
    properties = vault.properties
    acls = properties.get("networkAcls") or {}
    closed = str(properties.get("publicNetworkAccess", "Enabled")).lower() == "disabled" or (
        str(acls.get("defaultAction", "Allow")).lower() == "deny"
    )
    if not closed:
        return False
    bypass = {b.strip().lower() for b in str(acls.get("bypass", "None")).split(",")}
    return not (principal.trusted_service and "azureservices" in bypass)


def _access_policy_allows(vault: Vault, object_id: str, operation: str) -> bool:
    for entry in vault.properties.get("accessPolicies") or []:
        if str(entry.get("objectId", "")).lower() != object_id.lower():
            continue
        granted = {str(p).lower() for p in (entry.get("permissions") or {}).get("keys", [])}
        if "all" in granted or operation.lower() in granted:
            return True
    return False


def denial(
    world: World, vault: Vault, principal: Principal, operation: str, key_name: str | None
) -> str | None:
    """Why ``principal`` may not perform ``operation`` (None when allowed). Innererror code first."""
    if firewall_blocks(vault, principal):
        return "ForbiddenByFirewall"
    if vault.kind == "managedHSM":
        allowed = has_local_role(
            vault.role_assignments, principal.object_id, key_scope(key_name), local_roles_allowing(operation)
        )
        return None if allowed else "ForbiddenByRbac"
    if vault.rbac_authorization:
        scope = f"{vault.arm_id}/keys/{key_name}" if key_name else vault.arm_id
        roles = roles_allowing(operation)
        if world.rbac is None or not world.rbac.has_role(
            principal.object_id, scope, roles, world.clock.now()
        ):
            return "ForbiddenByRbac"
        return None
    if not _access_policy_allows(vault, principal.object_id, operation):
        return "AccessDenied"
    return None


def authorize(
    world: World, vault: Vault, principal: Principal | None, operation: str, key_name: str | None
) -> None:
    """Raise the Key Vault 403 the service would answer, or return when the caller may proceed."""
    if principal is None:
        raise SandboxHttpError(kv_error(401, "Unauthorized", "Request is missing a Bearer token."))
    reason = denial(world, vault, principal, operation, key_name)
    if reason is None:
        return
    messages = {
        "ForbiddenByFirewall": f"Client address is not authorized and caller is not a trusted service. "
        f"Vault: {vault.name}",
        "ForbiddenByRbac": f"Caller is not authorized to perform action on resource. Action: "
        f"'{_action(vault, operation)}'. Caller: oid={principal.object_id}. Vault: {vault.name}",
        "AccessDenied": f"The user, group or application 'oid={principal.object_id}' does not have keys "
        f"{operation} permission on key vault '{vault.name}'.",
    }
    raise SandboxHttpError(kv_error(403, "Forbidden", messages[reason], inner=reason))


def _action(vault: Vault, operation: str) -> str:
    if vault.kind == "managedHSM":
        return "Microsoft.KeyVault/managedHsm" + DATA_ACTIONS[operation]
    return f"Microsoft.KeyVault/vaults/keys/{operation}"

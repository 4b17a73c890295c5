"""Built-in Azure role definitions the sandbox knows, and what each lets a caller do on ARM."""

from __future__ import annotations

from dataclasses import dataclass

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"


@dataclass(frozen=True)
class RoleDefinition:
    guid: str
    name: str
    description: str
    actions: tuple[str, ...]
    data_actions: tuple[str, ...] = ()


BUILTIN_ROLES: dict[str, RoleDefinition] = {
    role.guid: role
    for role in (
        RoleDefinition(
            OWNER, "Owner", "Grants full access to manage all resources, including roles.", ("*",)
        ),
        RoleDefinition(
            CONTRIBUTOR,
            "Contributor",
            "Grants full access to manage all resources, but not role assignments.",
            ("*",),
        ),
        RoleDefinition(
            READER, "Reader", "View all resources, but does not allow you to make changes.", ("*/read",)
        ),
        RoleDefinition(
            USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            "Lets you manage user access to Azure resources.",
            ("*/read", "Microsoft.Authorization/*"),
        ),
        RoleDefinition(
            KEY_VAULT_ADMINISTRATOR,
            "Key Vault Administrator",
            "Perform all data plane operations on a key vault and all objects in it.",
            ("Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/vaults/*/read"),
            ("Microsoft.KeyVault/vaults/*",),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_OFFICER,
            "Key Vault Crypto Officer",
            "Perform any action on the keys of a key vault, except manage permissions.",
            ("Microsoft.KeyVault/vaults/*/read",),
            ("Microsoft.KeyVault/vaults/keys/*",),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_USER,
            "Key Vault Crypto User",
            "Perform cryptographic operations using keys.",
            (),
            ("Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action"),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            "Key Vault Crypto Service Encryption User",
            "Read metadata of keys and perform wrap/unwrap operations.",
            ("Microsoft.EventGrid/eventSubscriptions/write",),
            ("Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action"),
        ),
        RoleDefinition(
            KEY_VAULT_READER,
            "Key Vault Reader",
            "Read metadata of key vaults and its certificates, keys, and secrets.",
            ("Microsoft.KeyVault/vaults/*/read",),
            ("Microsoft.KeyVault/vaults/keys/read",),
        ),
    )
}

# What each kind of ARM request needs at or above its scope (a coarse model of Azure RBAC actions).
ARM_WRITERS: frozenset[str] = frozenset({OWNER, CONTRIBUTOR})
ROLE_ASSIGNMENT_WRITERS: frozenset[str] = frozenset({OWNER, USER_ACCESS_ADMINISTRATOR})
# Any role at all lets the holder read the resource through ARM.
ARM_READERS: frozenset[str] = frozenset(BUILTIN_ROLES)
# Roles that let a policy identity wrap/unwrap with a key in an RBAC-mode vault.
KEY_WRAP_ROLES: frozenset[str] = frozenset(
    {KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, KEY_VAULT_CRYPTO_OFFICER, KEY_VAULT_ADMINISTRATOR}
)


def role_guid(role_definition_id: str) -> str:
    """The GUID at the end of a role definition id (ids arrive at any scope, in any case)."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def find_by_name(role_name: str) -> RoleDefinition | None:
    wanted = role_name.strip().lower()
    return next((r for r in BUILTIN_ROLES.values() if r.name.lower() == wanted), None)

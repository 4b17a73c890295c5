"""Who holds which Azure role where: the role grants ARM (or a managed HSM, `hsm_rbac`) lists for a
principal, including inherited ones; the principals holding a role; writing one role assignment under a
deterministic name; and finding a principal by UPN or object id through Graph."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignment, RoleAssignmentCreateParameters

from ppcmk.cloud.transport import error_code, raise_service_error
from ppcmk.models.arm_ids import role_assignment_name, same_id
from ppcmk.models.azure import RoleGrant, VaultStatus, role_guid
from ppcmk.services.factory import ClientFactory
from ppcmk.services.graph import Principal
from ppcmk.services.hsm_rbac import read_hsm_key_grants

# Azure built-in role ids
CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
# Roles that let an identity wrap/unwrap with the vault's keys (RBAC vaults).
KEY_WRAP_ROLES = frozenset({CRYPTO_SERVICE_ENCRYPTION_USER, KEY_VAULT_CRYPTO_OFFICER,
                            KEY_VAULT_ADMINISTRATOR})
# Roles that include reading the policy (Reader "or higher").
POLICY_READ_ROLES = frozenset({READER, CONTRIBUTOR, OWNER})
CMK_KEY_PERMISSIONS = ("get", "wrapKey", "unwrapKey")
# role assignments take minutes to apply
PROPAGATION_POLL_SECONDS = 30.0
PROPAGATION_TIMEOUT = timedelta(minutes=10)


def role_definition_id(subscription_id: str, role_guid: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def _covers(scope: str | None, resource_id: str) -> bool:
    """Whether an assignment at `scope` applies to `resource_id` (same scope or an ancestor)."""
    if not scope:
        return False
    parent = scope.rstrip("/").lower()
    return parent == "" or same_id(parent, resource_id) or resource_id.lower().startswith(parent + "/")


def _applying(
    factory: ClientFactory, resource_id: str, roles: frozenset[str], listing: str
) -> Iterator[RoleAssignment]:
    """The role assignments ARM lists for `resource_id` (its `$filter` is `listing`) that give one of `roles`
    there: assigned at it or at an ancestor."""
    for a in factory.authorization().role_assignments.list_for_scope(resource_id, filter=listing):
        if role_guid(a.role_definition_id) in roles and _covers(a.scope, resource_id):
            yield a


def read_role_grants(
    factory: ClientFactory, resource_id: str, principal_id: str, roles: frozenset[str]
) -> list[RoleGrant]:
    """The principal's assignments of any of `roles` that apply to `resource_id` (inherited ones included)."""
    return [
        RoleGrant.listed("rbac", a.id, a, a.principal_type, a.created_on)
        for a in _applying(factory, resource_id, roles, f"principalId eq '{principal_id}'")
        if (a.principal_id or "").lower() == principal_id.lower()
    ]


def principals_with_roles(factory: ClientFactory, resource_id: str, roles: frozenset[str]) -> list[str]:
    """The object ids (lower-case, sorted) holding any of `roles` on `resource_id`, assigned there or above
    (`atScope()`: ARM leaves out the assignments below it, which do not apply to it)."""
    return sorted({a.principal_id.lower() for a in _applying(factory, resource_id, roles, "atScope()")
                   if a.principal_id})


def read_key_grants(
    factory: ClientFactory, vault: VaultStatus, principal_id: str, key_name: str | None = None
) -> list[RoleGrant]:
    """What gives the principal key access under the vault's permission model. On a managed HSM (local
    roles can name one key) `key_name` narrows to what covers that key; None means any key of the HSM."""
    if vault.kind == "managedHSM":
        return read_hsm_key_grants(factory, vault, principal_id, key_name)
    if vault.rbac_authorization:
        return read_role_grants(factory, vault.vault_id, principal_id, KEY_WRAP_ROLES)
    entry = vault.access_policy_for(principal_id)
    if entry is None or not entry.allows(*CMK_KEY_PERMISSIONS):
        return []
    return [
        RoleGrant(
            mechanism="access_policy",
            scope=vault.vault_id,
            principal_id=entry.object_id,
            key_permissions=entry.key_permissions,
            tenant_id=entry.tenant_id,
        )
    ]


def assign_role(
    factory: ClientFactory,
    scope: str,
    principal_id: str,
    role_guid: str,
    principal_type: str,
    name: str | None = None,
) -> RoleGrant:
    """PUT a role assignment under a deterministic name; an identical assignment under another name counts."""
    definition = role_definition_id(factory.settings.subscription_id, role_guid)
    name = name or role_assignment_name(scope, principal_id, definition)
    parameters = RoleAssignmentCreateParameters(
        role_definition_id=definition, principal_id=principal_id, principal_type=principal_type
    )
    grant = RoleGrant(mechanism="rbac", scope=scope, principal_id=principal_id, role_definition_id=definition,
                      principal_type=principal_type)
    try:
        created = factory.authorization().role_assignments.create(scope, name, parameters)
    except HttpResponseError as exc:
        if exc.status_code == 409 and error_code(exc) == "RoleAssignmentExists":
            return grant
        raise_service_error(exc)
    return grant.model_copy(update={"assignment_id": created.id, "changed": True})


def lookup_principal(factory: ClientFactory, admin: str) -> Principal:
    """The user (UPN or object id) or service principal (object id) through Graph; ConfigError if neither."""
    return factory.graph().principal(admin)


def resolve_principal(factory: ClientFactory, admin: str) -> str:
    """The object id of a UPN or object id, checked to exist through Graph."""
    return lookup_principal(factory, admin).object_id

"""Key access on a managed HSM: LOCAL role assignments on the HSM's own data plane (not ARM, no access
policies).

The policy identity needs Managed HSM Crypto Service Encryption User (get, wrap, unwrap) at the key's local
scope `/keys/<key name>`; Managed HSM Crypto User (at `/`, `/keys` or the key) also gives it. `tasks.access`
dispatches here when `VaultStatus.kind == "managedHSM"`.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from ppcmk.cloud.transport import error_code, raise_service_error, service_errors
from ppcmk.models.arm_ids import role_assignment_name
from ppcmk.models.azure import RoleGrant, VaultStatus, role_guid
from ppcmk.services.factory import ClientFactory

HSM_ROLE_DEFINITION_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
HSM_CRYPTO_SERVICE_ENCRYPTION_USER = "33413926-3206-4cdd-b39a-83574fe37a17"
HSM_CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b"
HSM_CRYPTO_OFFICER = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
HSM_ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4"
# Local roles that let an identity get, wrap and unwrap with the HSM's keys.
HSM_KEY_WRAP_ROLES = frozenset({HSM_CRYPTO_SERVICE_ENCRYPTION_USER, HSM_CRYPTO_USER})
HSM_ROLE_NAMES = {
    HSM_CRYPTO_SERVICE_ENCRYPTION_USER: "Managed HSM Crypto Service Encryption User",
    HSM_CRYPTO_USER: "Managed HSM Crypto User",
    HSM_CRYPTO_OFFICER: "Managed HSM Crypto Officer",
    HSM_ADMINISTRATOR: "Managed HSM Administrator",
}
GRANTED_ROLE = HSM_CRYPTO_SERVICE_ENCRYPTION_USER
# Who may read and write local role assignments (Administrator, Crypto Officer, Policy Administrator).
ROLE_READERS_HINT = "Managed HSM Crypto Officer (or Administrator / Policy Administrator)"


def hsm_key_scope(key_name: str) -> str:
    return f"/keys/{key_name}"


def hsm_role_definition_id(role_guid: str) -> str:
    return HSM_ROLE_DEFINITION_PREFIX + role_guid


def _covers(scope: str, key_name: str | None) -> bool:
    """Whether a local assignment at `scope` applies to the key (None: to some key of the HSM)."""
    parent = scope.strip().rstrip("/").lower()
    if key_name is None:
        return parent in ("", "/keys") or parent.startswith("/keys/")
    return parent in ("", "/keys", hsm_key_scope(key_name).lower())


def assign_az_command(hsm_name: str, key_name: str, principal_id: str) -> str:
    """The Azure CLI command that grants the policy identity its key (for fixes and plans)."""
    return (
        f'az keyvault role assignment create --hsm-name {hsm_name} --role "{HSM_ROLE_NAMES[GRANTED_ROLE]}" '
        f"--scope {hsm_key_scope(key_name)} --assignee {principal_id}"
    )


def read_hsm_key_grants(
    factory: ClientFactory, vault: VaultStatus, principal_id: str, key_name: str | None
) -> list[RoleGrant]:
    """The principal's local assignments that give it use of the key (any key when `key_name` is None)."""
    client = factory.hsm_access_control(factory.vault_url(vault.vault_id))
    grants = []
    with service_errors():  # a 403 here means the caller holds no local role that may read assignments
        assignments = list(client.list_role_assignments("/"))
    for assignment in assignments:
        props = assignment.properties
        if (
            props is None
            or (props.principal_id or "").lower() != principal_id.lower()
            or role_guid(props.role_definition_id) not in HSM_KEY_WRAP_ROLES
            or not _covers(str(props.scope), key_name)
        ):
            continue
        grants.append(RoleGrant.listed("hsm_rbac", assignment.role_assignment_id, props, "ServicePrincipal"))
    return grants


def assign_hsm_role(
    factory: ClientFactory,
    vault: VaultStatus,
    scope: str,
    principal_id: str,
    role_guid: str,
    name: str | None = None,
) -> RoleGrant:
    """PUT one local assignment under a deterministic name (HSM id + scope + principal + role), so a re-run
    writes the same assignment; the same role already held under another name counts as done."""
    definition = hsm_role_definition_id(role_guid)
    name = name or role_assignment_name(f"{vault.vault_id}{scope}", principal_id, definition)
    grant = RoleGrant(
        mechanism="hsm_rbac",
        scope=scope,
        principal_id=principal_id,
        role_definition_id=definition,
        principal_type="ServicePrincipal",
    )
    client = factory.hsm_access_control(factory.vault_url(vault.vault_id))
    try:
        created = client.create_role_assignment(scope, definition, principal_id, name=name)
    except HttpResponseError as exc:
        if exc.status_code == 409 and error_code(exc) == "RoleAssignmentExists":
            return grant
        raise_service_error(exc)
    return grant.model_copy(update={"assignment_id": created.role_assignment_id, "changed": True})


def delete_hsm_grant(factory: ClientFactory, vault: VaultStatus, grant: RoleGrant) -> bool:
    """Remove one local assignment; False when it was already gone (nothing to restore then)."""
    client = factory.hsm_access_control(factory.vault_url(vault.vault_id))
    name = assignment_name(grant)
    try:
        # The SDK's delete swallows a 404; read first so a vanished assignment is reported as such.
        client.get_role_assignment(grant.scope, name)
        client.delete_role_assignment(grant.scope, name)
    except ResourceNotFoundError:
        return False
    except HttpResponseError as exc:
        raise_service_error(exc)
    return True


def assignment_name(grant: RoleGrant) -> str:
    return (grant.assignment_id or "").rstrip("/").rsplit("/", 1)[-1]

"""Access tasks: the policy identity's key access (RBAC role, access policy, or a managed HSM's local role:
`ppcmk.services.hsm_rbac`), its propagation, its revocation (for lock) and restoration (for unlock). The
reads and the role assignment write are `ppcmk.services.role_grants`'s."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.keyvault.models import VaultAccessPolicyParameters

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.cloud.transport import raise_service_error, service_errors
from ppcmk.errors import ConfigError, TransientError
from ppcmk.models.arm_ids import parse_resource_id, same_id
from ppcmk.models.azure import AccessRevocation, PropagationResult, RoleGrant, VaultStatus, role_guid
from ppcmk.safety.retry import cmk_task
from ppcmk.safety.validation import check_principal
from ppcmk.services.factory import ClientFactory
from ppcmk.services.hsm_rbac import (
    GRANTED_ROLE,
    assign_hsm_role,
    assignment_name,
    delete_hsm_grant,
    hsm_key_scope,
)
from ppcmk.services.key_vault import read_vault
from ppcmk.services.policies import read_policy
from ppcmk.services.role_grants import (
    CMK_KEY_PERMISSIONS,
    CRYPTO_SERVICE_ENCRYPTION_USER,
    PROPAGATION_POLL_SECONDS,
    PROPAGATION_TIMEOUT,
    assign_role,
    lookup_principal,
    read_key_grants,
)


def _add_access_policy(
    factory: ClientFactory,
    vault: VaultStatus,
    principal_id: str,
    permissions: list[str],
    tenant_id: str | None,
) -> RoleGrant:
    tenant = tenant_id or vault.tenant_id or factory.settings.tenant_id
    _update_access_policy(factory, vault, "add", tenant, principal_id, permissions)
    return RoleGrant(
        mechanism="access_policy",
        scope=vault.vault_id,
        principal_id=principal_id,
        key_permissions=permissions,
        tenant_id=tenant,
        changed=True,
    )


@cmk_task(task_run_name="grant-key-access-{principal_id}")
def grant_key_access(conn: ConnectionSettings, target: TargetSettings, principal_id: str) -> RoleGrant:
    """Give the policy identity use of the key: Crypto Service Encryption User on an RBAC vault, the local
    Managed HSM Crypto Service Encryption User at /keys/<key> on a managed HSM, or an access policy
    get/wrapKey/unwrapKey otherwise. Nothing is written when the access is already there."""
    factory = ClientFactory.for_settings(conn)
    vault = read_vault(factory, target.vault_id)
    existing = read_key_grants(factory, vault, principal_id, target.key_name)
    if existing:
        return existing[0]
    if vault.kind == "managedHSM":
        return assign_hsm_role(factory, vault, hsm_key_scope(target.key_name), principal_id, GRANTED_ROLE)
    if vault.rbac_authorization:
        return assign_role(
            factory, vault.vault_id, principal_id, CRYPTO_SERVICE_ENCRYPTION_USER, "ServicePrincipal"
        )
    return _add_access_policy(factory, vault, principal_id, list(CMK_KEY_PERMISSIONS), None)


def _probe(factory: ClientFactory, target: TargetSettings, principal_id: str) -> bool | None:
    """The service's own verdict when we have one: the policy's health (only for the policy's identity)."""
    policy = read_policy(factory, target)
    if policy is None or (policy.principal_id or "").lower() != principal_id.lower():
        return None
    health = (policy.health_status or "").lower()
    return {"healthy": True, "unhealthy": False}.get(health)


@cmk_task(task_run_name="wait-for-propagation-{principal_id}")
def wait_for_propagation(
    conn: ConnectionSettings,
    target: TargetSettings,
    principal_id: str,
    timeout: timedelta = PROPAGATION_TIMEOUT,
) -> PropagationResult:
    """Re-check (on the factory's clock) until ARM shows the grant and the policy's health no longer says the
    identity lacks access; role assignments take minutes to apply."""
    factory = ClientFactory.for_settings(conn)
    waited, checks = 0.0, 0
    while True:
        checks += 1
        vault = read_vault(factory, target.vault_id)
        visible = bool(read_key_grants(factory, vault, principal_id, target.key_name))
        probe = _probe(factory, target, principal_id) if visible else None
        if visible and probe is not False:
            return PropagationResult(
                principal_id=principal_id,
                scope=vault.vault_id,
                visible=True,
                probe_ok=probe,
                waited_seconds=waited,
                checks=checks,
            )
        if waited >= timeout.total_seconds():
            where = "on the managed HSM" if vault.kind == "managedHSM" else "in ARM"
            what = f"is not visible {where}" if not visible else "is visible but the policy is Unhealthy"
            raise TransientError(f"key access of {principal_id} {what} after {waited:.0f} s; run again later")
        factory.sleeper.sleep(PROPAGATION_POLL_SECONDS)
        waited += PROPAGATION_POLL_SECONDS


@cmk_task(task_run_name="revoke-key-access-{principal_id}")
def revoke_key_access(
    conn: ConnectionSettings, target: TargetSettings, principal_id: str
) -> AccessRevocation:
    """Remove every grant that gives the principal key access on the vault and return exactly what was
    removed (so unlock can restore it). Refuses, before removing anything, when access comes from an
    assignment above the vault (removing it would take away more than this vault)."""
    factory = ClientFactory.for_settings(conn)
    vault = read_vault(factory, target.vault_id)
    grants = read_key_grants(factory, vault, principal_id, target.key_name)
    inherited = [g.scope for g in grants if g.mechanism == "rbac" and not same_id(g.scope, vault.vault_id)]
    if inherited:
        raise ConfigError(
            "principal_id",
            f"{principal_id} holds key access through assignments at {', '.join(inherited)}, above the vault",
            "remove those assignments by hand, or lock by disabling the key instead",
        )
    removed: list[RoleGrant] = []
    for grant in grants:
        if grant.mechanism == "hsm_rbac":
            if not delete_hsm_grant(factory, vault, grant):
                continue  # removed meanwhile: nothing to restore
        elif grant.mechanism == "access_policy":
            _update_access_policy(
                factory,
                vault,
                "remove",
                grant.tenant_id or vault.tenant_id,
                principal_id,
                grant.key_permissions,
            )
        else:
            try:
                factory.authorization().role_assignments.delete_by_id(str(grant.assignment_id))
            except ResourceNotFoundError:
                continue  # removed meanwhile: nothing to restore
            except HttpResponseError as exc:
                raise_service_error(exc)
        removed.append(grant)
    return AccessRevocation(vault_id=vault.vault_id, principal_id=principal_id, removed=removed)


def _update_access_policy(
    factory: ClientFactory,
    vault: VaultStatus,
    kind: str,
    tenant_id: str | None,
    principal_id: str,
    permissions: list[str],
) -> None:
    """Add or remove one access policy entry (ARM `accessPolicies/{add|remove}`)."""
    rid = parse_resource_id(vault.vault_id)
    entry = {"tenantId": tenant_id, "objectId": principal_id, "permissions": {"keys": permissions}}
    parameters = VaultAccessPolicyParameters({"properties": {"accessPolicies": [entry]}})
    with service_errors():
        factory.keyvault_mgmt().vaults.update_access_policy(rid.resource_group, rid.name, kind, parameters)


@cmk_task(task_run_name="restore-key-access-{revocation.principal_id}")
def restore_key_access(conn: ConnectionSettings, revocation: AccessRevocation) -> list[RoleGrant]:
    """Put back exactly what `revoke_key_access` removed (same assignment names, same permissions)."""
    factory = ClientFactory.for_settings(conn)
    vault = read_vault(factory, revocation.vault_id)
    present = read_key_grants(factory, vault, revocation.principal_id)
    restored: list[RoleGrant] = []
    for grant in revocation.removed:
        if any(
            p.mechanism == grant.mechanism
            and role_guid(p.role_definition_id) == role_guid(grant.role_definition_id)
            for p in present
        ):
            restored.append(grant.model_copy(update={"changed": False}))
        elif grant.mechanism == "access_policy":
            restored.append(
                _add_access_policy(factory, vault, grant.principal_id, grant.key_permissions, grant.tenant_id)
            )
        elif grant.mechanism == "hsm_rbac":
            role = role_guid(grant.role_definition_id)
            name = assignment_name(grant) or None
            restored.append(assign_hsm_role(factory, vault, grant.scope, grant.principal_id, role, name))
        else:
            name = (grant.assignment_id or "").rstrip("/").rsplit("/", 1)[-1] or None
            restored.append(
                assign_role(
                    factory,
                    grant.scope,
                    grant.principal_id,
                    role_guid(grant.role_definition_id),
                    grant.principal_type or "ServicePrincipal",
                    name,
                )
            )
    return restored


def known_principals(field: str, conn: ConnectionSettings, names: Sequence[str]) -> None:
    """Each name (UPN or object id) is an existing user or service principal; a misspelt one is bad input
    naming `field`, not a finding of every run."""
    factory = ClientFactory.for_settings(conn)
    for name in names:
        check_principal(field, name, lambda who: lookup_principal(factory, who))



"""The doctor's checks of a managed HSM target's key access, read from the HSM's LOCAL role assignments."""

from __future__ import annotations

from collections.abc import Iterable

from ppcmk.models.azure import PolicyInfo, RoleGrant, VaultStatus
from ppcmk.models.findings import Finding, error, info
from ppcmk.services.hsm_rbac import (
    GRANTED_ROLE,
    HSM_ROLE_NAMES,
    ROLE_READERS_HINT,
    assign_az_command,
    hsm_key_scope,
)

GRANTED_ROLE_NAME = HSM_ROLE_NAMES[GRANTED_ROLE]


def check_hsm_key_access(
    vault: VaultStatus, policy: PolicyInfo, key_name: str, grants: Iterable[RoleGrant]
) -> list[Finding]:
    """Whether the policy identity holds a local role that lets it get, wrap and unwrap with the key."""
    if not policy.principal_id:
        return []
    held = [g for g in grants if g.mechanism == "hsm_rbac"]
    if held:
        return [
            info(
                "access.key",
                policy.policy_id,
                f"the policy identity holds {', '.join(sorted({_role_name(g) for g in held}))} at "
                f"{', '.join(sorted({g.scope for g in held}))} on the managed HSM {vault.name}",
            )
        ]
    return [
        error(
            "access.key",
            policy.policy_id,
            f"the policy identity {policy.principal_id} holds no local role on the managed HSM {vault.name} "
            f"that lets it use the key {key_name}; linked environments lock",
            f"grant {GRANTED_ROLE_NAME} at scope {hsm_key_scope(key_name)} (onboarding does this): "
            f"{assign_az_command(vault.name, key_name, policy.principal_id)}",
        )
    ]


def hsm_roles_unreadable(vault: VaultStatus, policy: PolicyInfo, status: int) -> Finding:
    """The HSM refused to list its role assignments to the caller: say what cannot be checked and why."""
    return info(
        "access.key",
        policy.policy_id,
        f"the managed HSM {vault.name} refused to list its local role assignments (HTTP {status}), so the "
        f"doctor cannot check that the policy identity {policy.principal_id} holds {GRANTED_ROLE_NAME}; "
        f"reading them takes a local role such as {ROLE_READERS_HINT} for the identity running the doctor",
    )


def _role_name(grant: RoleGrant) -> str:
    guid = (grant.role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()
    return HSM_ROLE_NAMES.get(guid, guid)

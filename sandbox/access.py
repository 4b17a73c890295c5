"""The ONE place that decides whether an enterprise policy's identity can use its key right now.

Link operations, policy health and the lock reconciler all ask `policy_key_access`; nothing else re-implements
these rules. The rules follow the CMK documentation: role Key Vault Crypto Service Encryption User (or
Crypto Officer / Administrator) on an RBAC vault, the local role Managed HSM Crypto Service Encryption User
(or Crypto User) on the key of a managed HSM, or an access policy with get + wrapKey + unwrapKey on an
access-policy vault, propagated; vault present and not deleted; key present and not deleted; the current
version (and a pinned version, if the policy pins one) enabled, active and not expired; wrapKey and unwrapKey
allowed; and the vault reachable by Power Platform (public network, or the trusted-services bypass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.keyvault.authz import firewall_blocks
from ppcmk_sandbox.keyvault.hsm_roles import has_local_role, key_scope, local_roles_allowing
from ppcmk_sandbox.rbac.roles import KEY_WRAP_ROLES

if TYPE_CHECKING:
    from ppcmk_sandbox.arm.state import EnterprisePolicy
    from ppcmk_sandbox.keyvault.state import KeyVersion
    from ppcmk_sandbox.world import World

REQUIRED_ACCESS_POLICY_KEY_PERMISSIONS = frozenset({"get", "wrapkey", "unwrapkey"})


@dataclass
class AccessVerdict:
    ok: bool
    reasons: list[str] = field(default_factory=list)


def policy_key_access(world: World, policy: EnterprisePolicy) -> AccessVerdict:
    reasons: list[str] = []
    now = world.clock.now()
    vault = world.keyvault.find_vault(policy.key_vault_id)
    if vault is None or vault.deleted:
        return AccessVerdict(False, [f"key vault {policy.key_vault_id} does not exist or is deleted"])
    properties: dict[str, Any] = vault.properties
    identity = policy.principal_id
    if vault.kind == "managedHSM":
        wrap_roles = local_roles_allowing("get", "wrapKey", "unwrapKey")
        if not has_local_role(vault.role_assignments, identity, key_scope(policy.key_name), wrap_roles):
            reasons.append(
                f"the policy identity {identity} holds no Managed HSM Crypto Service Encryption User role "
                f"(local RBAC) on /keys/{policy.key_name} of {vault.name}"
            )
    elif vault.rbac_authorization:
        if world.rbac is None or not world.rbac.has_role(identity, vault.arm_id, KEY_WRAP_ROLES, now):
            reasons.append(
                f"the policy identity {identity} holds no Key Vault Crypto Service Encryption User role "
                f"(propagated) on {vault.name}"
            )
    elif not _access_policy_grants(properties, identity):
        reasons.append(
            f"no access policy on {vault.name} gives the policy identity {identity} get+wrapKey+unwrapKey"
        )
    principal = world.identities.get(identity)
    if principal is None:
        reasons.append(f"the policy identity {identity} is not in the directory")
    elif firewall_blocks(vault, principal):
        reasons.append(
            f"{vault.name} refuses public network access without the trusted Microsoft services bypass"
        )
    key = vault.key(policy.key_name)
    if key is None:
        reasons.append(f"key {policy.key_name} does not exist in {vault.name} or is deleted")
        return AccessVerdict(False, reasons)
    in_use = [key.current]
    if policy.key_version:
        pinned = key.version(policy.key_version)
        if pinned is None:
            reasons.append(f"key version {policy.key_version} of {policy.key_name} does not exist")
        elif pinned is not in_use[0]:
            in_use.append(pinned)
    for version in in_use:
        reasons.extend(_version_reasons(policy.key_name, version, now))
    return AccessVerdict(not reasons, reasons)


def _access_policy_grants(properties: dict[str, Any], principal_id: str) -> bool:
    for entry in properties.get("accessPolicies") or []:
        if str(entry.get("objectId", "")).lower() != principal_id.lower():
            continue
        granted = {p.lower() for p in (entry.get("permissions") or {}).get("keys") or []}
        if "all" in granted or granted >= REQUIRED_ACCESS_POLICY_KEY_PERMISSIONS:
            return True
    return False


def _version_reasons(key_name: str, version: KeyVersion, now: datetime) -> list[str]:
    label = f"key {key_name} version {version.version}"
    reasons = []
    if not version.enabled:
        reasons.append(f"{label} is disabled")
    if version.nbf is not None and now < version.nbf:
        reasons.append(f"{label} is not active before {version.nbf.isoformat()}")
    if version.exp is not None and now >= version.exp:
        reasons.append(f"{label} expired at {version.exp.isoformat()}")
    missing = {"wrapkey", "unwrapkey"} - {op.lower() for op in version.key_ops}
    if missing:
        reasons.append(f"{label} does not allow {', '.join(sorted(missing))}")
    return reasons

"""The doctor's checks of the Power Platform side in Azure: the resource provider, the enterprise policy,
the policy identity's key access and the Power Platform admin's Reader role (a managed HSM's local roles:
`ppcmk.checks.hsm`). Pure functions from read-back facts to findings, like every check."""

from __future__ import annotations

from collections.abc import Iterable

from ppcmk.cloud.settings import TargetSettings
from ppcmk.models.arm_ids import same_id
from ppcmk.models.azure import PolicyInfo, ProviderStatus, RoleGrant, VaultStatus
from ppcmk.models.findings import Finding, FindingsAbout, error, info
from ppcmk.models.geo import canonical_geo, same_geo


def check_provider(status: ProviderStatus, target: TargetSettings) -> list[Finding]:
    subject = f"provider {status.namespace}"
    if not status.registered:
        return [
            error(
                "provider.registered",
                subject,
                f"the resource provider is {status.registration_state}",
                "register it (az provider register -n Microsoft.PowerPlatform); onboarding does this",
            )
        ]
    geos = {canonical_geo(loc.replace(" ", "")) or loc.lower() for loc in status.policy_locations}
    if geos and target.geo not in geos:
        return [
            error(
                "provider.location",
                subject,
                f"enterprise policies are not offered in {target.geo}",
                f"use one of {', '.join(sorted(geos))}",
            )
        ]
    return []


def check_policy(policy: PolicyInfo | None, target: TargetSettings) -> list[Finding]:
    if policy is None:
        return [
            info(
                "policy.exists",
                target.policy_name,
                "the enterprise policy does not exist yet; onboarding creates it",
            )
        ]
    found = FindingsAbout(policy.policy_id)
    if policy.kind.lower() != "encryption":
        found.error("policy.kind",
                    f"kind is {policy.kind}, not Encryption",
                    "use another policy name for the CMK policy")
    if (policy.identity_type or "").lower() != "systemassigned":
        found.error("policy.identity",
                    f"identity type is {policy.identity_type}, not SystemAssigned",
                    "recreate the policy with a system-assigned identity")
    for field, value in (("principalId", policy.principal_id), ("systemId", policy.system_id)):
        if not value:
            found.warning(f"policy.{field.lower()}",
                          f"the policy has no {field} yet (it appears some minutes after creation)",
                          "wait and run the doctor again")
    return found.findings + _policy_key_and_health(policy, target)


def _policy_key_and_health(policy: PolicyInfo, target: TargetSettings) -> list[Finding]:
    """The policy's geo and key against the target, a pinned key version, and its health."""
    found = FindingsAbout(policy.policy_id)
    if not same_geo(target.geo, policy.location):
        found.error("policy.geo",
                    f"policy is in {policy.location}, the target says {target.geo}",
                    "fix the target's geo, or create a policy in the right geo")
    same_key = (
        same_id(policy.key_vault_id, target.vault_id)
        and (policy.key_name or "").lower() == target.key_name.lower()
    )
    if not same_key:
        found.error("policy.key",
                    f"policy references {policy.key_name} in {policy.key_vault_id}, not the target key",
                    "fix the target, or use change-policy")
    if policy.key_version:
        found.warning("policy.pinned_version",
                      f"the policy pins key version {policy.key_version}; it will not follow rotation",
                      "move to a versionless policy with change-policy")
    if (policy.health_status or "").lower() == "unhealthy":
        found.error("policy.health",
                    "the policy is Unhealthy: its identity cannot use the key; "
                    "linked environments are locked or about to be",
                    "run unlock with this target: it repairs what keeps the identity from its key, whoever "
                    "caused it, and re-enables the locked environments")
    return found.findings


def check_key_access(vault: VaultStatus, policy: PolicyInfo, grants: Iterable[RoleGrant]) -> list[Finding]:
    """Whether the policy identity holds the key permissions the vault's permission model asks for (a managed
    HSM's local roles: `ppcmk.checks.hsm`)."""
    if not policy.principal_id:
        return []
    subject = policy.policy_id
    held = [g for g in grants if g.mechanism == vault.permission_model]
    if held:
        return [info("access.key", subject, f"the policy identity holds key access on {vault.name}")]
    fix = (
        "grant Key Vault Crypto Service Encryption User on the vault to the policy identity"
        if vault.rbac_authorization
        else "add an access policy with get, wrapKey and unwrapKey"
    )
    return [
        error(
            "access.key",
            subject,
            f"the policy identity {policy.principal_id} has no key access on {vault.name}",
            f"{fix} (onboarding does this)",
        )
    ]


def check_admin_reader(admin: str, policy: PolicyInfo, has_reader: bool) -> list[Finding]:
    if has_reader:
        return []
    return [
        error(
            "access.admin_reader",
            policy.policy_id,
            f"{admin} has no Reader role on the policy; the "
            "Power Platform admin cannot add environments to it",
            "grant Reader on the policy to the admin (ppcmk grants it during onboarding)",
        )
    ]

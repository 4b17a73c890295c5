"""The doctor's checks: pure functions from read-back facts to findings (each one unit-testable).

A check never raises and never stops at the first problem: it returns every finding about its object, each
with the fix. Gathering the facts is `tasks.doctor`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ppcmk.arm_ids import parse_resource_id, same_id
from ppcmk.azure_resources import (
    KeyInfo,
    PolicyInfo,
    ProviderStatus,
    RoleGrant,
    RotationPolicyInfo,
    VaultStatus,
)
from ppcmk.findings import Finding, error, info, warning
from ppcmk.geo import canonical_geo, same_geo
from ppcmk.settings import TargetSettings

EXPIRY_HORIZON = timedelta(days=30)
ROTATION_GRACE = timedelta(days=28)
DOCUMENTED_RSA_SIZES = (2048, 3072)


def key_subject(vault_id: str, key_name: str) -> str:
    return f"{parse_resource_id(vault_id).name}/keys/{key_name}"


# --------------------------------------------------------------------------------------------------- vault


def check_vault(vault: VaultStatus) -> list[Finding]:
    subject = vault.vault_id
    found: list[Finding] = []
    if not vault.soft_delete:
        found.append(
            error(
                "vault.soft_delete",
                subject,
                "soft delete is off; Power Platform refuses the vault",
                "enable soft delete on the vault (az keyvault update --enable-soft-delete true)",
            )
        )
    if not vault.purge_protection:
        found.append(
            error(
                "vault.purge_protection",
                subject,
                "purge protection is off; Power Platform refuses the vault",
                f"enable purge protection (az keyvault {'update' if vault.kind == 'vault' else 'update-hsm'} "
                "--enable-purge-protection true); it cannot be turned off again, so have the vault owner "
                "approve it",
            )
        )
    if vault.kind == "vault":
        model = "Azure RBAC" if vault.rbac_authorization else "vault access policies"
        found.append(
            info(
                "vault.permission_model",
                subject,
                f"permissions use {model}; the policy identity is granted "
                + (
                    "Key Vault Crypto Service Encryption User"
                    if vault.rbac_authorization
                    else "an access policy with get, wrapKey and unwrapKey"
                ),
            )
        )
    else:
        found.append(
            info(
                "vault.permission_model",
                subject,
                "a managed HSM uses local RBAC (role assignments on the HSM itself, not in ARM): the policy "
                "identity is granted Managed HSM Crypto Service Encryption User at /keys/<key>",
            )
        )
    if vault.network_restricted and not vault.trusted_services_bypass:
        found.append(
            error(
                "vault.network",
                subject,
                f"public network access is {vault.public_network_access} (default action "
                f"{vault.default_action}) without the trusted Microsoft services bypass; Power Platform "
                "cannot reach the key and linked environments lock",
                "allow trusted Microsoft services to bypass the firewall (networkAcls.bypass = "
                "AzureServices), or re-enable public network access",
            )
        )
    elif vault.network_restricted:
        found.append(
            info(
                "vault.network",
                subject,
                "network is restricted with the trusted Microsoft services bypass (supported)",
            )
        )
    return found


# ----------------------------------------------------------------------------------------------------- key


def check_key(key: KeyInfo | None, target: TargetSettings, now: datetime) -> list[Finding]:
    subject = key_subject(target.vault_id, target.key_name)
    if key is None:
        return [info("key.exists", subject, "the key does not exist yet; onboarding creates it")]
    found: list[Finding] = []
    if key.kty not in ("RSA", "RSA-HSM"):
        found.append(
            error(
                "key.type",
                subject,
                f"key type is {key.kty}; customer-managed keys must be RSA or RSA-HSM",
                "create a new RSA key (2048 or 3072 bits) and point the target at it",
            )
        )
    elif target.key_type == "RSA-HSM" and key.kty != "RSA-HSM":
        found.append(
            error(
                "key.type",
                subject,
                "the target asks for an HSM-protected key but the key is RSA",
                "set key_type to RSA, or create an RSA-HSM key",
            )
        )
    if key.kty in ("RSA", "RSA-HSM") and key.size is not None and key.size != target.key_size:
        found.append(
            error(
                "key.size",
                subject,
                f"the key has {key.size} bits, the target says {target.key_size}; onboarding would refuse it",
                f"set key_size to {key.size} in the target, or use another key name",
            )
        )
    elif key.kty in ("RSA", "RSA-HSM") and key.size is not None and key.size not in DOCUMENTED_RSA_SIZES:
        found.append(
            warning(
                "key.size",
                subject,
                f"key size {key.size} is not documented as supported (2048 or 3072)",
                "prefer a 2048 or 3072 bit key",
            )
        )
    if not key.enabled:
        found.append(
            error(
                "key.enabled",
                subject,
                f"the current version {key.version} is disabled",
                "enable the key version (or rotate to a new enabled version)",
            )
        )
    if key.not_before and key.not_before > now:
        found.append(
            error(
                "key.not_before",
                subject,
                f"the key is not active before {key.not_before:%Y-%m-%d}",
                "remove the activation date or wait until it passes",
            )
        )
    if key.expires_on and key.expires_on <= now:
        found.append(
            error(
                "key.expiry",
                subject,
                f"the key expired on {key.expires_on:%Y-%m-%d}; environments encrypted with it are locked",
                "rotate now (new version) and extend the expiry",
            )
        )
    elif key.expires_on and key.expires_on - now <= EXPIRY_HORIZON:
        days = (key.expires_on - now).days
        found.append(
            warning(
                "key.expiry",
                subject,
                f"the key expires in {days} days ({key.expires_on:%Y-%m-%d}); "
                "at expiry every environment using it goes down",
                "rotate the key (new version) before it expires, and set a rotation policy",
            )
        )
    missing = {"wrapKey", "unwrapKey"} - set(key.key_ops)
    if missing:
        found.append(
            error(
                "key.operations",
                subject,
                f"the key does not allow {', '.join(sorted(missing))}",
                "create a key (or version) whose operations include wrapKey and unwrapKey",
            )
        )
    return found


def check_rotation(policy: RotationPolicyInfo, target: TargetSettings) -> list[Finding]:
    subject = key_subject(target.vault_id, target.key_name)
    if not policy.configured:
        return [
            warning(
                "rotation.policy",
                subject,
                "no rotation policy: the key never rotates by itself",
                "set a rotation policy (e.g. rotate every 90 days, expire after 365)",
            )
        ]
    found: list[Finding] = []
    rotate_at = policy.rotate_after_create
    if (
        policy.expires_after is not None
        and rotate_at is not None
        and policy.expires_after < rotate_at + ROTATION_GRACE
    ):
        found.append(
            error(
                "rotation.expiry",
                subject,
                f"versions expire {policy.expires_after.days} days after creation, less than 28 days "
                f"after the rotation at day {rotate_at.days}; the previous version must stay usable "
                "28 days after rotation",
                f"set the expiry to at least {rotate_at.days + 28} days",
            )
        )
    if policy.expires_after is not None and rotate_at is None and policy.rotate_before_expiry is None:
        found.append(
            warning(
                "rotation.expiry",
                subject,
                "versions expire but nothing rotates them",
                "add a Rotate action to the rotation policy",
            )
        )
    return found


# ------------------------------------------------------------------------------------------- ARM, policy


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
    subject = policy.policy_id
    found: list[Finding] = []
    if policy.kind.lower() != "encryption":
        found.append(
            error(
                "policy.kind",
                subject,
                f"kind is {policy.kind}, not Encryption",
                "use another policy name for the CMK policy",
            )
        )
    if (policy.identity_type or "").lower() != "systemassigned":
        found.append(
            error(
                "policy.identity",
                subject,
                f"identity type is {policy.identity_type}, not SystemAssigned",
                "recreate the policy with a system-assigned identity",
            )
        )
    for field, value in (("principalId", policy.principal_id), ("systemId", policy.system_id)):
        if not value:
            found.append(
                warning(
                    f"policy.{field.lower()}",
                    subject,
                    f"the policy has no {field} yet (it appears some minutes after creation)",
                    "wait and run the doctor again",
                )
            )
    if not same_geo(target.geo, policy.location):
        found.append(
            error(
                "policy.geo",
                subject,
                f"policy is in {policy.location}, the target says {target.geo}",
                "fix the target's geo, or create a policy in the right geo",
            )
        )
    same_key = (
        same_id(policy.key_vault_id, target.vault_id)
        and (policy.key_name or "").lower() == target.key_name.lower()
    )
    if not same_key:
        found.append(
            error(
                "policy.key",
                subject,
                f"policy references {policy.key_name} in {policy.key_vault_id}, not the target key",
                "fix the target, or use change-policy",
            )
        )
    if policy.key_version:
        found.append(
            warning(
                "policy.pinned_version",
                subject,
                f"the policy pins key version {policy.key_version}; it will not follow rotation",
                "move to a versionless policy with change-policy",
            )
        )
    if (policy.health_status or "").lower() == "unhealthy":
        found.append(
            error(
                "policy.health",
                subject,
                "the policy is Unhealthy: its identity cannot use the key; "
                "linked environments are locked or about to be",
                "restore the identity's key access, then re-enable locked environments (unlock)",
            )
        )
    return found


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

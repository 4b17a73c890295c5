"""The doctor's checks of the vault (or managed HSM), the key and its rotation policy.

A check is a pure function from read-back facts to findings: it never raises and never stops at the first
problem, and every finding carries its fix. Gathering the facts is `tasks.doctor`'s job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ppcmk.cloud.settings import TargetSettings
from ppcmk.models.arm_ids import parse_resource_id
from ppcmk.models.azure import KeyInfo, RotationPolicyInfo, VaultStatus
from ppcmk.models.findings import Finding, FindingsAbout, error, info, warning

EXPIRY_HORIZON = timedelta(days=30)
ROTATION_GRACE = timedelta(days=28)
DOCUMENTED_RSA_SIZES = (2048, 3072)


def key_subject(vault_id: str, key_name: str) -> str:
    return f"{parse_resource_id(vault_id).name}/keys/{key_name}"


# --------------------------------------------------------------------------------------------------- vault


def check_vault(vault: VaultStatus) -> list[Finding]:
    found = FindingsAbout(vault.vault_id)
    if not vault.soft_delete:
        found.error("vault.soft_delete",
                    "soft delete is off; Power Platform refuses the vault",
                    "enable soft delete on the vault (az keyvault update --enable-soft-delete true)")
    if not vault.purge_protection:
        update = "update" if vault.kind == "vault" else "update-hsm"
        found.error("vault.purge_protection", "purge protection is off; Power Platform refuses the vault",
                    f"enable purge protection (az keyvault {update} --enable-purge-protection true); it "
                    "cannot be turned off again, so have the vault owner approve it")
    return found.findings + _permission_model(vault) + _network(vault)


def _permission_model(vault: VaultStatus) -> list[Finding]:
    subject = vault.vault_id
    if vault.kind == "vault":
        model = "Azure RBAC" if vault.rbac_authorization else "vault access policies"
        return [
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
        ]
    return [
        info(
            "vault.permission_model",
            subject,
            "a managed HSM uses local RBAC (role assignments on the HSM itself, not in ARM): the policy "
            "identity is granted Managed HSM Crypto Service Encryption User at /keys/<key>",
        )
    ]


def _network(vault: VaultStatus) -> list[Finding]:
    subject = vault.vault_id
    if vault.network_restricted and not vault.trusted_services_bypass:
        return [
            error(
                "vault.network",
                subject,
                f"public network access is {vault.public_network_access} (default action "
                f"{vault.default_action}) without the trusted Microsoft services bypass; Power Platform "
                "cannot reach the key and linked environments lock",
                "allow trusted Microsoft services to bypass the firewall (networkAcls.bypass = "
                "AzureServices), or re-enable public network access",
            )
        ]
    if vault.network_restricted:
        return [info("vault.network", subject,
                     "network is restricted with the trusted Microsoft services bypass (supported)")]
    return []


# ----------------------------------------------------------------------------------------------------- key


def check_key(key: KeyInfo | None, target: TargetSettings, now: datetime) -> list[Finding]:
    subject = key_subject(target.vault_id, target.key_name)
    if key is None:
        return [info("key.exists", subject, "the key does not exist yet; onboarding creates it")]
    return _key_kind(key, target, subject) + _key_state(key, now, subject) + _key_operations(key, subject)


def _key_kind(key: KeyInfo, target: TargetSettings, subject: str) -> list[Finding]:
    """The key's type and size against what Power Platform accepts and what the target says."""
    found = FindingsAbout(subject)
    if key.kty not in ("RSA", "RSA-HSM"):
        found.error("key.type",
                    f"key type is {key.kty}; customer-managed keys must be RSA or RSA-HSM",
                    "create a new RSA key (2048 or 3072 bits) and point the target at it")
    elif target.key_type == "RSA-HSM" and key.kty != "RSA-HSM":
        found.error("key.type",
                    "the target asks for an HSM-protected key but the key is RSA",
                    "set key_type to RSA, or create an RSA-HSM key")
    if key.kty in ("RSA", "RSA-HSM") and key.size is not None and key.size != target.key_size:
        found.error("key.size",
                    f"the key has {key.size} bits, the target says {target.key_size}; onboarding would "
                    "refuse it",
                    f"set key_size to {key.size} in the target, or use another key name")
    elif key.kty in ("RSA", "RSA-HSM") and key.size is not None and key.size not in DOCUMENTED_RSA_SIZES:
        found.warning("key.size",
                      f"key size {key.size} is not documented as supported (2048 or 3072)",
                      "prefer a 2048 or 3072 bit key")
    return found.findings


def _key_state(key: KeyInfo, now: datetime, subject: str) -> list[Finding]:
    """Enabled, active, and not expired or about to."""
    found = FindingsAbout(subject)
    if not key.enabled:
        found.error("key.enabled",
                    f"the current version {key.version} is disabled",
                    "run unlock with this target: it enables the version and re-enables any environment it "
                    "locked")
    if key.not_before and key.not_before > now:
        found.error("key.not_before",
                    f"the key is not active before {key.not_before:%Y-%m-%d}",
                    "remove the activation date or wait until it passes")
    if key.expires_on and key.expires_on <= now:
        found.error("key.expiry",
                    f"the key expired on {key.expires_on:%Y-%m-%d}; environments encrypted with it are "
                    "locked",
                    "run unlock with this target: it extends the expiry and re-enables the locked "
                    "environments; then rotate")
    elif key.expires_on and key.expires_on - now <= EXPIRY_HORIZON:
        days = (key.expires_on - now).days
        found.warning("key.expiry",
                      f"the key expires in {days} days ({key.expires_on:%Y-%m-%d}); "
                      "at expiry every environment using it goes down",
                      "rotate the key (new version) before it expires, and set a rotation policy")
    return found.findings


def _key_operations(key: KeyInfo, subject: str) -> list[Finding]:
    missing = {"wrapKey", "unwrapKey"} - set(key.key_ops)
    if not missing:
        return []
    return [
        error(
            "key.operations",
            subject,
            f"the key does not allow {', '.join(sorted(missing))}",
            "create a key (or version) whose operations include wrapKey and unwrapKey",
        )
    ]


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
    found = FindingsAbout(subject)
    rotate_at = policy.rotate_after_create
    if (
        policy.expires_after is not None
        and rotate_at is not None
        and policy.expires_after < rotate_at + ROTATION_GRACE
    ):
        found.error("rotation.expiry",
                    f"versions expire {policy.expires_after.days} days after creation, less than 28 days "
                    f"after the rotation at day {rotate_at.days}; the previous version must stay usable "
                    "28 days after rotation",
                    f"set the expiry to at least {rotate_at.days + 28} days")
    if policy.expires_after is not None and rotate_at is None and policy.rotate_before_expiry is None:
        found.warning("rotation.expiry",
                      "versions expire but nothing rotates them",
                      "add a Rotate action to the rotation policy")
    return found.findings

"""The controls an auditor checks, as read now, each with what shows it: the vault's soft delete, purge
protection and network; the key's type and size, state, expiry and rotation policy; the policy's health, its
versionless key reference and its identity's key access. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ppcmk.evidence.model import Control
from ppcmk.models.azure import KeyInfo, RotationPolicyInfo
from ppcmk.watch.estate import EstateFacts, PolicyFact, VaultFact

DOCUMENTED_SIZES = (2048, 3072)


@dataclass(frozen=True)
class KeyReading:
    """A key's current version and rotation policy (ARM), beside the watch facts."""

    vault_id: str
    name: str
    key: KeyInfo | None
    rotation: RotationPolicyInfo


def vault_controls(vault: VaultFact) -> Iterator[Control]:
    props = f"ARM Microsoft.KeyVault/vaults/{vault.name} properties"
    yield Control(object=vault.name, control="soft delete", value="on" if vault.soft_delete else "off",
                  ok=vault.soft_delete, evidence=f"{props}.enableSoftDelete")
    purge = "on" if vault.purge_protection else "off"
    yield Control(object=vault.name, control="purge protection", value=purge, ok=vault.purge_protection,
                  evidence=f"{props}.enablePurgeProtection")
    bypass = "with" if vault.trusted_services_bypass else "without"
    yield Control(object=vault.name, control="network rules",
                  value=f"public access {vault.public_network_access}, default action "
                        f"{vault.default_action}, {bypass} the trusted Microsoft services bypass",
                  ok=not vault.network_restricted or vault.trusted_services_bypass,
                  evidence=f"{props}.publicNetworkAccess, networkAcls")
    yield Control(object=vault.name, control="permission model",
                  value="Azure RBAC" if vault.rbac_authorization else "access policies", ok=True,
                  evidence=f"{props}.enableRbacAuthorization")


def key_controls(reading: KeyReading, facts: EstateFacts) -> Iterator[Control]:
    label = f"{reading.vault_id.rstrip('/').rsplit('/', 1)[-1]}/{reading.name}"
    key = reading.key
    evidence = f"ARM key {label}"
    if key is None:
        yield Control(object=label, control="exists", value="deleted or missing", ok=False, evidence=evidence)
        return
    kty_ok = key.kty.upper() in ("RSA", "RSA-HSM") and key.size in DOCUMENTED_SIZES
    yield Control(object=label, control="key type and size", value=f"{key.kty} {key.size or '?'}", ok=kty_ok,
                  evidence=f"{evidence}: kty, keySize (documented: RSA or RSA-HSM, 2048 or 3072)")
    yield Control(object=label, control="current version", value=f"{key.version} "
                  f"({'enabled' if key.enabled else 'disabled'})", ok=key.enabled, evidence=f"{evidence}: "
                  "attributes.enabled")
    expired = key.expires_on is not None and key.expires_on <= facts.now
    yield Control(object=label, control="expiry", value=f"{key.expires_on:%Y-%m-%d %H:%M}" if key.expires_on
                  else "none", ok=not expired, evidence=f"{evidence}: attributes.exp")
    yield Control(object=label, control="rotation policy", value=reading.rotation.text, ok=True,
                  evidence=f"{evidence}: rotationPolicy (ppcmk's rotate runbook rotates on its own schedule)")


def policy_controls(policy: PolicyFact) -> Iterator[Control]:
    evidence = f"ARM Microsoft.PowerPlatform/enterprisePolicies/{policy.name}"
    yield Control(object=policy.name, control="health", value=policy.health_status or "unknown",
                  ok=(policy.health_status or "").lower() == "healthy", evidence=f"{evidence}: healthStatus")
    yield Control(object=policy.name, control="key reference",
                  value=f"pinned to version {policy.key_version}" if policy.key_version
                  else f"{policy.key_name} without a version (follows rotation)", ok=not policy.key_version,
                  evidence=f"{evidence}: encryption.keyVault.key")
    if policy.key_grants is not None:
        yield Control(object=policy.name, control="identity's key access",
                      value=f"{len(policy.key_grants)} grant(s)" if policy.key_grants else "none",
                      ok=bool(policy.key_grants), evidence="role assignments or access policy entries of the "
                      f"policy identity {policy.principal_id}")
    if policy.hold_until:
        yield Control(object=policy.name, control="hold", value=f"until {policy.hold_until:%Y-%m-%d}",
                      ok=True, evidence=f"{evidence}: tag ppcmk-hold-until")


def controls(facts: EstateFacts, policies: list[PolicyFact], keys: list[KeyReading]) -> list[Control]:
    vault_ids = {(p.key_vault_id or "").lower() for p in policies}
    found = [c for v in facts.vaults if v.vault_id.lower() in vault_ids for c in vault_controls(v)]
    found += [c for k in keys for c in key_controls(k, facts)]
    found += [c for p in policies for c in policy_controls(p)]
    return found

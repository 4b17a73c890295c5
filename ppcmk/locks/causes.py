"""Why an enterprise policy's identity cannot use its key, and what gives it back. Pure: facts in, causes out.

Microsoft lists the ways a policy identity loses its key (cmk-lock-unlock.md): its role assignment or access
policy removed, the key or the key version in use disabled, the key or the vault deleted, the policy deleted,
public network access turned off or a firewall rule that leaves Microsoft out. Each lock locks every linked
environment, whoever caused it. A cause either has a repair the unlock runbook makes with the Key Vault
admin's rights, or names the manual step (a purged key or vault, a deleted policy: nothing left to restore).
Repairs run in `REPAIR_ORDER`, so that each one can reach what the next needs: a recovered vault before its
network, an open network before the key's data plane, the key before the identity's access to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from ppcmk.models.azure import KeyInfo, PolicyInfo, RoleGrant, VaultStatus

RepairAction = Literal[
    "recover-vault", "allow-trusted-services", "recover-key", "repair-key-version", "restore-access"
]
REPAIR_ORDER: tuple[RepairAction, ...] = (
    "recover-vault", "allow-trusted-services", "recover-key", "repair-key-version", "restore-access"
)
# An expired version in use gets this much more life: long enough to rotate on a normal schedule.
EXPIRY_EXTENSION = timedelta(days=90)
WRAP_OPERATIONS = ("wrapKey", "unwrapKey")


class DeletedItem(BaseModel):
    """A soft-deleted vault or key: recoverable until it is purged."""

    name: str
    deleted_on: datetime | None = None
    purge_on: datetime | None = None


class KeyAccessReading(BaseModel):
    """What the Key Vault admin's identity can read about one policy's use of its key."""

    policy_name: str
    policy: PolicyInfo | None = None
    vault_id: str = Field(description="the policy's vault (the target's when the policy is gone)")
    vault: VaultStatus | None = None
    deleted_vault: DeletedItem | None = None
    key_name: str
    versions_in_use: list[KeyInfo] = Field(default_factory=list, description="current, then a pinned one")
    deleted_key: DeletedItem | None = None
    grants: list[RoleGrant] = Field(default_factory=list)
    data_plane_reachable: bool = Field(default=True, description="False: the vault's firewall refuses the "
                                                                 "reader's own data-plane calls")
    now: datetime

    @property
    def vault_name(self) -> str:
        return self.vault_id.rstrip("/").rsplit("/", 1)[-1]


class LockCause(BaseModel):
    """One reason the identity cannot use its key, with the repair unlock makes or the manual step."""

    kind: str = Field(description="e.g. access.removed, key.disabled, vault.network")
    subject: str = Field(description="what it is about, by name")
    message: str
    since: datetime | None = Field(default=None, description="when it began, by the service's own clock")
    since_by: str = Field(default="", description="what dates it, e.g. the key version's update time")
    repair: RepairAction | None = Field(default=None, description="None: ppcmk cannot repair it")
    version: str | None = Field(default=None, description="the key version a repair-key-version fixes")
    problems: list[str] = Field(default_factory=list, description="what is wrong with that version")
    manual: str = Field(default="", description="the step a person takes when there is no repair")

    @property
    def repairable(self) -> bool:
        return self.repair is not None


def diagnose(reading: KeyAccessReading) -> list[LockCause]:
    """Every reason the policy's identity cannot use its key now, repairs in the order they must run."""
    if reading.policy is None:
        return [_policy_deleted(reading)]
    causes = _vault_causes(reading)
    if reading.vault is not None:
        causes += _key_causes(reading)
        if not reading.grants:
            causes.append(_access_removed(reading, reading.policy))
    if not reading.data_plane_reachable and any(_on_data_plane(c, reading) for c in causes):
        causes.append(_unreachable(reading))
    return sorted(causes, key=lambda c: REPAIR_ORDER.index(c.repair) if c.repair else len(REPAIR_ORDER))


def _on_data_plane(cause: LockCause, reading: KeyAccessReading) -> bool:
    """Whether the repair calls the vault itself (a key's attributes, a deleted key, a managed HSM's local
    roles) rather than ARM, so that the vault's firewall applies to it."""
    hsm = reading.vault is not None and reading.vault.kind == "managedHSM"
    return cause.repair in ("recover-key", "repair-key-version") or (cause.repair == "restore-access" and hsm)


def _unreachable(reading: KeyAccessReading) -> LockCause:
    return LockCause(kind="vault.unreachable", subject=reading.vault_name,
                     message=f"the firewall of {reading.vault_name} refuses this runbook's own calls to the "
                             "vault, which repairing the key needs (letting trusted Microsoft services "
                             "through opens it to Power Platform only)",
                     manual="run unlock on a worker inside the vault's network (one that reaches its private "
                            "endpoint), or allow this worker's address in the vault's firewall while it runs")


def _policy_deleted(reading: KeyAccessReading) -> LockCause:
    return LockCause(kind="policy.deleted", subject=reading.policy_name,
                     message=f"the enterprise policy {reading.policy_name} no longer exists, so nothing can "
                             "restore its identity's access",
                     manual="open a Microsoft support case now naming each locked environment; a new policy "
                            "gets a new identity, which the locked environments do not know")


def _vault_causes(reading: KeyAccessReading) -> list[LockCause]:
    name = reading.vault_name
    if reading.vault is None:
        deleted = reading.deleted_vault
        if deleted is not None:
            return [LockCause(kind="vault.deleted", subject=name, since=deleted.deleted_on,
                              since_by="the vault's deletion date", repair="recover-vault",
                              message=f"the key vault {name} is deleted (recoverable until "
                                      f"{_day(deleted.purge_on)})")]
        return [LockCause(kind="vault.purged", subject=name,
                          message=f"the key vault {name} no longer exists and is not recoverable",
                          manual="restore the vault and its key from a backup into the same vault name "
                                 "(az keyvault key restore), or open a Microsoft support case")]
    vault = reading.vault
    if vault.network_restricted and not vault.trusted_services_bypass:
        closed = ("public network access is disabled" if vault.public_network_access.lower() == "disabled"
                  else f"its firewall denies by default ({vault.ip_rules} IP and "
                       f"{vault.virtual_network_rules} network rules)")
        return [LockCause(kind="vault.network", subject=name, repair="allow-trusted-services",
                          message=f"{name}: {closed} without the trusted Microsoft services bypass, so Power "
                                  "Platform cannot reach the key")]
    return []


def _key_causes(reading: KeyAccessReading) -> list[LockCause]:
    label = f"{reading.vault_name}/{reading.key_name}"
    if not reading.versions_in_use:
        deleted = reading.deleted_key
        if deleted is None:
            return [LockCause(kind="key.purged", subject=label,
                              message=f"the key {label} does not exist and is not recoverable",
                              manual="restore the key from its backup (az keyvault key restore --vault-name "
                                     f"{reading.vault_name} --file <backup>), or open a Microsoft support "
                                     "case")]
        return [LockCause(kind="key.deleted", subject=label, since=deleted.deleted_on,
                          since_by="the key's deletion date", repair="recover-key",
                          message=f"the key {label} is deleted (recoverable until {_day(deleted.purge_on)})")]
    causes = []
    for index, version in enumerate(reading.versions_in_use):
        problems = version_problems(version, reading.now)
        if problems:
            first = problems[0][0]
            disabled = "key.version_disabled" if index else "key.disabled"
            which = "version the policy pins" if index else "current version"
            causes.append(LockCause(kind=disabled if first == "disabled" else f"key.{first}",
                                    subject=f"{label} version {version.version[:8]}",
                                    since=version.updated_on, since_by="the key version's last update",
                                    repair="repair-key-version", version=version.version,
                                    problems=[kind for kind, _ in problems],
                                    message=f"the {which} of {label}: " + "; ".join(p[1] for p in problems)))
    return causes


def version_problems(version: KeyInfo, now: datetime) -> list[tuple[str, str]]:
    """What keeps Power Platform from wrapping with this version: (short kind, description) pairs."""
    problems = []
    if not version.enabled:
        problems.append(("disabled", "disabled"))
    if version.expires_on is not None and version.expires_on <= now:
        problems.append(("expired", f"expired on {version.expires_on:%Y-%m-%d %H:%M}"))
    if version.not_before is not None and version.not_before > now:
        problems.append(("not_active", f"not active before {version.not_before:%Y-%m-%d %H:%M}"))
    missing = [op for op in WRAP_OPERATIONS if op not in version.key_ops]
    if missing and version.key_ops:
        problems.append(("operations", f"does not allow {' and '.join(missing)}"))
    return problems


def _access_removed(reading: KeyAccessReading, policy: PolicyInfo) -> LockCause:
    return LockCause(kind="access.removed", subject=policy.name, repair="restore-access",
                     message=f"the identity of {policy.name} ({policy.principal_id}) holds no key access on "
                             f"{reading.vault_name}")


def _day(instant: datetime | None) -> str:
    return f"{instant:%Y-%m-%d}" if instant else "its purge date"


_VERSION_FIXES = {"disabled": "enable it", "expired": f"extend its expiry by {EXPIRY_EXTENSION.days} days",
                  "not_active": "activate it now", "operations": "allow wrapKey and unwrapKey"}
_ACTIONS: dict[RepairAction, str] = {
    "recover-vault": "recover the deleted vault as it was",
    "allow-trusted-services": "let trusted Microsoft services through the firewall (bypass AzureServices; "
                              "its rules and default action stay)",
    "recover-key": "recover the deleted key with all its versions",
    "restore-access": "give the policy's identity its key access back",
}


def repair_action(cause: LockCause) -> str:
    """What the repair of `cause` does, in the words of a plan."""
    if cause.repair == "repair-key-version":
        return f"version {str(cause.version)[:8]}: " + ", ".join(_VERSION_FIXES[p] for p in cause.problems)
    return _ACTIONS[cause.repair] if cause.repair else f"none: {cause.manual}"

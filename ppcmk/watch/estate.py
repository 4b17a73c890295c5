"""The estate as a watch run read it: plain facts about vaults, keys, policies, environments, lock records.

`tasks.estate` gathers them from the cloud and the Prefect server; `ppcmk.watch.rules` turns them into
findings. Keeping the facts in the core package (no SDK objects) lets the rules be pure functions that tests
feed directly.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ppcmk.models.azure import PolicyBasics
from ppcmk.models.environments import EnvironmentOperation


class VaultFact(BaseModel):
    vault_id: str
    name: str
    exists: bool = True
    kind: str = "vault"  # vault | managedHSM
    soft_delete: bool = True
    purge_protection: bool = True
    rbac_authorization: bool = True
    public_network_access: str = "Enabled"
    default_action: str = "Allow"
    trusted_services_bypass: bool = True

    @property
    def network_restricted(self) -> bool:
        return self.public_network_access.lower() == "disabled" or self.default_action.lower() == "deny"


class KeyVersionFact(BaseModel):
    version: str
    enabled: bool = True
    created_on: datetime | None = None
    not_before: datetime | None = None
    expires_on: datetime | None = None
    hold_until: datetime | None = None
    hold_reason: str | None = None


class KeyFact(BaseModel):
    vault_id: str
    vault_name: str
    name: str
    exists: bool = True
    current_version: str = ""
    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    created_on: datetime | None = None
    updated_on: datetime | None = Field(default=None, description="when the current version last changed")
    rotate_after_days: int | None = Field(default=None, description="from the key's rotation policy")
    versions: list[KeyVersionFact] = Field(default_factory=list, description="newest first")

    @property
    def label(self) -> str:
        return f"{self.vault_name}/{self.name}"


class GrantFact(BaseModel):
    """One role assignment (or access policy entry) giving the policy identity key access."""

    role: str
    scope: str
    created_on: datetime | None = None


class ReaderFact(BaseModel):
    admin: str
    has_reader: bool


class PolicyFact(PolicyBasics):
    """A policy as watch judges it: the basics, its identity's key access, its readers, its hold."""

    resource_group: str
    key_grants: list[GrantFact] | None = Field(default=None, description="None: not checked (e.g. an HSM)")
    readers: list[ReaderFact] = Field(default_factory=list)
    hold_until: datetime | None = None
    hold_reason: str | None = None


class EnvironmentFact(BaseModel):
    id: str
    name: str
    sku: str = ""
    runtime_state: str = ""
    runtime_reason: str = ""
    policy_id: str | None = None
    link_status: str | None = None
    key_managed_by: str = "Microsoft"
    last_modified: datetime | None = Field(default=None, description="the service's lastModifiedTime")
    operations: list[EnvironmentOperation] | None = Field(default=None,
                                                         description="None: not read (not needed)")

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def locked(self) -> bool:
        return self.runtime_reason.lower() == "customermanagedkeylocked"

    @property
    def cmk_in_progress(self) -> bool:
        return self.runtime_reason.lower() == "customermanagedkeyoperationinprogress"

    @property
    def linked(self) -> bool:
        return (self.link_status or "").lower() == "linked"


class LockFact(BaseModel):
    """A lock record ppcmk's lock runbook wrote: when each environment is deleted unless unlocked."""

    policy_id: str
    policy_name: str
    state: str
    locked_at: datetime
    deleted_after: dict[str, datetime] = Field(default_factory=dict, description="environment id → when")
    names: dict[str, str] = Field(default_factory=dict, description="environment id → display name")


class TargetFact(BaseModel):
    """A CmkTarget block saved on the server: what a fix can name for a runbook's `target`."""

    block: str
    policy_name: str
    resource_group: str
    vault_id: str
    key_name: str


class ReadFailure(BaseModel):
    object: str
    what: str
    message: str


ENVIRONMENT_LIST = "the environment list"


class EstateFacts(BaseModel):
    now: datetime
    vaults: list[VaultFact] = Field(default_factory=list)
    vault_keys: list[KeyFact] = Field(default_factory=list)
    policies: list[PolicyFact] = Field(default_factory=list)
    environments: list[EnvironmentFact] = Field(default_factory=list)
    locks: list[LockFact] = Field(default_factory=list)
    failures: list[ReadFailure] = Field(default_factory=list)
    targets: list[TargetFact] = Field(default_factory=list, description="the CmkTarget blocks saved")

    @property
    def environments_listed(self) -> bool:
        """False when the environment list could not be read (then no environment is known to be gone)."""
        return not any(f.what == ENVIRONMENT_LIST for f in self.failures)

    def vault(self, vault_id: str | None) -> VaultFact | None:
        wanted = (vault_id or "").lower()
        return next((v for v in self.vaults if v.vault_id.lower() == wanted), None)

    def key(self, vault_id: str | None, name: str | None) -> KeyFact | None:
        wanted = ((vault_id or "").lower(), (name or "").lower())
        return next((k for k in self.vault_keys if (k.vault_id.lower(), k.name.lower()) == wanted), None)

    def policy(self, policy_id: str | None) -> PolicyFact | None:
        wanted = (policy_id or "").lower()
        return next((p for p in self.policies if p.policy_id.lower() == wanted), None)

    def policy_named(self, name: str) -> PolicyFact | None:
        return next((p for p in self.policies if p.name.lower() == name.lower()), None)

    def linked_to(self, policy: PolicyFact) -> list[EnvironmentFact]:
        return [e for e in self.environments if (e.policy_id or "").lower() == policy.policy_id.lower()]

    def lock_deletion(self, environment_id: str) -> datetime | None:
        """When ppcmk's open lock record says the service deletes the environment."""
        for lock in self.open_locks():
            for env_id, when in lock.deleted_after.items():
                if env_id.lower() == environment_id.lower():
                    return when
        return None

    def target_for(self, policy: PolicyFact) -> str | None:
        """The CmkTarget block naming the policy, preferring one on the policy's own vault and key (then by
        name, so the choice is stable)."""
        naming = [t for t in self.targets if t.policy_name.lower() == policy.name.lower()
                  and t.resource_group.lower() == policy.resource_group.lower()]
        same_key = [t for t in naming if t.vault_id.lower() == (policy.key_vault_id or "").lower()
                    and t.key_name.lower() == (policy.key_name or "").lower()]
        return min((t.block for t in same_key or naming), default=None)

    def open_locks(self) -> list[LockFact]:
        return [lock for lock in self.locks if lock.state != "unlocked"]

"""The Azure resources a customer-managed key rests on, as ppcmk reads and changes them: the vault and its
key, the Power Platform provider and enterprise policy, and the role grants between them. The tasks return
these, the doctor's checks judge them, the flows plan with them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, TypeAdapter

from ppcmk.models.arm_ids import same_id
from ppcmk.models.environments import Environment

PermissionModel = Literal["rbac", "access_policy"]

_DURATION = TypeAdapter(timedelta)


def parse_iso_duration(text: str) -> timedelta:
    """An ISO-8601 duration as Key Vault returns them (P90D, P1Y, PT12H), parsed by pydantic: a year is 365
    days, a month 30. Raises ValueError (pydantic's ValidationError) for what is not a duration."""
    return _DURATION.validate_python(text.strip().upper())


def iso_days(days: int) -> str:
    return f"P{days}D"


# ----------------------------------------------------------------------------------------------- Key Vault


class AccessPolicyEntry(BaseModel):
    object_id: str
    tenant_id: str | None = None
    key_permissions: list[str] = Field(default_factory=list)

    def allows(self, *permissions: str) -> bool:
        granted = {p.lower() for p in self.key_permissions}
        return "all" in granted or all(p.lower() in granted for p in permissions)


class VaultStatus(BaseModel):
    """The ARM properties of a vault (or managed HSM) that decide whether it can hold a CMK key."""

    vault_id: str
    name: str
    kind: Literal["vault", "managedHSM"] = "vault"
    vault_uri: str
    location: str | None = None
    tenant_id: str | None = None
    soft_delete: bool
    purge_protection: bool
    rbac_authorization: bool
    public_network_access: str = "Enabled"
    default_action: str = "Allow"
    bypass: str = "AzureServices"
    ip_rules: int = 0
    virtual_network_rules: int = 0
    access_policies: list[AccessPolicyEntry] = Field(default_factory=list)

    @property
    def permission_model(self) -> PermissionModel:
        return "rbac" if self.rbac_authorization else "access_policy"

    @property
    def network_restricted(self) -> bool:
        return self.public_network_access.lower() == "disabled" or self.default_action.lower() == "deny"

    @property
    def trusted_services_bypass(self) -> bool:
        return "azureservices" in self.bypass.replace(" ", "").lower().split(",")

    def access_policy_for(self, object_id: str) -> AccessPolicyEntry | None:
        return next((p for p in self.access_policies if p.object_id.lower() == object_id.lower()), None)


class KeyInfo(BaseModel):
    """One key as the data plane reports it (its current version unless a version was asked for)."""

    vault_id: str
    name: str
    kid: str = Field(description="versioned key id (https://<vault>/keys/<name>/<version>)")
    version: str
    kty: str
    size: int | None = None
    key_ops: list[str] = Field(default_factory=list)
    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    created_on: datetime | None = None
    updated_on: datetime | None = Field(default=None, description="when its attributes last changed")
    created: bool = Field(
        default=False, description="True when this task run created the key (or the version)"
    )

    @property
    def versionless_id(self) -> str:
        return self.kid.rsplit("/", 1)[0]


class KeyVersionInfo(BaseModel):
    version: str
    kid: str
    enabled: bool
    created_on: datetime | None
    not_before: datetime | None = None
    expires_on: datetime | None = None
    age_days: float | None = Field(
        default=None, description="days since the version was created (cloud clock)"
    )
    current: bool = False


class KeyVersions(BaseModel):
    vault_id: str
    name: str
    versions: list[KeyVersionInfo] = Field(description="newest first")

    @property
    def current(self) -> KeyVersionInfo | None:
        return next((v for v in self.versions if v.current), None)


class RotationPolicyInfo(BaseModel):
    """A key rotation policy in plain durations (None: not set)."""

    rotate_after_create: timedelta | None = None
    rotate_before_expiry: timedelta | None = None
    notify_before_expiry: timedelta | None = None
    expires_after: timedelta | None = None
    changed: bool = Field(default=False, description="True when this task run wrote the policy")

    @property
    def configured(self) -> bool:
        return any((self.rotate_after_create, self.rotate_before_expiry, self.expires_after))

    @property
    def text(self) -> str:
        """The policy in words, e.g. "rotate after 90 d, expire after 365 d" ("none" when not set)."""
        parts = []
        if self.rotate_after_create:
            parts.append(f"rotate after {self.rotate_after_create.days} d")
        if self.rotate_before_expiry:
            parts.append(f"rotate {self.rotate_before_expiry.days} d before expiry")
        if self.expires_after:
            parts.append(f"expire after {self.expires_after.days} d")
        return ", ".join(parts) or "none"


# ------------------------------------------------------------------------------------- ARM: provider, policy


class ProviderStatus(BaseModel):
    namespace: str
    registration_state: str
    policy_locations: list[str] = Field(default_factory=list)
    registered_now: bool = Field(
        default=False, description="True when this task run asked for the registration"
    )

    @property
    def registered(self) -> bool:
        return self.registration_state.lower() == "registered"


class PolicyBasics(BaseModel):
    """What every view of an enterprise policy holds: its ids, its identity (which appears late) and the
    key it references. A runbook's view (PolicyInfo) and watch's (watch.estate.PolicyFact) add theirs."""

    policy_id: str
    name: str
    principal_id: str | None = None
    system_id: str | None = None
    health_status: str | None = None
    key_vault_id: str | None = None
    key_name: str | None = None
    key_version: str | None = None

    @property
    def identity_ready(self) -> bool:
        return bool(self.principal_id and self.system_id)


class PolicyInfo(PolicyBasics):
    """An enterprise policy as a runbook reads and creates it: besides the basics, where it is and its
    identity's type and tenant."""

    location: str
    kind: str
    identity_type: str | None = None
    tenant_id: str | None = None
    encryption_state: str | None = None
    created: bool = Field(default=False, description="True when this task run created the policy")


def linked_to(environment: Environment, policy: PolicyInfo | None) -> bool:
    """Whether the environment's CMK link names this policy (ARM id or systemId, case-insensitive), whatever
    the link's status."""
    link = environment.cmk
    return (
        policy is not None
        and link is not None
        and (same_id(link.policy_id, policy.policy_id) or same_id(link.system_id, policy.system_id))
    )


class PolicyDeletion(BaseModel):
    policy_id: str
    deleted: bool = Field(description="False when the policy did not exist (nothing to do)")


# ----------------------------------------------------------------------------------------------- access


class RoleGrant(BaseModel):
    """A role assignment (RBAC), an access policy entry (vaults without RBAC) or a managed HSM's local role
    assignment (`hsm_rbac`: `scope` is the local scope such as /keys/<key>) held by one principal."""

    mechanism: Literal["rbac", "access_policy", "hsm_rbac"]
    scope: str
    principal_id: str
    role_definition_id: str | None = None
    assignment_id: str | None = None
    principal_type: str | None = None
    key_permissions: list[str] = Field(default_factory=list)
    tenant_id: str | None = None
    created_on: datetime | None = Field(default=None, description="when ARM says it was assigned (RBAC)")
    changed: bool = Field(default=False, description="True when this task run created it")

    @classmethod
    def listed(
        cls, mechanism: Literal["rbac", "hsm_rbac"], assignment_id: str | None, listed: ListedAssignment,
        principal_type: str | None, created_on: datetime | None = None,
    ) -> RoleGrant:
        """A role assignment as ARM or a managed HSM lists it."""
        return cls(mechanism=mechanism, scope=str(listed.scope), principal_id=str(listed.principal_id),
                   role_definition_id=listed.role_definition_id, assignment_id=assignment_id,
                   principal_type=principal_type, created_on=created_on)


class ListedAssignment(Protocol):
    """What ARM's role assignments and a managed HSM's local ones both carry (their SDK models differ)."""

    @property
    def scope(self) -> Any: ...  # ARM: str; managed HSM: str or KeyVaultRoleScope

    @property
    def principal_id(self) -> str | None: ...

    @property
    def role_definition_id(self) -> str | None: ...


def role_guid(definition_id: str | None) -> str:
    """The role's GUID, lower-case: the last segment of a role definition id (ARM's or a managed HSM's)."""
    return (definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


class AccessRevocation(BaseModel):
    """Exactly what a revoke removed, so an unlock can put it back as it was."""

    vault_id: str
    principal_id: str
    removed: list[RoleGrant] = Field(default_factory=list)


class PropagationResult(BaseModel):
    principal_id: str
    scope: str
    visible: bool
    probe_ok: bool | None = Field(default=None, description="None when no probe was possible")
    waited_seconds: float = 0.0
    checks: int = 0

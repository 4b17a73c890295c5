"""The lock record: what one lock revoked, so that unlock restores exactly that.

A Prefect Variable named `ppcmk-lock-<policy>` (kept by the Prefect server, so it survives a restart of the
run, the worker or the server, and unlock can run anywhere). The lock writes it *before* anything is revoked
and completes it after; unlock marks it unlocked. Each write is also in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from prefect.variables import Variable
from pydantic import BaseModel, Field

from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import TargetSettings
from ppcmk.models.arm_ids import same_id
from ppcmk.models.azure import AccessRevocation, RoleGrant
from ppcmk.safety.plan import Plan, artifact_key
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_vault
from ppcmk.services.role_grants import read_key_grants


class LockedEnvironment(BaseModel):
    id: str
    name: str
    sku: str
    deleted_after: datetime = Field(description="when the service deletes it unless unlocked (cloud clock)")


class LockRecord(BaseModel):
    """What one lock revoked, so that unlock restores exactly that."""

    policy_id: str
    policy_name: str
    vault_id: str
    principal_id: str
    state: Literal["revoking", "locked", "unlocked"]
    revoked: list[RoleGrant] = Field(default_factory=list)
    locked_at: datetime
    environments: list[LockedEnvironment] = Field(default_factory=list)
    requester: str
    approvers: list[str] = Field(default_factory=list)
    plan_hash: str

    def revocation(self) -> AccessRevocation:
        return AccessRevocation(vault_id=self.vault_id, principal_id=self.principal_id, removed=self.revoked)


def lock_record_name(policy_id: str) -> str:
    """The Prefect Variable holding a policy's lock record (lowercase letters, digits and dashes)."""
    return artifact_key("ppcmk-lock", policy_id)


def load_lock_record(policy_id: str) -> LockRecord | None:
    stored = Variable.get(lock_record_name(policy_id))
    return LockRecord.model_validate(stored) if isinstance(stored, dict) else None


def save_lock_record(record: LockRecord, procedure: str) -> None:
    Variable.set(lock_record_name(record.policy_id), record.model_dump(mode="json"), overwrite=True)
    audit.record(
        {
            "event": f"lock-record-{record.state}",
            "procedure": procedure,
            "policy": record.policy_id,
            "principal": record.principal_id,
            "revoked": [g.model_dump(mode="json") for g in record.revoked],
            "plan_hash": record.plan_hash,
        }
    )


def merge_grants(*lists: Sequence[RoleGrant]) -> list[RoleGrant]:
    """One entry per grant (same mechanism, scope and role), first seen wins."""
    merged: list[RoleGrant] = []
    for grant in (g for grants in lists for g in grants):
        if not any(same_grant(grant, seen) for seen in merged):
            merged.append(grant.model_copy(update={"changed": False}))
    return merged


def same_grant(a: RoleGrant, b: RoleGrant) -> bool:
    return (
        a.mechanism == b.mechanism
        and same_id(a.scope, b.scope)
        and (a.role_definition_id or "").lower() == (b.role_definition_id or "").lower()
    )


def describe_grant(grant: RoleGrant) -> str:
    if grant.mechanism == "access_policy":
        return f"access policy entry {grant.principal_id} keys={','.join(grant.key_permissions)}"
    return f"role assignment {grant.assignment_id or grant.role_definition_id}"


def key_access_plan(procedure: str, requester: str, target: TargetSettings) -> Plan:
    """An empty plan of a lock or an unlock: both are about the key access of the target's policy."""
    return Plan(procedure=procedure, requester=requester,
                target_summary=f"key access of policy {target.policy_name} in {target.resource_group}")


def identity_key_grants(factory: ClientFactory, vault_id: str, principal_id: str) -> list[RoleGrant]:
    """What gives the identity use of the vault's keys now, under the vault's permission model."""
    return read_key_grants(factory, read_vault(factory, vault_id), principal_id)

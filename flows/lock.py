"""Lock (break-glass): revoke the enterprise policy identity's access to its key, which locks every linked
environment at once.

The runbook of "Lock environments by revoking key vault and/or key permission access": plan (each grant that
will be revoked, each environment that will be locked, and its deletion countdown — 7 days for Sandbox
environments, 30 for the others — on the cloud's clock) → TWO distinct approvers other than the requester,
each typing the policy name → write the lock record → revoke → verify the environments are locked.

The lock record (flows/_lock_record.py) says exactly what was revoked (role assignment ids, access policy
entries); it is written *before* anything is revoked and completed after. A re-run merges with the record of
a crashed run, so nothing revoked is ever forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect import flow, get_run_logger
from prefect.states import State

from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.waves import EnvironmentResult, FleetReport
from ppcmk.locks.countdown import lock_lifetime
from ppcmk.models.arm_ids import same_id
from ppcmk.models.azure import PolicyInfo, RoleGrant, linked_to
from ppcmk.models.environments import Environment
from ppcmk.models.findings import error, info
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem, RunOutcome
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._lock_record import (
    LockedEnvironment,
    LockRecord,
    describe_grant,
    identity_key_grants,
    key_access_plan,
    load_lock_record,
    lock_record_name,
    merge_grants,
    save_lock_record,
)
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
    Replanning,
    approved,
    final_state,
    finish,
    plan_only_outcome,
    policy_after_approval,
    state_of,
)
from ppcmk_tasks.access import revoke_key_access
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.policy import get_policy

PROCEDURE = "lock"
APPROVERS_NEEDED = 2


# ------------------------------------------------------------------------------------------- planning


def plan_lock(
    requester: str,
    target: TargetSettings,
    policy: PolicyInfo | None,
    grants: Sequence[RoleGrant],
    environments: Sequence[Environment],
    now: datetime,
) -> Plan:
    """Revoke every grant that gives the policy identity use of its key; every linked environment locks."""
    plan = key_access_plan(PROCEDURE, requester, target)
    if policy is None or not policy.principal_id:
        plan.add_findings(
            [
                error(
                    "policy.exists",
                    target.policy_name,
                    "the policy or its identity does not exist",
                    "check policy_name and resource_group in the target block",
                )
            ]
        )
        return plan
    for grant in grants:
        plan_revocation(plan, target, policy, grant)
    for env in (e for e in environments if linked_to(e, policy)):
        plan_locked_environment(plan, env, now)
    return plan


def plan_revocation(plan: Plan, target: TargetSettings, policy: PolicyInfo, grant: RoleGrant) -> None:
    """The grant's revocation; one inherited from above the vault is an error (revoking it would reach
    further than this policy)."""
    if grant.mechanism == "rbac" and not same_id(grant.scope, policy.key_vault_id or target.vault_id):
        plan.add_findings(
            [
                error(
                    "lock.inherited_grant",
                    grant.assignment_id or grant.scope,
                    f"the identity's access comes from {grant.scope}, above the vault",
                    "remove that assignment by hand, or lock by disabling the key",
                )
            ]
        )
        return
    plan.items.append(
        PlanItem(
            target=grant.assignment_id or grant.scope,
            kind="role-assignment",
            action=f"revoke {describe_grant(grant)}",
            detail=f"key access of {policy.name} ({policy.principal_id})",
        )
    )


def plan_locked_environment(plan: Plan, env: Environment, now: datetime) -> None:
    """The environment locks until unlock, and its deletion countdown starts (cloud clock)."""
    days = lock_lifetime(env.sku).days
    plan.items.append(
        PlanItem(
            target=env.id,
            kind="environment",
            action="locked (Disabled) until unlock",
            detail=f"{env.sku} environment: DELETED {days} days after the lock",
        )
    )
    plan.outages.append(
        OutageWindow(
            environment_id=env.id,
            sequence=1,
            cause="locked: key access revoked",
            expected_duration=f"until unlock; deleted after {days} days",
        )
    )
    plan.add_findings(
        [
            info(
                "lock.countdown",
                env.id,
                f"{env.display_name}: deleted at {(now + timedelta(days=days)).isoformat()} "
                f"unless unlocked ({days} days from {now.isoformat()})",
            )
        ]
    )


@dataclass
class LockPlanning(Replanning):
    """Makes the lock plan from what it reads now (again after each approval answer), and keeps the latest
    environment listing for the lock record."""

    environments: list[Environment] = field(default_factory=list)

    @property
    def factory(self) -> ClientFactory:
        return ClientFactory.for_settings(self.kv)

    def __call__(self) -> Plan:
        policy = get_policy(self.kv, self.target)
        principal = policy.principal_id if policy is not None else None
        grants = identity_key_grants(self.factory, self.target.vault_id, principal) if principal else []
        self.environments = get_environments(self.pp)
        return plan_lock(self.requester, self.target, policy, grants, self.environments, self.factory.now())


# ------------------------------------------------------------------------------------------- applying


def revoke_and_record(
    conn: ConnectionSettings,
    target: TargetSettings,
    policy: PolicyInfo,
    environments: Sequence[Environment],
    plan: Plan,
    approvers: list[str],
) -> LockRecord:
    """Write the record first (a crash between revoke and record must not lose what was revoked)."""
    principal = policy.principal_id or ""
    factory = ClientFactory.for_settings(conn)
    earlier = load_lock_record(policy.policy_id)
    # An open record of this same identity comes from a run that crashed mid-way: keep what it revoked.
    # A record of another identity (the policy was re-created) describes grants that no longer matter.
    if earlier is not None and (earlier.state == "unlocked" or earlier.principal_id != principal):
        earlier = None
    carried = earlier.revoked if earlier is not None else []
    # The countdown starts with the first revocation; a crashed earlier attempt may already have started it.
    locked_at = earlier.locked_at if earlier is not None else factory.now()
    planned = identity_key_grants(factory, target.vault_id, principal)
    record = LockRecord(
        policy_id=policy.policy_id,
        policy_name=policy.name,
        vault_id=target.vault_id,
        principal_id=principal,
        state="revoking",
        revoked=merge_grants(carried, planned),
        locked_at=locked_at,
        environments=[
            LockedEnvironment(
                id=e.id,
                name=e.display_name or e.id,
                sku=e.sku or "",
                deleted_after=locked_at + lock_lifetime(e.sku),
            )
            for e in environments
            if linked_to(e, policy)
        ],
        requester=plan.requester,
        approvers=approvers,
        plan_hash=plan.hash,
    )
    save_lock_record(record, PROCEDURE)
    revocation = revoke_key_access(conn, target, principal)
    record = record.model_copy(
        update={"state": "locked", "revoked": merge_grants(record.revoked, revocation.removed)}
    )
    save_lock_record(record, PROCEDURE)
    return record


def unfinished_lock(conn: ConnectionSettings, target: TargetSettings) -> LockRecord | None:
    """The record of an approved lock whose run stopped after revoking and before recording it done."""
    policy = get_policy(conn, target)
    record = load_lock_record(policy.policy_id) if policy is not None else None
    if record is None or policy is None or record.state != "revoking":
        return None
    return record if record.principal_id == policy.principal_id else None


def complete_lock(plan: Plan, pp: ConnectionSettings, record: LockRecord, now: datetime) -> RunOutcome:
    """Finish the record and the countdown of a lock whose access is already revoked (approved then)."""
    record = record.model_copy(update={"state": "locked"})
    save_lock_record(record, PROCEDURE)
    report, rows = verify_locked(pp, record, now)
    variable = lock_record_name(record.policy_id)
    return finish(plan, record.approvers, report, rows,
                  f"completed the lock of {record.policy_name} (revoked earlier); {len(record.environments)} "
                  f"environment(s) locked; unlock restores from Prefect variable {variable}")


def verify_locked(
    conn: ConnectionSettings, record: LockRecord, now: datetime
) -> tuple[FleetReport, list[dict[str, object]]]:
    """Read every environment back: locked ones are reported with their deletion countdown."""
    after = {env.id: env for env in get_environments(conn)}
    report = FleetReport()
    rows: list[dict[str, object]] = []
    for locked in record.environments:
        env = after.get(locked.id)
        is_locked = env is not None and not env.enabled
        left = locked.deleted_after - now
        report.results.append(
            EnvironmentResult(
                environment_id=locked.id,
                name=locked.name,
                wave=1,
                state="succeeded" if is_locked else "failed",
                detail="locked" if is_locked else f"NOT locked yet: {state_of(env)}",
            )
        )
        rows.append(
            {
                "environment": locked.id,
                "name": locked.name,
                "sku": locked.sku,
                "now": state_of(env),
                "deleted after": locked.deleted_after.isoformat(),
                "countdown": f"{left.days} days {left.seconds // 3600} h",
            }
        )
    rows += [
        {
            "environment": "-",
            "name": "revoked",
            "sku": "",
            "now": describe_grant(g),
            "deleted after": "",
            "countdown": "",
        }
        for g in record.revoked
    ]
    return report, rows


@flow(name="lock", **RELEASE_HOOKS)
@run_form
def lock(
    kv_connection: str,
    pp_connection: str,
    target: str,
    requester: str | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 4 * 3600,
    approval_poll_s: int = 10,
) -> RunOutcome | State[RunOutcome]:
    """Break-glass lock: revoke the target policy identity's key access, which locks every environment linked
    to the policy. Needs two approvers other than the requester who each type the policy name.

    Args:
        kv_connection: CmkConnection block that revokes the key access (rights to change role assignments
            or access policies on the vault), e.g. kv-admin; in the sandbox sandbox-kv-admin.
        pp_connection: CmkConnection block that reads the environments to show what locks, e.g. pp-admin;
            in the sandbox sandbox-pp-admin.
        target: CmkTarget block naming the enterprise policy to lock, e.g. cmk-target; in the sandbox
            sandbox-target-ep-existing (policy ep-existing, where Finance on CMK is).
        requester: Who asks for the lock (UPN or object id); cannot approve it, e.g.
            kv-admin@contoso.example. Empty: the principal kv_connection signs in as.
        dry_run: Plan and publish the plan only; change nothing (the sandbox Quick run does this).
        approval_timeout_s: Seconds to wait for both approvals before the run ends as not approved.
    """
    approving = Approving(approval_timeout_s, approval_poll_s)
    planning = LockPlanning.load(kv_connection, pp_connection, target, requester)
    plan = planning.first()
    kv, pp, tgt = planning.kv, planning.pp, planning.target
    if dry_run:
        return final_state(plan_only_outcome(plan, dry_run))
    if not any(item.kind == "role-assignment" for item in plan.items):
        if (unfinished := unfinished_lock(kv, tgt)) is not None:
            return complete_lock(plan, pp, unfinished, planning.factory.now())
        raise ConfigError(
            "target",
            f"policy {tgt.policy_name} has no key access left to revoke (already locked?)",
            "see the lock record and the environments' state; run unlock to restore access",
        )
    request = ApprovalRequest.lock_approval(plan, PROCEDURE, planning.requester, approving, APPROVERS_NEEDED,
                                            tgt.policy_name)
    approval = approved(request, planning, kv)
    if isinstance(approval, RunOutcome):
        return final_state(approval)
    policy = policy_after_approval(kv, tgt)
    get_run_logger().critical(
        "LOCKING: revoking the key access of %s; linked environments go offline now", policy.name
    )
    record = revoke_and_record(kv, tgt, policy, planning.environments, approval.plan, approval.approvers)
    report, rows = verify_locked(pp, record, planning.factory.now())
    return finish(
        approval.plan,
        approval.approvers,
        report,
        rows,
        f"revoked {len(record.revoked)} grant(s) of {policy.name}; {len(record.environments)} "
        f"environment(s) locked; unlock restores from Prefect variable {lock_record_name(policy.policy_id)}",
    )

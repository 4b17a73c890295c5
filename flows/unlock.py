"""Unlock: restore exactly the key access a lock revoked, wait for it to apply, re-enable each environment.

The runbook of "Unlock locked environments": the lock record (flows/_lock_record.py) says what was revoked →
plan (each grant to restore, each locked environment to re-enable, with what is left of its deletion
countdown) → approval by an administrator other than the requester →
restore the same role assignments (same names) / access policy entries → wait for propagation → per
environment in waves: re-enable ("Re-enable environment" in the admin center; up to 5 minutes) → verify it
is Enabled → mark the record unlocked.

A re-run converges: grants already back are not written again, enabled environments are "unchanged".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect import flow
from prefect.states import State

from flows._lock_record import (
    LockRecord,
    describe_grant,
    identity_key_grants,
    key_access_plan,
    load_lock_record,
    same_grant,
    save_lock_record,
)
from flows._run_form import run_form
from flows._runbook import (
    Replanning,
    approval_unless_plan_only,
    change_failed,
    changing_members,
    final_state,
    finish,
    read_back,
    state_of,
    step_state,
)
from ppcmk.azure_resources import PolicyInfo, RoleGrant, linked_to
from ppcmk.claims import RELEASE_HOOKS
from ppcmk.clients import ClientFactory
from ppcmk.findings import error, info
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import FleetReport, StepResult, WaveSpec, plan_waves, run_waves
from ppcmk.models import Environment
from ppcmk.plan import Plan, PlanItem, RunOutcome
from ppcmk.settings import ConnectionSettings, TargetSettings
from ppcmk.validation import check_parameters
from tasks.access import restore_key_access, wait_for_propagation
from tasks.environments import get_environments, reenable_environment
from tasks.policy import get_policy

PROCEDURE = "unlock"


def plan_unlock(
    requester: str,
    target: TargetSettings,
    policy: PolicyInfo | None,
    record: LockRecord | None,
    present: Sequence[RoleGrant],
    environments: Sequence[Environment],
    now: datetime,
) -> Plan:
    """Restore what the lock record lists and is missing now; re-enable the policy's disabled environments."""
    plan = key_access_plan(PROCEDURE, requester, target)
    if policy is not None and (record is None or record.state == "unlocked"):
        # not locked by ppcmk: nothing to restore, which the run reports as nothing to do
        plan.add_findings(
            [
                info(
                    "unlock.not_locked",
                    target.policy_name,
                    "no open lock record for this policy: it is not locked by ppcmk, so there is nothing to "
                    "restore (if its key access was removed by hand, grant it again: onboard grants it)",
                )
            ]
        )
        return plan
    if policy is None or record is None or record.principal_id != policy.principal_id:
        plan.add_findings(
            [
                error(
                    "unlock.record",
                    target.policy_name,
                    "no open lock record for this policy's identity, so ppcmk does not know what to restore",
                    "if access was removed by hand, grant it again (onboard grants the policy's key access)",
                )
            ]
        )
        return plan
    for grant in record.revoked:
        back = any(same_grant(grant, p) for p in present)
        plan.items.append(
            PlanItem(
                target=grant.assignment_id or grant.scope,
                kind="role-assignment",
                action=f"restore {describe_grant(grant)}" if not back else "none: already restored",
                detail=f"key access of {record.policy_name} ({record.principal_id})",
                changes=not back,
            )
        )
    plan_reenabling(plan, policy, record, environments, now)
    return plan


def plan_reenabling(
    plan: Plan, policy: PolicyInfo, record: LockRecord, environments: Sequence[Environment], now: datetime
) -> None:
    """Re-enable each disabled environment of the policy (with what is left of its deletion countdown); one
    the record lists that is no longer visible is an error (deleted, or hidden from this connection)."""
    deadlines = {locked.id: locked.deleted_after for locked in record.environments}
    visible = {env.id for env in environments}
    for env in (e for e in environments if linked_to(e, policy)):
        plan.items.append(
            PlanItem(
                target=env.id,
                kind="environment",
                action="none: Enabled" if env.enabled else "re-enable (admin center action, up to 5 minutes)",
                detail=env.display_name or "",
                changes=not env.enabled,
            )
        )
        if not env.enabled and env.id in deadlines:
            left = deadlines[env.id] - now
            plan.add_findings(
                [info("unlock.countdown", env.id, f"deleted at {deadlines[env.id].isoformat()}: {left} left")]
            )
    for lost in (locked for locked in record.environments if locked.id not in visible):
        plan.add_findings(
            [
                error(
                    "unlock.deleted",
                    lost.id,
                    f"{lost.name} is gone (deleted after the lock countdown, or hidden from this connection)",
                    "check with the report flow; a deleted environment cannot be unlocked",
                )
            ]
        )


@dataclass
class UnlockPlanning(Replanning):
    """Makes the unlock plan from what it reads now (again after each approval answer), and keeps the lock
    record and the environment listing it was made from."""

    record: LockRecord | None = None
    environments: list[Environment] = field(default_factory=list)

    def __call__(self) -> Plan:
        factory = ClientFactory.for_settings(self.kv)
        policy = get_policy(self.kv, self.target)
        self.record = record = load_lock_record(policy.policy_id) if policy is not None else None
        present = identity_key_grants(factory, record.vault_id, record.principal_id) if record else []
        self.environments = get_environments(self.pp)
        return plan_unlock(self.requester, self.target, policy, record, present, self.environments,
                           factory.now())


def reenable_step(conn: ConnectionSettings, deadline: timedelta) -> Callable[[FleetMember], StepResult]:
    def step(member: FleetMember) -> StepResult:
        change = reenable_environment(conn, member.id, deadline=deadline)
        if not change.done or change.environment is None or not change.environment.enabled:
            raise RuntimeError(change_failed(change, "re-enable"))
        return StepResult(
            state=step_state(change.status == "Unchanged"), detail=f"now {state_of(change.environment)}"
        )

    return step


def reenable_in_waves(
    pp: ConnectionSettings, members: list[FleetMember], spec: WaveSpec, deadline: timedelta
) -> FleetReport:
    """The locked environments re-enabled in waves, once their key access is back."""
    return run_waves(plan_waves(members, spec), reenable_step(pp, deadline), spec)


@flow(name="unlock", **RELEASE_HOOKS)
@run_form
def unlock(
    kv_connection: str,
    pp_connection: str,
    target: str,
    requester: str | None = None,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 4 * 3600,
    approval_poll_s: int = 10,
    reenable_deadline_minutes: float = 30,
) -> RunOutcome | State[RunOutcome]:
    """Undo the target policy's lock: restore the key access the lock record lists, then re-enable each
    environment. Nothing to do (Completed) when ppcmk has not locked the policy.

    Args:
        kv_connection: CmkConnection block that restores the key access, e.g. kv-admin; in the sandbox
            sandbox-kv-admin.
        pp_connection: CmkConnection block that re-enables the environments (Power Platform admin), e.g.
            pp-admin; in the sandbox sandbox-pp-admin.
        target: CmkTarget block naming the locked enterprise policy, e.g. cmk-target; in the sandbox
            sandbox-target-ep-existing (policy ep-existing).
        requester: Who asks for the unlock (UPN or object id); cannot approve it, e.g.
            kv-admin@contoso.example. Empty: the principal kv_connection signs in as.
        waves: How the environments are split and paced (canary first, wave sizes, parallelism).
        reenable_deadline_minutes: How long one environment may take to come back before it counts as failed.
    """
    check_parameters(approval_timeout_s=approval_timeout_s, approval_poll_s=approval_poll_s,
                     reenable_deadline_minutes=reenable_deadline_minutes)
    planning = UnlockPlanning.load(kv_connection, pp_connection, target, requester)
    plan = planning.first()
    kv, pp, tgt = planning.kv, planning.pp, planning.target
    approval = approval_unless_plan_only(plan, kv, planning, dry_run=dry_run, requester=planning.requester,
                                         key=PROCEDURE, timeout_s=approval_timeout_s,
                                         poll_interval_s=approval_poll_s)
    if isinstance(approval, RunOutcome):
        return final_state(approval)
    record = planning.record
    if record is None:
        raise RuntimeError("the lock record vanished after approval; run again")
    restore_key_access(kv, record.revocation())
    wait_for_propagation(kv, tgt, record.principal_id)
    members = changing_members(approval.plan, planning.environments)
    report = reenable_in_waves(pp, members, waves or WaveSpec(), timedelta(minutes=reenable_deadline_minutes))
    report, rows = read_back(pp, report, lambda env: env is not None and env.enabled, "Enabled")
    if not report.failed and not report.not_started:
        save_lock_record(record.model_copy(update={"state": "unlocked"}), PROCEDURE)
    rows += [{"environment_id": "-", "name": "restored", "now": describe_grant(g)} for g in record.revoked]
    return finish(approval.plan, approval.approvers, report, rows,
                  f"restored {len(record.revoked)} grant(s) of {record.policy_name}; "
                  f"{len(report.results) - len(report.failed)} environment(s) enabled")

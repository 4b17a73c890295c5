"""Unlock: give the policy's identity its key back, whatever took it away; re-enable each locked environment.

The runbook of "Unlock locked environments" (restore access to the original key, then re-enable each
environment, which takes up to 5 minutes): read the estate — the policy, its vault, the key versions in use,
the identity's grants and every environment linked to the policy — and judge why the identity cannot use its
key (`ppcmk.locks.causes`), whoever caused it → plan each repair (recover the vault or the key, let trusted
Microsoft services through the firewall, repair the key version in use, give the identity its access back:
exactly what ppcmk's lock record lists when there is one, else the grant the vault's permission model asks
for), each cause no repair reaches with its manual step and deadline, each locked environment with its
deletion countdown → approval by an administrator other than the requester → repairs in that order → wait
until the policy can use its key → per environment in waves: re-enable → verify it is Enabled → mark ppcmk's
lock record unlocked.

Nothing to do only when nothing is locked and nothing keeps the identity from its key. A re-run converges:
what is repaired is not written again, enabled environments are "unchanged".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect import flow
from prefect.states import State

from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import FleetReport, StepResult, WaveSpec, plan_waves, run_waves
from ppcmk.locks.causes import KeyAccessReading, LockCause, diagnose, repair_action
from ppcmk.locks.countdown import Countdown, Evidence, countdown, lock_lifetime
from ppcmk.models.arm_ids import same_id
from ppcmk.models.azure import PolicyInfo, linked_to
from ppcmk.models.environments import Environment
from ppcmk.models.findings import error, info, warning
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import Plan, PlanItem, RunOutcome
from ppcmk.safety.validation import check_parameters
from ppcmk_flows._lock_record import (
    LockRecord,
    describe_grant,
    key_access_plan,
    load_lock_record,
    same_grant,
    save_lock_record,
)
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
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
from ppcmk_tasks.access import grant_key_access, restore_key_access, wait_for_propagation
from ppcmk_tasks.environments import get_environments, reenable_environment
from ppcmk_tasks.lock_recovery import (
    allow_trusted_services,
    read_key_access,
    recover_key,
    recover_vault,
    repair_key_version,
)

PROCEDURE = "unlock"


def open_lock_record(record: LockRecord | None, policy: PolicyInfo | None) -> LockRecord | None:
    """ppcmk's lock record when the lock it describes is still in force on the policy's identity."""
    if record is None or policy is None or record.state == "unlocked":
        return None
    return record if record.principal_id.lower() == (policy.principal_id or "").lower() else None


def plan_unlock(requester: str, target: TargetSettings, subscription_id: str, reading: KeyAccessReading,
                causes: Sequence[LockCause], record: LockRecord | None,
                environments: Sequence[Environment]) -> Plan:
    """Each repair, each cause no repair reaches (an error: a person acts first), each locked environment
    with its countdown; nothing to do only when nothing is locked and the identity can use its key."""
    plan = key_access_plan(PROCEDURE, requester, target)
    policy_id = reading.policy.policy_id if reading.policy else target.policy_id(subscription_id)
    locked = [e for e in environments if e.locked and _on_policy(e, reading.policy, policy_id)]
    ours = open_lock_record(record, reading.policy)
    countdowns = {env.id: _countdown(env, ours, causes, reading.now) for env in locked}
    deadline = min((c.deleted_at for c in countdowns.values()), default=None)
    for cause in causes:
        _plan_cause(plan, cause, reading, ours, deadline)
    if ours is not None:
        _plan_restoring(plan, ours, reading)
    for env in locked:
        _plan_reenabling(plan, env, countdowns[env.id], reading.now)
    _plan_lost(plan, ours, environments)
    if not causes and not locked:
        plan.add_findings([info("unlock.nothing_locked", target.policy_name,
                                "nothing is locked: no environment linked to the policy is locked, and its "
                                "identity can use its key")])
    return plan


def _on_policy(env: Environment, policy: PolicyInfo | None, policy_id: str) -> bool:
    return linked_to(env, policy) or (env.cmk is not None and same_id(env.cmk.policy_id, policy_id))


def _countdown(env: Environment, record: LockRecord | None, causes: Sequence[LockCause],
               now: datetime) -> Countdown:
    listed = next((e for e in record.environments if e.id == env.id), None) if record else None
    evidence = [Evidence(env.last_modified, "the service's lastModifiedTime"),
                *(Evidence(c.since, c.since_by) for c in causes)]
    if listed is not None:
        evidence.append(Evidence(listed.deleted_after - lock_lifetime(env.sku), "ppcmk's lock record"))
    return countdown(env.sku, evidence, now)


def _plan_cause(plan: Plan, cause: LockCause, reading: KeyAccessReading, record: LockRecord | None,
                deadline: datetime | None) -> None:
    if not cause.repairable:
        before = f", before {deadline:%Y-%m-%d %H:%M} (the first deletion)" if deadline else ""
        plan.add_findings([error(cause.kind, cause.subject, cause.message,
                                 f"{cause.manual}{before}; then run unlock again")])
    elif cause.repair == "restore-access" and record is None:
        plan.items.append(PlanItem(target=reading.vault_id, name=reading.vault_name, kind="role-assignment",
                                   action=f"grant {_grant_wanted(reading)}", detail=cause.message))
    elif cause.repair != "restore-access":
        plan.items.append(PlanItem(target=cause.subject, name=cause.subject, kind=cause.kind.split(".")[0],
                                   action=repair_action(cause), detail=cause.message))


def _grant_wanted(reading: KeyAccessReading) -> str:
    vault, principal = reading.vault, reading.policy.principal_id if reading.policy else ""
    if vault is not None and vault.kind == "managedHSM":
        return (f"the local role Managed HSM Crypto Service Encryption User at /keys/{reading.key_name} to "
                f"{principal}")
    if vault is not None and not vault.rbac_authorization:
        return f"an access policy (get, wrapKey, unwrapKey) on {reading.vault_name} to {principal}"
    return f"Key Vault Crypto Service Encryption User on {reading.vault_name} to {principal}"


def _plan_restoring(plan: Plan, record: LockRecord, reading: KeyAccessReading) -> None:
    """The grants ppcmk's lock revoked, each restored as it was (same assignment name) unless back already."""
    for grant in record.revoked:
        back = any(same_grant(grant, present) for present in reading.grants)
        plan.items.append(PlanItem(
            target=grant.assignment_id or grant.scope, kind="role-assignment",
            action="none: already restored" if back else f"restore {describe_grant(grant)}",
            detail=f"key access of {record.policy_name} ({record.principal_id}), revoked by ppcmk's lock",
            changes=not back))


def _plan_reenabling(plan: Plan, env: Environment, clock: Countdown, now: datetime) -> None:
    plan.items.append(PlanItem(target=env.id, name=env.display_name or "", kind="environment",
                               action="re-enable (admin center action, up to 5 minutes)",
                               detail=f"{env.display_name or env.id}: {clock.describe(now)}"))
    plan.add_findings([info("unlock.countdown", env.display_name or env.id, clock.describe(now))])


def _plan_lost(plan: Plan, record: LockRecord | None, environments: Sequence[Environment]) -> None:
    """An environment ppcmk's lock record lists that is no longer visible: gone, which unlock cannot undo;
    a warning, so that the others are still unlocked."""
    visible = {env.id for env in environments}
    for lost in (e for e in (record.environments if record else []) if e.id not in visible):
        plan.add_findings([warning(
            "unlock.deleted", lost.name,
            f"{lost.name} ({lost.id}) is gone: deleted after its lock countdown (due "
            f"{lost.deleted_after:%Y-%m-%d}), or hidden from this connection",
            "if it was deleted, open a Microsoft support case at once naming the environment id; check "
            "with the report runbook whether the connection sees it")])


@dataclass
class UnlockPlanning(Replanning):
    """Makes the unlock plan from what it reads now (again after each approval answer), and keeps what its
    latest plan was made from: the reading, its causes, ppcmk's lock record and the environments."""

    reading: KeyAccessReading | None = None
    causes: list[LockCause] = field(default_factory=list)
    record: LockRecord | None = None
    environments: list[Environment] = field(default_factory=list)

    def __call__(self) -> Plan:
        self.reading = reading = read_key_access(self.kv, self.target)
        self.causes = diagnose(reading)
        self.record = load_lock_record(reading.policy.policy_id) if reading.policy else None
        self.environments = get_environments(self.pp)
        return plan_unlock(self.requester, self.target, self.kv.subscription_id, reading, self.causes,
                           self.record, self.environments)

    def open_record(self) -> LockRecord | None:
        """ppcmk's record of a lock still in force on this very identity (a policy made again under the same
        name has another identity, which the record's grants never belonged to)."""
        return open_lock_record(self.record, self.reading.policy if self.reading else None)


def repair_key_access(kv: ConnectionSettings, target: TargetSettings, planning: UnlockPlanning) -> list[str]:
    """The approved repairs, in the order `diagnose` gave them; what each one did, for the result table."""
    reading, record = planning.reading, planning.open_record()
    assert reading is not None and reading.policy is not None  # a plan without a policy has an error
    done = []
    for cause in (c for c in planning.causes if c.repair not in (None, "restore-access")):
        changed = repair_key_vault(kv, reading, cause)
        done.append(f"{cause.subject}: {cause.kind} {'repaired' if changed else 'was already repaired'}")
    if record is not None:
        restored = restore_key_access(kv, record.revocation())
        done += [f"restored {describe_grant(grant)}" for grant in restored if grant.changed]
    elif any(c.repair == "restore-access" for c in planning.causes):
        grant = grant_key_access(kv, target, str(reading.policy.principal_id))
        done.append(f"granted {describe_grant(grant)}" if grant.changed else "key access was already there")
    return done


def repair_key_vault(kv: ConnectionSettings, reading: KeyAccessReading, cause: LockCause) -> bool:
    """One repair of the vault or the key; False when it was already made."""
    match cause.repair:
        case "recover-vault":
            return recover_vault(kv, reading.vault_id)
        case "allow-trusted-services":
            return allow_trusted_services(kv, reading.vault_id)
        case "recover-key":
            return recover_key(kv, reading.vault_id, reading.key_name)
        case "repair-key-version":
            return repair_key_version(kv, reading.vault_id, reading.key_name, str(cause.version))
    raise ValueError(f"no Key Vault repair for {cause.kind}")


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
    """Undo the target policy's lock, whoever caused it: repair what keeps its identity from the key (the
    grants ppcmk's lock revoked, or any removed access, a disabled or deleted key or version, a deleted
    vault, a closed firewall), then re-enable each locked environment. Nothing to do (Completed) only when
    nothing is locked.

    Args:
        kv_connection: CmkConnection block that repairs the key access, e.g. kv-admin; in the sandbox
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
    check_parameters(reenable_deadline_minutes=reenable_deadline_minutes)
    approving = Approving(approval_timeout_s, approval_poll_s)
    planning = UnlockPlanning.load(kv_connection, pp_connection, target, requester)
    plan = planning.first()
    kv, pp, tgt = planning.kv, planning.pp, planning.target
    request = ApprovalRequest.plan_approval(plan, PROCEDURE, planning.requester, approving)
    approval = approval_unless_plan_only(request, planning, kv, dry_run)
    if isinstance(approval, RunOutcome):
        return final_state(approval)
    repairs = repair_key_access(kv, tgt, planning)
    assert planning.reading is not None and planning.reading.policy is not None
    wait_for_propagation(kv, tgt, str(planning.reading.policy.principal_id))
    members = changing_members(approval.plan, planning.environments)
    report = reenable_in_waves(pp, members, waves or WaveSpec(), timedelta(minutes=reenable_deadline_minutes))
    report, rows = read_back(pp, report, lambda env: env is not None and env.enabled, "Enabled")
    record = planning.open_record()
    if record is not None and not report.failed and not report.not_started:
        save_lock_record(record.model_copy(update={"state": "unlocked"}), PROCEDURE)
    rows += [{"environment_id": "-", "name": "repaired", "now": done} for done in repairs]
    return finish(approval.plan, approval.approvers, report, rows,
                  f"{len(repairs)} repair(s) of {tgt.policy_name}'s key access; "
                  f"{len(report.results) - len(report.failed)} environment(s) enabled")

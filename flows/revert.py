"""Revert: remove environments from their enterprise policy, back to the Microsoft-managed key.

The runbook of "Remove environments from policy to return to Microsoft managed key": plan (which linked
environments go back, one outage window each) → approval by a second administrator → per environment in
waves: unlink and wait (the environment is Disabled while its window is open, and the log says so) → re-read
each environment → a 30-day hold on the key, the vault and the policy's key access, which the documentation
says must stay untouched for database restores (the cleanup flow refuses to break it).

A re-run converges: environments already on the Microsoft-managed key are "unchanged"; the unlink task
waits for an operation still running from a crashed run before it decides anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Literal, cast

from prefect import flow, get_run_logger

from blocks import CmkConnection, CmkTarget
from ppcmk import audit, holds
from ppcmk.arm_ids import same_id
from ppcmk.errors import ApprovalRejected, ConfigError, SeparationOfDutyError
from ppcmk.findings import error
from ppcmk.models import Environment
from ppcmk.plan import OutageWindow, OutcomeStatus, Plan, PlanItem, PlannedHold, RunOutcome, publish_table
from ppcmk.settings import ConnectionSettings, TargetSettings
from ppcmk.waves import (
    FleetMember,
    FleetReport,
    FleetSelector,
    StepResult,
    WaveSpec,
    plan_waves,
    run_waves,
)
from tasks.approvals import IdentityResolver, request_approval
from tasks.environments import get_environments, unlink
from tasks.keyvault import get_key_info
from tasks.policy import ensure_provider_registered, get_policy
from tasks.results import EnvironmentChange, PolicyInfo

PROCEDURE = "revert"
HOLD_DAYS = 30
HOLD_REASON = "environments left this policy; their backups restore only with this key (keep 30 days)"
MICROSOFT_KEY = "the Microsoft-managed key"


# ------------------------------------------------------------------------------ shared by the runbooks


def load_settings(connection: str, target: str) -> tuple[ConnectionSettings, TargetSettings]:
    """Both blocks, validated (a bad value fails here, naming the field, before anything is read)."""
    connection_block = cast(CmkConnection, CmkConnection.load(connection))
    return connection_block.settings(), cast(CmkTarget, CmkTarget.load(target)).settings()


def step_state(unchanged: bool) -> Literal["succeeded", "unchanged"]:
    return "unchanged" if unchanged else "succeeded"


def plan_only_outcome(plan: Plan, dry_run: bool) -> RunOutcome:
    """The run ends after publishing the plan: a dry run, or nothing to change."""
    status: OutcomeStatus = "dry-run" if dry_run else "nothing-to-do"
    return RunOutcome(
        procedure=plan.procedure, status=status, plan_hash=plan.hash, message=plan.target_summary
    )


def linked_to(environment: Environment, policy: PolicyInfo | None) -> bool:
    """Whether the environment's CMK link names this policy (ARM id or systemId, case-insensitive)."""
    link = environment.cmk
    return (
        policy is not None
        and link is not None
        and (same_id(link.policy_id, policy.policy_id) or same_id(link.system_id, policy.system_id))
    )


def fleet_member(environment: Environment) -> FleetMember:
    return FleetMember(
        id=environment.id,
        name=environment.display_name or environment.id,
        sku=environment.sku or "",
        geo=environment.geo or "",
    )


def select(
    environments: Sequence[Environment],
    selector: FleetSelector | None,
    default: Callable[[Environment], bool],
) -> list[Environment]:
    """The environments an explicit selector names, else the ones `default` picks."""
    if selector is None or selector.is_empty():
        return [env for env in environments if default(env)]
    try:
        chosen = {m.id for m in selector.select([fleet_member(env) for env in environments])}
    except ValueError as unknown:
        raise ConfigError("selector", str(unknown), "list environment ids the connection can see") from None
    return [env for env in environments if env.id in chosen]


def changing_members(plan: Plan, environments: Sequence[Environment]) -> list[FleetMember]:
    """The environments the approved plan changes, in plan order."""
    changing = {item.target for item in plan.changes if item.kind == "environment"}
    return [fleet_member(env) for env in environments if env.id in changing]


def state_of(environment: Environment | None) -> str:
    """How an environment looks now, in words an operator acts on."""
    if environment is None:
        return "not visible (deleted?)"
    key = f"linked to {environment.cmk.policy_id}" if environment.cmk else MICROSOFT_KEY
    runtime = environment.runtime_state or "unknown"
    reason = (
        f" ({environment.runtime_reason})" if environment.runtime_reason not in (None, "NotSpecified") else ""
    )
    return f"{runtime}{reason}, {key}"


def refused_outcome(plan: Plan, refused: ApprovalRejected | SeparationOfDutyError) -> RunOutcome:
    get_run_logger().warning("%s: not approved, nothing was changed: %s", plan.procedure, refused)
    return RunOutcome(procedure=plan.procedure, status="rejected", plan_hash=plan.hash, message=str(refused))


def finish(
    plan: Plan, approvers: list[str], report: FleetReport, rows: list[dict[str, object]], message: str
) -> RunOutcome:
    """Publish the result table, audit the run, and say plainly what is left undone."""
    publish_table(rows, plan.procedure, "result", description=f"{plan.procedure}: state read back afterwards")
    failed = [r.environment_id for r in report.failed + report.not_started]
    status: OutcomeStatus = "partial" if failed else "completed"
    if failed:
        message += f"; NOT done: {', '.join(failed)} (see the result table; run again to converge)"
    audit.record(
        {
            "event": f"{plan.procedure}-finished",
            "procedure": plan.procedure,
            "plan_hash": plan.hash,
            "requester": plan.requester,
            "approvers": approvers,
            "status": status,
            "environments": report.rows(),
        }
    )
    return RunOutcome(
        procedure=plan.procedure,
        status=status,
        plan_hash=plan.hash,
        message=message,
        approvers=approvers,
        rows=rows,
    )


def change_failed(change: EnvironmentChange, what: str) -> str:
    return (
        f"{what} {change.status}: {change.error_message or 'no error message'}; "
        f"environment is {state_of(change.environment)}"
    )


# ------------------------------------------------------------------------------------------- planning


def plan_revert(
    requester: str,
    target: TargetSettings,
    policy: PolicyInfo | None,
    environments: Sequence[Environment],
    selector: FleetSelector | None,
) -> Plan:
    """From the world as read: unlink each chosen environment that is on this policy (one outage each)."""
    plan = Plan(
        procedure=PROCEDURE,
        requester=requester,
        target_summary=f"policy {target.policy_name} in {target.resource_group}",
    )
    if policy is None:
        plan.add_findings(
            [
                error(
                    "policy.exists",
                    target.policy_name,
                    "the enterprise policy does not exist",
                    "check policy_name and resource_group in the target block",
                )
            ]
        )
        return plan
    for env in select(environments, selector, default=lambda e: linked_to(e, policy)):
        if linked_to(env, policy):
            plan.items.append(
                PlanItem(
                    target=env.id,
                    kind="environment",
                    action=f"unlink from {policy.name}: back to {MICROSOFT_KEY}",
                    detail=env.display_name or "",
                )
            )
            plan.outages.append(
                OutageWindow(
                    environment_id=env.id,
                    sequence=1,
                    cause=f"unlink from {policy.name} (revert to {MICROSOFT_KEY})",
                )
            )
        elif env.cmk is None:
            plan.items.append(
                PlanItem(
                    target=env.id,
                    kind="environment",
                    changes=False,
                    action=f"none: already on {MICROSOFT_KEY}",
                )
            )
        else:
            plan.add_findings(
                [
                    error(
                        "environment.policy",
                        env.id,
                        f"linked to {env.cmk.policy_id}, not to {policy.name}",
                        "revert it with that policy's target block, or leave it out",
                    )
                ]
            )
    if plan.changes:
        plan.holds += hold_subjects(policy)
    return plan


def hold_subjects(policy: PolicyInfo) -> list[PlannedHold]:
    """What must stay untouched for 30 days after environments leave `policy`: its key (and so its vault)
    and the policy with its identity's key access."""
    return [
        PlannedHold(
            subject=f"key {policy.key_name} in {policy.key_vault_id}", days=HOLD_DAYS, reason=HOLD_REASON
        ),
        PlannedHold(
            subject=f"enterprise policy {policy.name} and its identity's key access",
            days=HOLD_DAYS,
            reason=HOLD_REASON,
        ),
    ]


# ------------------------------------------------------------------------------------------- applying


def unlink_step(
    conn: ConnectionSettings, policy: PolicyInfo, deadline: timedelta
) -> Callable[[FleetMember], StepResult]:
    """Unlink one environment from `policy` and wait; it is Disabled meanwhile (and the log says so)."""

    def step(member: FleetMember) -> StepResult:
        get_run_logger().warning(
            "%s (%s) is Disabled from now until its unlink from %s finishes",
            member.name,
            member.id,
            policy.name,
        )
        change = unlink(conn, member.id, policy.system_id, deadline=deadline)
        if not change.done:
            raise RuntimeError(change_failed(change, "unlink"))
        return StepResult(
            state=step_state(change.status == "Unchanged"), detail=f"now {state_of(change.environment)}"
        )

    return step


def hold_policy_and_key(
    conn: ConnectionSettings, policy: PolicyInfo, target: TargetSettings
) -> list[holds.Hold]:
    """Start the 30-day holds on the cloud clock: a tag on the key version the policy uses and on the policy
    (which covers its identity's vault access); the cleanup flow refuses to break them."""
    duration = timedelta(days=HOLD_DAYS)
    ensure_provider_registered(conn)  # else the SDK's own registration policy would sleep for real
    version = policy.key_version or get_key_info(conn, target).version
    return [
        holds.hold_key_version(
            conn,
            policy.key_vault_id or target.vault_id,
            policy.key_name or target.key_name,
            version,
            duration,
            HOLD_REASON,
        ),
        holds.hold_policy(conn, target.resource_group, policy.name, duration, HOLD_REASON),
    ]


@flow(name="revert")
def revert(
    connection: str,
    target: str,
    requester: str,
    selector: FleetSelector | None = None,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
    operation_deadline_hours: float = 96,
) -> RunOutcome:
    """Revert environments of the target's policy to the Microsoft-managed key (all linked ones by default).

    `connection` needs the Power Platform Administrator role; one approver other than `requester` approves.
    """
    conn, tgt = load_settings(connection, target)
    spec = waves or WaveSpec()

    def make_plan() -> Plan:
        return plan_revert(requester, tgt, get_policy(conn, tgt), get_environments(conn), selector)

    plan = make_plan()
    plan.publish()
    plan.raise_for_errors()
    if dry_run or not plan.changes:
        return plan_only_outcome(plan, dry_run)
    try:
        approval = request_approval(
            plan,
            requester=requester,
            key=PROCEDURE,
            timeout_s=approval_timeout_s,
            identities=IdentityResolver(conn),
            replan=make_plan,
            poll_interval_s=approval_poll_s,
        )
    except (ApprovalRejected, SeparationOfDutyError) as refused:
        return refused_outcome(plan, refused)
    plan = approval.plan
    policy = get_policy(conn, tgt)
    if policy is None:
        raise ConfigError("target", f"policy {tgt.policy_name} disappeared after approval", "run again")
    environments = get_environments(conn)
    members = changing_members(plan, environments)
    hold_policy_and_key(
        conn, policy, tgt
    )  # before the first unlink: a crash mid-way must not leave the key unprotected
    report = run_waves(
        plan_waves(members, spec), unlink_step(conn, policy, timedelta(hours=operation_deadline_hours)), spec
    )
    after = {env.id: env for env in get_environments(conn)}
    rows = [
        dict(result.model_dump(), now=state_of(after.get(result.environment_id))) for result in report.results
    ]
    return finish(
        plan,
        approval.approvers,
        report,
        rows,
        f"{len(report.results) - len(report.failed)} environment(s) on {MICROSOFT_KEY}; "
        f"key, vault and access of {policy.name} held {HOLD_DAYS} days",
    )

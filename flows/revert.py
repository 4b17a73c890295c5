"""Revert: remove environments from their enterprise policy, back to the Microsoft-managed key.

The runbook of "Remove environments from policy to return to Microsoft managed key": plan (which linked
environments go back, one outage window each) → approval by a second administrator → per environment in
waves: unlink and wait (the environment is Disabled while its window is open, and the log says so; a
deployment run parks during long unlinks, see flows/_parking.py) → re-read
each environment → a 30-day hold on the key, the vault and the policy's key access, which the documentation
says must stay untouched for database restores (the cleanup flow refuses to break it).

A re-run converges: environments already on the Microsoft-managed key are "unchanged"; the unlink task
waits for an operation still running from a crashed run before it decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from prefect import flow
from prefect.states import State

from ppcmk.approvals.gate import connection_principal
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec
from ppcmk.models.azure import PolicyInfo, linked_to
from ppcmk.models.environments import Environment
from ppcmk.models.findings import error
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem, RunOutcome
from ppcmk.safety.validation import check_parameters
from ppcmk_flows._environment_steps import unlink_step
from ppcmk_flows._parking import ApprovedWork, ParkableWaves
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
    HOLD_DAYS,
    HOLD_REASON,
    MICROSOFT_KEY,
    approval_unless_plan_only,
    changing_members,
    final_state,
    finish,
    hold_policy_and_key,
    hold_subjects,
    load_connection,
    load_target,
    policy_after_approval,
    published,
    read_back,
    select,
)
from ppcmk_flows._two_half_plan import running_operation_findings
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.policy import get_policy

PROCEDURE = "revert"


class RevertWork(ApprovedWork):
    """The approved unlinks and the policy they leave (held 30 days)."""

    policy: PolicyInfo


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
        plan_unlink(plan, env, policy)
    if plan.changes:
        plan.holds += hold_subjects(policy, HOLD_REASON)
    return plan


def plan_unlink(plan: Plan, env: Environment, policy: PolicyInfo) -> None:
    """The environment's unlink (one outage) when it is on this policy; an error when on another one."""
    if linked_to(env, policy):
        action = f"unlink from {policy.name}: back to {MICROSOFT_KEY}"
        plan.items.append(PlanItem(target=env.id, kind="environment", detail=env.display_name or "",
                                   action=action))
        plan.add_findings(running_operation_findings(env, action))
        plan.outages.append(OutageWindow(environment_id=env.id, sequence=1,
                                         cause=f"unlink from {policy.name} (revert to {MICROSOFT_KEY})"))
    elif env.cmk is None:
        plan.items.append(PlanItem(target=env.id, kind="environment", changes=False,
                                   action=f"none: already on {MICROSOFT_KEY}"))
    else:
        plan.add_findings([error("environment.policy", env.id,
                                 f"linked to {env.cmk.policy_id}, not to {policy.name}",
                                 "revert it with that policy's target block, or leave it out")])


def approve_revert(
    conn: ConnectionSettings,
    target: TargetSettings,
    requester: str,
    selector: FleetSelector | None,
    dry_run: bool,
    approving: Approving,
) -> RevertWork | RunOutcome:
    """Plan, approval and the holds (in place before the first unlink, so before any park)."""

    def make_plan() -> Plan:
        return plan_revert(requester, target, get_policy(conn, target), get_environments(conn), selector)

    request = ApprovalRequest.plan_approval(published(make_plan()), PROCEDURE, requester, approving)
    approval = approval_unless_plan_only(request, make_plan, conn, dry_run)
    if isinstance(approval, RunOutcome):
        return approval
    policy = policy_after_approval(conn, target)
    # before the first unlink: a crash mid-way must not leave the key unprotected
    hold_policy_and_key(conn, policy, target, HOLD_REASON)
    return RevertWork(plan=approval.plan, approvers=approval.approvers, policy=policy)


@flow(name="revert", **RELEASE_HOOKS)
@run_form
def revert(
    connection: str,
    target: str,
    requester: str | None = None,
    selector: FleetSelector | None = None,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
    operation_deadline_hours: float = 96,
) -> RunOutcome | State[RunOutcome]:
    """Revert environments of the target's policy to the Microsoft-managed key (all linked ones by default).

    Each environment has an outage while it unlinks; the policy and key are held for 30 days afterwards
    (database restores need them). One approver other than the requester approves.

    Args:
        connection: CmkConnection block with the Power Platform Administrator role (or a registered
            management app) that unlinks, e.g. runbook; in the sandbox sandbox-runbook.
        target: CmkTarget block naming the enterprise policy the environments are on now, e.g. cmk-target;
            in the sandbox sandbox-target-ep-existing (policy ep-existing, where Finance on CMK is).
        requester: Who asks for the revert (UPN or object id); cannot approve it, e.g.
            pp-admin@contoso.example. Empty: the principal the connection signs in as.
        selector: Which environments: ids or names, or a geo / skus / name pattern; empty: every
            environment linked to the target's policy.
        waves: How the environments are split and paced (canary first, wave sizes, parallelism, parking).
        dry_run: Plan and publish the plan only; change nothing (the sandbox Quick run does this).
        operation_deadline_hours: How long one environment's unlink may take before it counts as failed.
    """
    check_parameters(operation_deadline_hours=operation_deadline_hours)
    approving = Approving(approval_timeout_s, approval_poll_s)
    conn, tgt = load_connection(connection), load_target(target)
    fleet = ParkableWaves.reenter(PROCEDURE, RevertWork, waves)
    work = fleet.parked_work or approve_revert(conn, tgt, requester or connection_principal(conn), selector,
                                               dry_run, approving)
    if isinstance(work, RunOutcome):
        return final_state(work)
    step = unlink_step(conn, work.policy, timedelta(hours=operation_deadline_hours), fleet.waiting())
    report = fleet.run(conn, work, step, lambda: changing_members(work.plan, get_environments(conn)))
    report, rows = read_back(conn, report, lambda env: env is not None and env.cmk is None, MICROSOFT_KEY)
    return finish(
        work.plan,
        work.approvers,
        report,
        rows,
        f"{len(report.results) - len(report.failed)} environment(s) on {MICROSOFT_KEY}; "
        f"key, vault and access of {work.policy.name} held {HOLD_DAYS} days",
    )

"""The runbook machinery the procedure flows share: loading the blocks, choosing environments, describing
their state, the 30-day holds on a policy and its key, and the outcomes a run ends with.

One module per documented procedure lives beside this one; what several of them use lives here, so no flow
imports another procedure's module for its helpers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Self

from prefect import get_run_logger
from prefect.states import Cancelled, Completed, State

from ppcmk.approvals.gate import Approval, connection_principal, request_approval
from ppcmk.approvals.proof import TokenProver
from ppcmk.approvals.request import ApprovalRequest
from ppcmk.audit import trail as audit
from ppcmk.cloud.clock import use_cloud_clock
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ApprovalExpired, ApprovalRejected, ConfigError
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.fleet.waves import FleetReport
from ppcmk.identity.settings import ApprovalsSettings
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment, EnvironmentChange
from ppcmk.models.findings import Severity
from ppcmk.safety import claims, holds
from ppcmk.safety.plan import DRY_RUN, OutcomeStatus, Plan, PlannedHold, RunOutcome, publish_table
from ppcmk.safety.validation import check_selected
from ppcmk.services.factory import ClientFactory
from ppcmk.services.people import use_directory
from ppcmk_blocks import APPROVALS_BLOCK, CmkApprovals, CmkConnection, CmkTarget
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.holds import hold_key_version, hold_policy
from ppcmk_tasks.keyvault import get_key_info
from ppcmk_tasks.policy import ensure_provider_registered, get_policy

MICROSOFT_KEY = "the Microsoft-managed key"
DRY_RUN_STATE = "Dry run"  # the name of a dry run's Completed state: what the runs list shows
HOLD_DAYS = 30
HOLD_REASON = "environments left this policy; their backups restore only with this key (keep 30 days)"


def load_connection(block: str) -> ConnectionSettings:
    """A connection block, validated (a bad value fails here, naming the field, before anything is read).
    Its cloud's clock becomes the run's: audit entries carry that time too; the first one a run loads
    names the people its plan names."""
    settings = CmkConnection.named(block).settings()
    use_cloud_clock(ClientFactory.for_settings(settings).sleeper)
    use_directory(settings)
    return settings


def load_approvals() -> ApprovalsSettings:
    """The tenant's approvals app, from the one `ppcmk-approvals` block (set once per server, never a run
    parameter a requester could point elsewhere; docs/AZURE.md). Without it no answer can be proven."""
    return CmkApprovals.named(APPROVALS_BLOCK).settings()


def load_target(block: str) -> TargetSettings:
    return CmkTarget.named(block).settings()


def published(plan: Plan) -> Plan:
    """The plan published (table and artifact); its errors stop the run here, before any change."""
    plan.publish()
    plan.raise_for_errors()
    return plan


@dataclass
class Replanning(ABC):
    """A runbook's plan made from what its two connections read now: made once to ask, and again after each
    approval answer (it is the approval's `replan`). A runbook's subclass keeps what its latest plan was made
    from."""

    kv: ConnectionSettings
    pp: ConnectionSettings
    target: TargetSettings
    requester: str

    @classmethod
    def load(cls, kv_connection: str, pp_connection: str, target: str, requester: str | None) -> Self:
        """The blocks loaded; the requester defaults to the principal the Key Vault connection signs in as."""
        kv = load_connection(kv_connection)
        pp, tgt = load_connection(pp_connection), load_target(target)
        return cls(kv, pp, tgt, requester or connection_principal(kv))

    @abstractmethod
    def __call__(self) -> Plan: ...

    def first(self) -> Plan:
        """The plan to ask approval for, published (its errors stop the run here)."""
        return published(self())


def step_state(unchanged: bool) -> Literal["succeeded", "unchanged"]:
    return "unchanged" if unchanged else "succeeded"


def plan_only_outcome(plan: Plan, dry_run: bool) -> RunOutcome:
    """The run ends after publishing the plan: a dry run (which says what a run would do), or nothing to
    change."""
    status: OutcomeStatus = "dry-run" if dry_run else "nothing-to-do"
    if dry_run:
        windows = len(plan.outages)
        why = (f"{DRY_RUN}; a run without dry_run would make {len(plan.changes)} change(s) with "
               f"{windows} outage window(s) (plan {plan.hash[:12]})")
        message = f"{plan.target_summary}: {why}"
    else:
        notes = "; ".join(f.message for f in plan.findings if f.severity == Severity.INFO)
        message = f"{plan.target_summary}: nothing to do, the plan changes nothing" + (
            f" ({notes})" if notes else "")
    get_run_logger().info(message)
    return RunOutcome(procedure=plan.procedure, status=status, plan_hash=plan.hash, message=message)


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
    selected = [env for env in environments if env.id in chosen]
    check_selected(selected)
    return selected


def changing_members(plan: Plan, environments: Sequence[Environment]) -> list[FleetMember]:
    """The environments the approved plan changes, in plan order."""
    changing = {item.target for item in plan.changes if item.kind == "environment"}
    return [fleet_member(env) for env in environments if env.id in changing]


def state_of(environment: Environment | None) -> str:
    """How an environment looks now, in words an operator acts on."""
    if environment is None:
        return "not visible (deleted?)"
    link = environment.cmk
    # the policy by name (the last segment of its ARM id): a person reads names, not resource ids
    policy = (link.policy_id or "").rsplit("/", 1)[-1] or link.system_id if link else None
    key = f"linked to policy {policy}" if link else MICROSOFT_KEY
    runtime = environment.runtime_state or "unknown"
    reason = (
        f" ({environment.runtime_reason})" if environment.runtime_reason not in (None, "NotSpecified") else ""
    )
    return f"{runtime}{reason}, {key}"


def approved(
    request: ApprovalRequest, replan: Callable[[], Plan], conn: ConnectionSettings
) -> Approval | RunOutcome:
    """The approval `request` asks for (re-planned with `replan` after each answer), or, when it was rejected
    or no acceptable answer came in time, the outcome the flow ends with (see `final_state`): nothing after
    the plan was changed. What the plan changes is claimed for this run first: one claimed by another active
    run fails the plan, naming that run (no approval asked). `conn` (the Key Vault admin's view) reaches the
    tenant: its identity provider's keys verify each approver's proof (`TokenProver`, the one place the proof
    is chosen), and Graph names the requester and the approvers."""
    plan = request.plan
    claims.claim_plan(plan)
    try:
        return request_approval(request, TokenProver(load_approvals(), conn), replan)
    except (ApprovalRejected, ApprovalExpired) as ended:
        status: OutcomeStatus = "rejected" if isinstance(ended, ApprovalRejected) else "expired"
        get_run_logger().warning("%s %s: %s", plan.procedure, status, ended)
        return RunOutcome(procedure=plan.procedure, status=status, plan_hash=plan.hash, message=str(ended))


def final_state(outcome: RunOutcome) -> RunOutcome | State[RunOutcome]:
    """What a flow returns: its outcome (a Completed run), except a dry run, which ends Completed "Dry
    run" with the plan's summary as its message, a rejected plan, which ends the run Cancelled
    "Rejected", and an approval nobody answered acceptably in time, Cancelled "Expired" (grey in the runs
    list). None of them changed anything after the plan. The outcome stays the state's result
    (`state.result(raise_on_failure=False)`)."""
    message = f"{outcome.procedure}: {outcome.message}"
    if outcome.status == "dry-run":  # Completed, named so in the runs list
        return Completed(name=DRY_RUN_STATE, message=message, data=outcome)
    names = {"rejected": "Rejected", "expired": "Expired"}
    if outcome.status not in names:
        return outcome
    return Cancelled(name=names[outcome.status], message=message, data=outcome)


def approval_unless_plan_only(
    request: ApprovalRequest, replan: Callable[[], Plan], conn: ConnectionSettings, dry_run: bool
) -> Approval | RunOutcome:
    """For a published plan without errors: the run ends there when it is a dry run or the plan changes
    nothing; otherwise one approver other than the requester approves it (see `approved`)."""
    if dry_run or not request.plan.changes:
        return plan_only_outcome(request.plan, dry_run)
    return approved(request, replan, conn)


def policy_after_approval(conn: ConnectionSettings, target: TargetSettings) -> PolicyInfo:
    """The target's policy read again once approved (the wait may have been days)."""
    policy = get_policy(conn, target)
    if policy is None:
        raise ConfigError("target", f"policy {target.policy_name} disappeared after approval", "run again")
    return policy


def read_back(
    conn: ConnectionSettings, report: FleetReport, intended: Callable[[Environment | None], bool], wanted: str
) -> tuple[FleetReport, list[dict[str, object]]]:
    """Each environment read back now (one listing): one its step reported done that does not read back as
    `intended` counts as failed ("not verified"), whoever changed it meanwhile. Returns the verified report
    and the result table's rows."""
    after = {env.id: env for env in get_environments(conn)}
    verified = report.model_copy(update={"results": []})
    rows: list[dict[str, object]] = []
    for result in report.results:
        env = after.get(result.environment_id)
        if result.state in ("succeeded", "unchanged") and not intended(env):
            result = result.model_copy(update={
                "state": "failed", "detail": f"not verified: wanted {wanted}, reads back {state_of(env)}"})
        verified.results.append(result)
        rows.append(dict(result.model_dump(), now=state_of(env)))
    return verified, rows


def finish(
    plan: Plan, approvers: list[str], report: FleetReport, rows: list[dict[str, object]], message: str
) -> RunOutcome:
    """Publish the result table, audit the run, and say plainly what is left undone."""
    publish_table(rows, plan.procedure, "result", description=f"{plan.procedure}: state read back afterwards")
    log_closing_lines(rows)
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


def log_closing_lines(rows: Sequence[dict[str, object]]) -> None:
    """One line per environment as the run ends: its name, what the run did, how it stands now."""
    for row in rows:
        if "environment_id" in row:
            name = row.get("name") or row["environment_id"]
            state, now = row.get("state", "done"), row.get("now", "not read back")
            get_run_logger().info("%s (%s): %s; now %s", name, row["environment_id"], state, now)


def change_failed(change: EnvironmentChange, what: str) -> str:
    return (
        f"{what} {change.status}: {change.error_message or 'no error message'}; "
        f"environment is {state_of(change.environment)}"
    )


def hold_policy_and_key(
    conn: ConnectionSettings, policy: PolicyInfo, target: TargetSettings, reason: str = HOLD_REASON
) -> list[holds.Hold]:
    """Start the 30-day holds on the cloud clock: a tag on the key version the policy uses and on the policy
    (which covers its identity's vault access); the cleanup flow refuses to break them."""
    duration = timedelta(days=HOLD_DAYS)
    ensure_provider_registered(conn)  # else the SDK's own registration policy would sleep for real
    version = policy.key_version or get_key_info(conn, target).version
    return [
        hold_key_version(
            conn,
            policy.key_vault_id or target.vault_id,
            policy.key_name or target.key_name,
            version,
            duration,
            reason,
        ),
        hold_policy(conn, target.resource_group, policy.name, duration, reason),
    ]


def hold_subjects(policy: PolicyInfo, reason: str) -> list[PlannedHold]:
    """What must stay untouched for 30 days after environments leave `policy`: its key (and so its vault)
    and the policy with its identity's key access."""
    return [
        PlannedHold(
            subject=f"key {policy.key_name} in {policy.key_vault_id}", days=HOLD_DAYS, reason=reason
        ),
        PlannedHold(
            subject=f"enterprise policy {policy.name} and its identity's key access",
            days=HOLD_DAYS,
            reason=reason,
        ),
    ]

"""The Power Platform half of onboarding and its verification: the handoff to the Power Platform admin,
wait until the approver's fresh Reader on the policy applies, Managed Environment and link per environment,
and the read-back that proves encryption. change_policy and migrate_byok hand off and link the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import cast

from azure.core.exceptions import HttpResponseError

from blocks import CmkConnection
from flows._parking import ApprovedWork, Waiting, parked_operation, parked_step
from flows._runbook import approved, change_failed, finish, linked_to, state_of, step_state
from ppcmk.approvals import PowerPlatformHandoff
from ppcmk.azure_resources import PolicyInfo
from ppcmk.clients import ClientFactory
from ppcmk.errors import SeparationOfDutyError
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import EnvironmentResult, FleetReport, StepResult
from ppcmk.models import Environment
from ppcmk.plan import Plan, RunOutcome
from ppcmk.retry import cmk_task
from ppcmk.settings import ConnectionSettings, TargetSettings
from tasks.access import PROPAGATION_POLL_SECONDS, PROPAGATION_TIMEOUT, has_policy_reader
from tasks.environments import get_environments, link
from tasks.policy import read_policy


class HandoffWork(ApprovedWork):
    """The approved Power Platform half: what its waves need, and what a parked run saves to continue."""

    expected: list[str]  # every environment the handoff plan covers, changing or not (the read-back list)
    connection_block: str  # the approver's own: the half runs with it (its name only: it may hold a secret)
    policy: PolicyInfo

    def connection(self) -> ConnectionSettings:
        return cast(CmkConnection, CmkConnection.load(self.connection_block)).settings()


def hand_off(
    plan_handoff: Callable[[], Plan],
    kv: ConnectionSettings,
    pp_read: ConnectionSettings,
    target: TargetSettings,
    policy: PolicyInfo,
    *,
    requester: str,
    key: str,
    timeout_s: int,
    poll_interval_s: int,
    done_message: str,
) -> HandoffWork | RunOutcome:
    """Publish the Power Platform half's plan and have the Power Platform admin approve it, naming their own
    connection block (they must hold Reader on `policy`). The run ends here with the outcome returned when
    the plan changes nothing (its environments read back, `done_message`) or the approval is refused."""
    handoff = plan_handoff()
    handoff.publish()
    handoff.raise_for_errors()
    expected = [item.target for item in handoff.items if item.kind == "environment"]
    if not handoff.changes:
        report, rows = verify(pp_read, policy, FleetReport(), expected)
        return finish(handoff, [], report, rows, done_message)
    approval = approved(
        handoff,
        kv,
        plan_handoff,
        requester=requester,
        key=key,
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s,
        handoff=PowerPlatformHandoff(
            policy_name=policy.name,
            has_policy_reader=lambda admin: has_policy_reader(kv, target, admin),
            load_connection=lambda block: cast(CmkConnection, CmkConnection.load(block)).settings(),
        ),
    )
    if isinstance(approval, RunOutcome):
        return approval
    block = approval.decisions[-1].connection_block if approval.decisions else None
    if approval.connection is None or not block:  # request_approval checked the approver's connection
        raise SeparationOfDutyError("the handoff was approved without the approver's connection")
    return HandoffWork(plan=approval.plan, approvers=approval.approvers, expected=expected,
                       connection_block=block, policy=policy)


@cmk_task(task_run_name="wait-for-reader-{target.policy_name}")
def wait_for_reader(
    pp: ConnectionSettings, target: TargetSettings, timeout: timedelta = PROPAGATION_TIMEOUT
) -> float:
    """Read the policy as the approver until ARM lets them: their fresh Reader takes minutes to apply, and
    the link is refused (403) until it has. Returns the seconds waited (cloud clock)."""
    factory = ClientFactory.for_settings(pp)
    waited = 0.0
    while True:
        try:
            read_policy(factory, target)
            return waited
        except HttpResponseError as denied:
            if denied.status_code != 403 or waited >= timeout.total_seconds():
                raise
        factory.sleeper.sleep(PROPAGATION_POLL_SECONDS)
        waited += PROPAGATION_POLL_SECONDS


def link_step(
    pp: ConnectionSettings,
    policy: PolicyInfo,
    deadline: timedelta,
    max_attempts: int,
    waiting: Waiting | None = None,
) -> Callable[[FleetMember], StepResult]:
    """One task run per environment: Managed Environment where needed, then link and wait; a Failed link is
    re-run up to `max_attempts`. With `waiting` (a deployment run) a long link parks, and a parked one is
    polled again instead of started again."""
    waits = waiting or Waiting()

    def step(member: FleetMember) -> StepResult:
        saved = waits.saved(member.id, "link")
        change = link(pp, member.id, policy.system_id or "", max_attempts=max_attempts, ensure_managed=True,
                      **waits.options(saved, deadline))
        if (parked := parked_operation(pp, change, saved, deadline, waits)) is not None:
            return parked_step(parked)
        if not change.done:
            what = ("enabling Managed Environment" if change.kind == "governance"
                    else f"link (after {change.attempts} attempt(s))")
            raise RuntimeError(change_failed(change, what))
        return StepResult(  # a parked link that finished meanwhile reads back Unchanged, but this run did it
            state=step_state(change.status == "Unchanged" and saved is None),
            detail=f"{change.attempts} attempt(s)",
        )

    return step


def encrypted_with(env: Environment | None, policy: PolicyInfo) -> bool:
    return (
        env is not None
        and linked_to(env, policy)
        and env.cmk is not None
        and env.cmk.linked
        and env.customer_key
    )


def verify(
    pp: ConnectionSettings, policy: PolicyInfo, report: FleetReport, expected: Sequence[str]
) -> tuple[FleetReport, list[dict[str, object]]]:
    """Read every chosen environment back with ONE listing (a fleet costs one call, not one per environment).

    An environment reported done but not encrypted with the policy counts as failed; failed and not-started
    ones keep their own reason (e.g. the wave whose failures stopped them), the state read back is in `now`.
    """
    after = {env.id: env for env in get_environments(pp)}
    by_id = {r.environment_id: r for r in report.results}
    verified = FleetReport(stopped_after_wave=report.stopped_after_wave)
    rows: list[dict[str, object]] = []
    for environment_id in expected:
        env = after.get(environment_id)
        result = by_id.get(environment_id) or EnvironmentResult(
            environment_id=environment_id,
            name=(env.display_name or "") if env else "",
            wave=0,
            state="unchanged",
            detail="already encrypted before this run",
        )
        if result.state in ("succeeded", "unchanged") and not encrypted_with(env, policy):
            result = result.model_copy(update={"state": "failed", "detail": f"not verified: {state_of(env)}"})
        verified.results.append(result)
        rows.append(
            dict(
                result.model_dump(),
                link_status=env.cmk.link_status if env and env.cmk else "none",
                key_managed_by=env.key_managed_by if env else "",
                now=state_of(env),
            )
        )
    return verified, rows

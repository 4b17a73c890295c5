"""The Power Platform half of onboarding, for a whole fleet: what the fleet benchmark and tests measure.

`link_fleet` is the apply step of the onboard runbook without its plan and approval: list the environments,
select them, split them into waves, and per environment run the `link` task (read, link, wait in that same
task honouring Retry-After, read back), at most `waves.max_in_flight` at once. The approval pause is left
out on purpose: it is one human wait per run, the same for one environment as for five hundred.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from prefect import flow

from flows.revert import change_failed, fleet_member, state_of
from ppcmk.clients import ClientFactory
from ppcmk.settings import ConnectionSettings, TargetSettings
from ppcmk.waves import FleetMember, FleetReport, FleetSelector, StepResult, WaveSpec, plan_waves, run_waves
from tasks.environments import get_environments, link
from tasks.policy import read_policy


def policy_system_id(conn: ConnectionSettings, target: TargetSettings) -> str:
    """The systemId the link call names (read through ARM, as the onboard flow does after creating it)."""
    policy = read_policy(ClientFactory.for_settings(conn), target)
    if policy is None or not policy.system_id:
        raise ValueError(f"target.policy_name: policy {target.policy_name} has no systemId yet; "
                         "create it (onboard) or wait for its identity")
    return policy.system_id


def link_step(
    conn: ConnectionSettings, system_id: str, deadline: timedelta
) -> Callable[[FleetMember], StepResult]:
    """One environment: the link task (it waits inside itself); anything but linked is a failure."""

    def step(member: FleetMember) -> StepResult:
        change = link(conn, member.id, system_id, deadline=deadline)
        if not change.done:
            raise RuntimeError(change_failed(change, "link"))
        state = "unchanged" if change.status == "Unchanged" else "succeeded"
        return StepResult(state=state, detail=f"now {state_of(change.environment)}")

    return step


@flow(name="link-fleet", persist_result=False)
def link_fleet(
    conn: ConnectionSettings,
    system_id: str,
    selector: FleetSelector,
    waves: WaveSpec,
    operation_deadline: timedelta = timedelta(days=4),
) -> FleetReport:
    """Link every selected environment to the policy with `system_id`, wave by wave."""
    members = selector.select([fleet_member(env) for env in get_environments(conn)])
    return run_waves(plan_waves(members, waves), link_step(conn, system_id, operation_deadline), waves)

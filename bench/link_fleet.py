"""The Power Platform half of onboarding over a whole fleet: what the fleet benchmark and tests measure.

`link_fleet` runs exactly what the onboard runbook does after the handoff approval, with onboard's own step
and verification: list and select the environments, split them into waves, and per environment run
`flows._environment_steps.link_step` (one `link` task run: read, Managed Environment where needed, link,
wait inside that task honouring Retry-After, read back), at most `waves.max_in_flight` at once; then
verify every environment from one listing. Left out: the plan, the Key Vault half and the approval pause,
which happen once per run whatever the fleet size.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import FleetReport, WaveSpec, plan_waves, run_waves
from ppcmk.models.azure import PolicyInfo
from ppcmk.safety import claims
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.services.factory import ClientFactory
from ppcmk.services.policies import read_policy
from ppcmk_flows._environment_steps import LinkLimits, link_step, verify
from ppcmk_flows._runbook import fleet_member
from ppcmk_tasks.environments import MAX_LINK_ATTEMPTS, get_environments


def read_linkable_policy(conn: ConnectionSettings, target: TargetSettings) -> PolicyInfo:
    """The target's policy as the link call needs it (systemId), read through ARM."""
    policy = read_policy(ClientFactory.for_settings(conn), target)
    if policy is None or not policy.system_id:
        raise ValueError(f"target.policy_name: policy {target.policy_name} has no systemId yet; "
                         "create it (onboard) or wait for its identity")
    return policy


@flow(name="link-fleet", persist_result=False, **RELEASE_HOOKS)
def link_fleet(
    conn: ConnectionSettings,
    policy: PolicyInfo,
    selector: FleetSelector,
    waves: WaveSpec,
    operation_deadline: timedelta = timedelta(days=4),
    claimed: bool = False,
) -> FleetReport:
    """Link every selected environment to `policy`, wave by wave, then verify each by reading it back.
    `claimed`: hold the environments first, as a runbook holds what its plan changes; the claim keeps each
    started link, so a task retried after a failed poll waits on its link instead of reading afresh."""
    members = selector.select([fleet_member(env) for env in get_environments(conn)])
    subjects = [claims.Subject("environment", member.id) for member in members]
    if claimed and (held := claims.claim(subjects, "link-fleet")):
        raise RuntimeError(f"environments held by other runs: {held}")
    step = link_step(conn, policy, LinkLimits(operation_deadline, MAX_LINK_ATTEMPTS))
    report = run_waves(plan_waves(members, waves), step, waves)
    verified, _ = verify(conn, policy, report, [m.id for m in members])
    return verified

"""Onboard: apply a customer-managed key to Power Platform environments, in the two halves the
documentation prescribes, with the separation of duty between them enforced (flows/_two_half.py).

1. Plan: the doctor for the vault, key and policy, plus every intended change and each environment's
   outage window (published; errors stop here; `dry_run` stops after it).
2. Key Vault admin half, with `kv_connection`: verify the vault, create or adopt the key, register the
   resource provider, create the Encryption policy (versionless key reference), wait for its identity, grant
   it the key (RBAC role or access policy by the vault's model), wait for propagation, grant the Power
   Platform admin Reader on the policy.
3. Handoff: the Power Platform admin approves the Power Platform half of the plan and names their own
   connection block; approver ≠ requester, and their principal must hold Reader on the policy (ARM). The run
   waits until that Reader applies.
4. Power Platform half, with the APPROVER's connection: Managed Environment where needed, then link each
   environment in waves (a bounded number at once; one task per environment polls for up to days honouring
   Retry-After; a Failed link is re-run a bounded number of times, then reported). A deployment run parks
   during long links (flows/_parking.py) and continues here when woken, without planning or asking again.
5. Verify by reading back (linkStatus Linked on this policy, keyManagedBy Customer); result table + audit.

Every step reads before it writes, so a re-run after a crash at any step converges: the key, the policy and
the role assignments are adopted, linked environments are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prefect import flow
from prefect.states import State

from ppcmk.approvals.request import Approving
from ppcmk.cloud.settings import TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import Plan, RunOutcome
from ppcmk_flows._environment_steps import LinkLimits
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import final_state, load_connection, load_target, select
from ppcmk_flows._two_half import HandoffWork, TwoHalfRun
from ppcmk_flows._two_half_plan import plan_links

PROCEDURE = "onboard"


@dataclass(frozen=True)
class SelectedLinks:
    """onboard's environments: the selected ones, each linked to the policy (Managed Environment first)."""

    target: TargetSettings
    selector: FleetSelector
    enable_managed: bool

    def __call__(self, plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment]) -> None:
        chosen = select(environments, self.selector, default=lambda _env: False)
        plan_links(plan, self.target, policy, chosen, self.enable_managed)


@flow(name="onboard", **RELEASE_HOOKS)
@run_form
def onboard(
    kv_connection: str,
    pp_connection: str,
    target: str,
    pp_admin: str,
    selector: FleetSelector | None = None,
    requester: str | None = None,
    enable_managed: bool = True,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
    operation_deadline_days: float = 4,
    max_link_attempts: int = 3,
) -> RunOutcome | State[RunOutcome]:
    """Encrypt the selected environments with the target's key through its enterprise policy: the Key Vault
    admin's half (key, policy, grants), then the Power Platform admin approves and links the environments.

    Args:
        target: CmkTarget block naming the vault, key and enterprise policy (created if missing), e.g.
            cmk-target; in the sandbox sandbox-target (key cmk-prod, policy ep-cmk-europe).
        selector: Which environments to encrypt: ids or names, or a geo / skus / name pattern, e.g.
            {"environment_ids": ["Contoso Production", "Contoso Sandbox"]} (the sandbox Quick run). Empty is
            refused: onboarding never guesses.
    """
    if selector is None or selector.is_empty():
        raise ConfigError(
            "selector", "no environments selected", "name environment_ids, or a geo / skus / name_pattern"
        )
    limits = LinkLimits.checked(operation_deadline_days, max_link_attempts)
    tgt = load_target(target)
    run = TwoHalfRun(PROCEDURE, load_connection(kv_connection), pp_connection, tgt, pp_admin, requester,
                     Approving(approval_timeout_s, approval_poll_s))
    links = SelectedLinks(tgt, selector, enable_managed)

    work = run.parked_work(HandoffWork, waves) or run.until_approved(
        f"key {tgt.key_name} → policy {tgt.policy_name} ({tgt.geo})", links, dry_run,
        handoff_summary=lambda _policy: f"Power Platform half: environments → policy {tgt.policy_name}",
        done_message=lambda policy: f"every environment already encrypted with {policy.name}",
    )
    if isinstance(work, RunOutcome):  # a dry run, nothing to hand off, or not approved
        return final_state(work)
    verified, rows = run.verify(work, run.link_waves(work, limits))
    return run.finish(work, verified, rows,
                      f"environment(s) encrypted with {tgt.key_name} through {work.policy.name}")

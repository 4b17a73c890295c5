"""Migrate BYOK: move environments on the legacy bring-your-own-key to a customer-managed key policy.

The runbook of "Migrate bring-your-own-key environments to customer-managed key": there is no separate API,
a BYOK environment is linked to an enterprise policy like any other (a short outage), and Microsoft keeps the
old BYOK key for at least 28 days. So this is onboarding with a BYOK-aware plan:
1. Find the BYOK environments (`keyManagedBy` CustomerViaMicrosoft and no CMK policy) in the target's geo
   (all of them by default, or those the selector names; BYOK environments of other geos are listed).
2. Plan: onboard's Key Vault half (adopt or create the key and policy, grants, Reader for the Power Platform
   admin), then each environment's link with its outage window and the 28-day BYOK key retention note.
3. Key Vault half → handoff approval (the Power Platform admin names their own connection) → link in waves
   (a deployment run parks during long links, see flows/_parking.py) → verify each environment is encrypted
   through the policy (keyManagedBy Customer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from prefect import flow

from flows import _parking as parking
from flows._runbook import changing_members, finish, load_settings, select
from flows.onboard import key_vault_half, read_key_vault_facts
from flows.onboard_plan import plan_key_vault_half, plan_power_platform_half
from flows.onboard_steps import HandoffWork, hand_off, link_step, verify
from ppcmk.approvals import connection_principal
from ppcmk.azure_resources import PolicyInfo
from ppcmk.findings import error, info
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec, plan_waves
from ppcmk.geo import same_geo
from ppcmk.models import Environment
from ppcmk.plan import Plan, RunOutcome
from ppcmk.settings import TargetSettings
from tasks.environments import get_environments
from tasks.policy import get_policy

PROCEDURE = "migrate_byok"
BYOK_RETENTION_DAYS = 28


def on_byok(environment: Environment) -> bool:
    """Legacy BYOK: the key is the customer's but managed through Microsoft, and no CMK policy is linked."""
    return environment.on_byok


def plan_byok_moves(
    plan: Plan,
    target: TargetSettings,
    policy: PolicyInfo | None,
    environments: Sequence[Environment],
    selector: FleetSelector | None,
    enable_managed: bool,
) -> None:
    """Link each chosen BYOK environment (onboard's per-environment plan), with the retention note."""
    chosen = select(environments, selector, default=lambda e: on_byok(e) and same_geo(e.geo, target.geo))
    not_byok = [env for env in chosen if not on_byok(env)]
    plan.add_findings(
        error(
            "byok.not_byok",
            env.id,
            f"not on BYOK (key managed by {env.key_managed_by}, "
            f"policy {env.cmk.policy_id if env.cmk else 'none'})",
            "use onboard or change_policy for it",
        )
        for env in not_byok
    )
    plan.add_findings(
        info(
            "byok.other_geo",
            env.id,
            f"{env.display_name} is on BYOK in {env.geo}; migrate it with a target in that geo",
        )
        for env in environments
        if on_byok(env) and not same_geo(env.geo, target.geo) and env not in chosen
    )
    byok = [env for env in chosen if on_byok(env)]
    plan_power_platform_half(plan, target, policy, byok, enable_managed)
    for item in plan.items:
        if item.kind == "environment" and item.changes and item.target in {env.id for env in byok}:
            item.detail += f" — BYOK key kept by Microsoft ≥ {BYOK_RETENTION_DAYS} days after the move"
    plan.add_findings(
        info(
            "byok.retention",
            env.id,
            f"Microsoft retains the old BYOK key of {env.display_name} for at least "
            f"{BYOK_RETENTION_DAYS} days after the migration",
        )
        for env in byok
    )


@flow(name="migrate_byok")
def migrate_byok(
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
) -> RunOutcome:
    """Link the BYOK environments of the target's geo (or the selected ones) to the target's policy.

    Roles as in onboard: `kv_connection` for the Key Vault half, `pp_connection` reads environments for the
    plan, `pp_admin` gets Reader on the policy, approves and runs the links with their own connection block.
    """
    kv, tgt = load_settings(kv_connection, target)
    spec = waves or WaveSpec()

    def prepare() -> HandoffWork | RunOutcome:
        """Plan, the Key Vault half and the handoff approval: skipped by a parked run re-entering."""
        pp_read, _ = load_settings(pp_connection, target)
        who = requester or connection_principal(kv)

        def plan_handoff() -> Plan:
            plan = Plan(procedure=PROCEDURE, requester=who,
                        target_summary=f"BYOK environments → policy {tgt.policy_name}")
            plan_byok_moves(
                plan, tgt, get_policy(kv, tgt), get_environments(pp_read), selector, enable_managed
            )
            return plan

        facts = read_key_vault_facts(kv, tgt, pp_admin)
        plan = Plan(
            procedure=PROCEDURE,
            requester=who,
            target_summary=f"BYOK environments → key {tgt.key_name}, policy {tgt.policy_name} ({tgt.geo})",
        )
        plan_key_vault_half(plan, tgt, facts, pp_admin)
        plan_byok_moves(plan, tgt, facts.policy, get_environments(pp_read), selector, enable_managed)
        plan.publish()
        plan.raise_for_errors()
        if dry_run:
            return RunOutcome(procedure=PROCEDURE, status="dry-run", plan_hash=plan.hash, message="plan only")

        policy = key_vault_half(kv, tgt, pp_admin)
        return hand_off(
            plan_handoff,
            kv,
            pp_read,
            tgt,
            policy,
            requester=who,
            key="migrate-byok-handoff",
            timeout_s=approval_timeout_s,
            poll_interval_s=approval_poll_s,
            done_message=f"no BYOK environment left to move to {policy.name}",
        )

    work = resumed.work if (resumed := parking.resumed(PROCEDURE, HandoffWork)) else prepare()
    if isinstance(work, RunOutcome):
        return work
    pp, policy = work.connection(), work.policy
    step = link_step(pp, policy, timedelta(days=operation_deadline_days), max_link_attempts,
                     parking.waiting_for(spec, resumed))
    report = parking.continue_waves(
        PROCEDURE, pp, work, lambda: plan_waves(changing_members(work.plan, get_environments(pp)), spec),
        step, spec, resumed)
    verified, rows = verify(pp, policy, report, work.expected)
    return finish(
        work.plan,
        work.approvers,
        verified,
        rows,
        f"{len(verified.results) - len(verified.failed)} of {len(work.expected)} BYOK environment(s) on "
        f"{policy.name}; Microsoft keeps each old BYOK key ≥ {BYOK_RETENTION_DAYS} days",
    )

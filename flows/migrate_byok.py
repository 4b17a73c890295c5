"""Migrate BYOK: move environments on the legacy bring-your-own-key to a customer-managed key policy.

The runbook of "Migrate bring-your-own-key environments to customer-managed key": there is no separate API,
a BYOK environment is linked to an enterprise policy like any other (a short outage), and Microsoft keeps the
old BYOK key for at least 28 days. So this is onboarding with a BYOK-aware plan:
1. Find the BYOK environments (`keyManagedBy` CustomerViaMicrosoft and no CMK policy) in the target's geo
   (all of them by default, or those the selector names; BYOK environments of other geos are listed).
2. Plan: the Key Vault half (adopt or create the key and policy, grants, Reader for the Power Platform
   admin), then each environment's link with its outage window and the 28-day BYOK key retention note.
3. Key Vault half → handoff approval (the Power Platform admin names their own connection) → wait for their
   Reader → link in waves (a deployment run parks during long links, see flows/_parking.py) → verify each
   environment is encrypted through the policy (keyManagedBy Customer). The two-half procedure is
   flows/_two_half.py; the flow, onboard's with this module's `MigrateByok`, is flows/_linking.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ppcmk.checks.byok import ENDED, reverted_note
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.models.findings import error, info
from ppcmk.models.geo import same_geo
from ppcmk.safety.plan import Plan
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._linking import Linking, link_runbook
from ppcmk_flows._runbook import select
from ppcmk_flows._two_half import PlanEnvironments
from ppcmk_flows._two_half_plan import plan_links
from ppcmk_tasks.byok import platform_reverts

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
    reverted: dict[str, datetime] | None = None,
) -> None:
    """Link each chosen BYOK environment (the same per-environment plan as onboard), with the retention
    note, BYOK's end of support and the environments the platform reverted at it."""
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
    plan.add_findings([info("byok.end_of_support", "BYOK", f"{ENDED}; this run moves {len(byok)} "
                            "environment(s) still on BYOK to the policy")])
    names = {env.id: env.display_name or env.id for env in environments}
    plan.add_findings(info("byok.reverted", env_id, f"{names.get(env_id, env_id)}: {reverted_note(at)}")
                      for env_id, at in (reverted or {}).items())
    plan_links(plan, target, policy, byok, enable_managed)
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


@dataclass(frozen=True)
class MigrateByok(Linking):
    """Link the legacy BYOK environments of the target's geo (or the selected ones) to the target's policy:
    the Key Vault admin's half, then the Power Platform admin approves and links them.

    Args:
        target: CmkTarget block naming the vault, key and enterprise policy to move to, e.g. cmk-target; in
            the sandbox sandbox-target (policy ep-cmk-europe).
        selector: Which environments: ids or names, or a geo / skus / name pattern; empty: every BYOK
            environment in the target's geo (in the sandbox: Legacy BYOK).
    """

    name = "migrate_byok"

    def summary(self) -> str:
        target = self.target
        return f"BYOK environments → key {target.key_name}, policy {target.policy_name} ({target.geo})"

    def environment_planner(self, kv: ConnectionSettings, pp_read: ConnectionSettings
                            ) -> PlanEnvironments:
        factory = ClientFactory.for_settings(pp_read)

        def plan_moves(plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment]) -> None:
            self.plan_environments(plan, policy, environments, platform_reverts(factory, environments))

        return plan_moves

    def plan_environments(self, plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment],
                          reverted: dict[str, datetime] | None = None) -> None:
        plan_byok_moves(plan, self.target, policy, environments, self.selector, self.enable_managed, reverted)

    def handoff_summary(self, policy: PolicyInfo) -> str:
        return f"BYOK environments → policy {self.target.policy_name}"

    def done_message(self, policy: PolicyInfo) -> str:
        return f"no BYOK environment left to move to {policy.name}"

    def finished(self, policy: PolicyInfo) -> str:
        return (f"BYOK environment(s) on {policy.name}; Microsoft keeps each old BYOK key ≥ "
                f"{BYOK_RETENTION_DAYS} days")


migrate_byok = link_runbook(MigrateByok)

"""Onboard: apply a customer-managed key to Power Platform environments, in the two halves the
documentation prescribes, with the separation of duty between them enforced (flows/_two_half.py). This module
says what onboard chooses and says (`Onboard`); its flow is the linking runbooks' one (flows/_linking.py).

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

from ppcmk.errors import ConfigError
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.plan import Plan
from ppcmk_flows._linking import Linking, link_runbook
from ppcmk_flows._runbook import select
from ppcmk_flows._two_half_plan import plan_links


@dataclass(frozen=True)
class Onboard(Linking):
    """Encrypt the selected environments with the target's key through its enterprise policy: the Key Vault
    admin's half (key, policy, grants), then the Power Platform admin approves and links the environments.

    Args:
        target: CmkTarget block naming the vault, key and enterprise policy (created if missing), e.g.
            cmk-target; in the sandbox sandbox-target (key cmk-prod, policy ep-cmk-europe).
        selector: Which environments to encrypt: ids or names, or a geo / skus / name pattern, e.g.
            {"environment_ids": ["Contoso Production", "Contoso Sandbox"]} (the sandbox Quick run). Empty is
            refused: onboarding never guesses.
    """

    name = "onboard"

    def __post_init__(self) -> None:
        if self.selector is None or self.selector.is_empty():
            raise ConfigError(
                "selector", "no environments selected", "name environment_ids, or a geo / skus / name_pattern"
            )

    def summary(self) -> str:
        return f"key {self.target.key_name} → policy {self.target.policy_name} ({self.target.geo})"

    def plan_environments(self, plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment]
                          ) -> None:
        """The selected environments, each linked to the policy (Managed Environment first)."""
        chosen = select(environments, self.selector, default=lambda _env: False)
        plan_links(plan, self.target, policy, chosen, self.enable_managed)

    def handoff_summary(self, policy: PolicyInfo) -> str:
        return f"Power Platform half: environments → policy {self.target.policy_name}"

    def done_message(self, policy: PolicyInfo) -> str:
        return f"every environment already encrypted with {policy.name}"

    def finished(self, policy: PolicyInfo) -> str:
        return f"environment(s) encrypted with {self.target.key_name} through {policy.name}"


onboard = link_runbook(Onboard)

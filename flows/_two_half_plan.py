"""The two halves' plans from facts already read: what the Key Vault admin half will do, and what linking
each environment in the Power Platform half (bound to the handoff approval) will do.

Functions of facts already read, so the same facts always give the same plan and hash; the one read they
make is who claims an environment found with a customer-managed key operation running (whether this run
may adopt that operation). The doctor's findings feed the plan, except those the Key Vault half itself
fixes (an unregistered resource provider, missing key access, missing Reader, an unmanaged environment
when enabling Managed Environment is allowed): those become steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppcmk.checks.environments import THEN, check_environment, cmk_operation_running, running_operation
from ppcmk.cloud.settings import TargetSettings
from ppcmk.models.azure import KeyInfo, PolicyInfo, VaultStatus, linked_to
from ppcmk.models.environments import Environment
from ppcmk.models.findings import Finding, Severity, error
from ppcmk.safety import claims
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem
from ppcmk.services.hsm_rbac import GRANTED_ROLE, HSM_ROLE_NAMES, hsm_key_scope
from ppcmk_tasks.doctor import DoctorReading

# Findings about problems the Key Vault admin half repairs itself (a Reader the doctor could not read is
# not one of them: its finding says why, e.g. an unknown admin).
FIXED_BY_KEY_VAULT_HALF = {"provider.registered", "access.key", "access.admin_reader"}


def repaired_by_this_run(finding: Finding) -> Finding:
    """An Unhealthy policy (its identity cannot use the key yet) is what this half repairs: it grants the
    key access and waits until it applies, so a re-run after a failed or crashed grant can go on. What else
    makes a policy Unhealthy (a disabled or expired key, a closed vault) has its own error finding."""
    if finding.check != "policy.health" or finding.severity != Severity.ERROR:
        return finding
    return finding.model_copy(update={"severity": Severity.WARNING,
                                      "fix": "this run grants the policy identity its key access and waits "
                                             "until it applies"})


def plan_key_vault_half(plan: Plan, target: TargetSettings, reading: DoctorReading, pp_admin: str) -> None:
    """Append the Key Vault admin's steps (and the doctor's findings they do not fix) to `plan`."""
    facts = reading.facts
    unread_reader = facts.policy is not None and facts.admin_has_reader is None
    plan.add_findings(
        repaired_by_this_run(f) for f in reading.findings
        if f.check not in FIXED_BY_KEY_VAULT_HALF or (f.check == "access.admin_reader" and unread_reader)
    )
    vault_name = facts.vault.name if facts.vault else target.vault_id.rsplit("/", 1)[-1]
    registered = facts.provider is not None and facts.provider.registered
    grant = _key_grant_text(facts.vault, target.key_name)
    plan.items += [
        PlanItem(target=vault_name, kind="vault", action="verify soft delete and purge protection",
                 detail=f"permissions by {facts.vault.permission_model}" if facts.vault else "",
                 changes=False),
        _key_item(target, facts.key),
        PlanItem(target="Microsoft.PowerPlatform", kind="provider",
                 action="none: registered" if registered else "register the resource provider",
                 changes=not registered),
        PlanItem(target=target.policy_name, kind="policy",
                 action="none: adopt the existing policy" if facts.policy
                 else f"create Encryption policy in {target.geo} (versionless key reference)",
                 detail=f"resource group {target.resource_group}", changes=facts.policy is None),
        PlanItem(target=f"{target.policy_name} identity", kind="role-assignment",
                 action=f"none: holds {grant}" if facts.key_grants
                 else f"grant {grant}, wait for propagation",
                 changes=not facts.key_grants),
        PlanItem(target=pp_admin, kind="role-assignment",
                 action="none: holds Reader on the policy" if facts.admin_has_reader
                 else "grant Reader on the policy (to link environments)",
                 changes=not facts.admin_has_reader),
    ]


def _key_item(target: TargetSettings, key: KeyInfo | None) -> PlanItem:
    if key is None:
        return PlanItem(target=target.key_name, kind="key", action=f"create key ({target.key_type} "
                        f"{target.key_size})", detail="operations wrapKey, unwrapKey, encrypt, decrypt")
    return PlanItem(target=target.key_name, kind="key", action="none: adopt the existing key",
                    detail=f"current version {key.version}", changes=False)


def _key_grant_text(vault: VaultStatus | None, key_name: str) -> str:
    """What the policy identity is granted under the vault's permission model."""
    if vault is not None and vault.kind == "managedHSM":
        return (
            f"local role {HSM_ROLE_NAMES[GRANTED_ROLE]} at scope {hsm_key_scope(key_name)} "
            f"on the managed HSM {vault.name}"
        )
    if vault is None or vault.permission_model == "rbac":
        return "role Key Vault Crypto Service Encryption User on the vault"
    return "access policy get, wrapKey, unwrapKey"


def running_operation_findings(env: Environment, step: str) -> list[Finding]:
    """A customer-managed key operation running on `env`, whose next step in this plan is `step`: adopted
    or a conflict, judged by who claims the environment (`running_operation`); nothing when none runs."""
    if not cmk_operation_running(env):
        return []
    return [running_operation(env, step, claims.owner_of(claims.Subject("environment", env.id)))]


def plan_links(
    plan: Plan,
    target: TargetSettings,
    policy: PolicyInfo | None,
    environments: Sequence[Environment],
    enable_managed: bool,
) -> None:
    """Append each environment's steps: Managed Environment where needed, then the link (one outage). A link
    found running is adopted or a conflict (`running_operation`)."""
    link_step = f"link to {target.policy_name}"
    for env in environments:
        findings = [
            f
            for f in check_environment(env.id, env, target, policy)
            if not (f.check == "env.managed" and enable_managed) and f.check != "env.busy"
        ]
        findings += running_operation_findings(env, link_step)
        if env.cmk is not None and env.cmk.linked and not linked_to(env, policy):
            findings.append(
                error(
                    "env.other_policy",
                    env.id,
                    f"already encrypted with another policy ({env.cmk.policy_id})",
                    "move it with the change_policy runbook, or leave it out of the selection",
                )
            )
        plan.add_findings(findings)
        name = env.display_name or ""
        if linked_to(env, policy) and env.cmk is not None and env.cmk.linked:
            plan.items.append(
                PlanItem(
                    target=env.id,
                    kind="environment",
                    action="none: already encrypted with this policy",
                    detail=name,
                    changes=False,
                )
            )
            continue
        steps = ([] if env.managed else ["enable Managed Environment"]) + [link_step]
        plan.items.append(
            PlanItem(target=env.id, kind="environment", action=THEN.join(steps), detail=name)
        )
        plan.outages.append(
            OutageWindow(
                environment_id=env.id,
                sequence=1,
                cause=f"link to {target.policy_name} (encryption with the customer-managed key)",
            )
        )

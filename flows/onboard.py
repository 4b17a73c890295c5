"""Onboard: apply a customer-managed key to Power Platform environments, in the two halves the
documentation prescribes, with the separation of duty between them enforced.

1. Plan: the doctor for the vault, key, policy and the chosen environments, plus every intended change and
   each environment's outage window (published; errors stop here; `dry_run` stops after it).
2. Key Vault admin half, with `kv_connection`: verify the vault, create or adopt the key, register the
   resource provider, create the Encryption policy (versionless key reference), wait for its identity, grant
   it the key (RBAC role or access policy by the vault's model), wait for propagation, grant the Power
   Platform admin Reader on the policy.
3. Handoff: the Power Platform admin approves the Power Platform half of the plan and names their own
   connection block; approver ≠ requester, and their principal must hold Reader on the policy (ARM).
4. Power Platform half, with the APPROVER's connection: Managed Environment where needed, then link each
   environment in waves (a bounded number at once; one task per environment polls for up to days honouring
   Retry-After; a Failed link is re-run a bounded number of times, then reported). A deployment run parks
   during long links (flows/_parking.py) and continues here when woken, without planning or asking again.
5. Verify by reading back (linkStatus Linked on this policy, keyManagedBy Customer); result table + audit.

Every step reads before it writes, so a re-run after a crash at any step converges: the key, the policy and
the role assignments are adopted, linked environments are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from prefect import flow, get_run_logger

from flows import _parking as parking
from flows._runbook import (
    changing_members,
    finish,
    load_settings,
    select,
)
from flows.onboard_plan import (
    PROCEDURE,
    KeyVaultFacts,
    plan_key_vault_half,
    plan_power_platform_half,
)
from flows.onboard_steps import HandoffWork, hand_off, link_step, verify, wait_for_reader
from ppcmk import audit
from ppcmk.approvals import connection_principal
from ppcmk.azure_resources import PolicyInfo
from ppcmk.clients import ClientFactory
from ppcmk.errors import ConfigError
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec, plan_waves
from ppcmk.models import Environment
from ppcmk.plan import Plan, RunOutcome
from ppcmk.settings import ConnectionSettings, TargetSettings
from tasks.access import (
    POLICY_READ_ROLES,
    grant_key_access,
    grant_policy_reader,
    read_key_grants,
    read_role_grants,
    resolve_principal,
    wait_for_propagation,
)
from tasks.doctor import READ_ERRORS, run_doctor
from tasks.environments import get_environments
from tasks.keyvault import create_or_adopt_key, read_key_via_arm, read_vault, verify_vault
from tasks.policy import (
    create_or_get_policy,
    ensure_provider_registered,
    get_policy,
    read_policy,
    read_provider,
    wait_for_policy_identity,
)

T = TypeVar("T")


def _read_or_none(read: Callable[[], T]) -> T | None:
    """A fact, or None when it cannot be read (the doctor has already reported why, as an error)."""
    try:
        return read()
    except READ_ERRORS:
        return None


def read_key_vault_facts(kv: ConnectionSettings, target: TargetSettings, pp_admin: str) -> KeyVaultFacts:
    factory = ClientFactory.for_settings(kv)
    report = run_doctor(kv, target, environment_ids=[])
    vault = _read_or_none(lambda: read_vault(factory, target.vault_id))
    policy = _read_or_none(lambda: read_policy(factory, target))
    grants = []
    admin_has_reader = False
    if policy is not None and vault is not None and policy.principal_id:
        grants = read_key_grants(factory, vault, policy.principal_id)
    if policy is not None:
        admin = resolve_principal(factory, pp_admin)
        admin_has_reader = bool(read_role_grants(factory, policy.policy_id, admin, POLICY_READ_ROLES))
    return KeyVaultFacts(
        vault=vault,
        key=_read_or_none(lambda: read_key_via_arm(factory, target.vault_id, target.key_name)[0]),
        provider=_read_or_none(lambda: read_provider(factory)),
        policy=policy,
        key_grants=grants,
        admin_has_reader=admin_has_reader,
        findings=report.findings,
    )


def chosen_environments(pp: ConnectionSettings, selector: FleetSelector) -> list[Environment]:
    return select(get_environments(pp), selector, default=lambda _env: False)


def key_vault_half(kv: ConnectionSettings, target: TargetSettings, pp_admin: str) -> PolicyInfo:
    """Every step idempotent; returns the policy with its identity. Audited with the writes' request ids."""
    logger = get_run_logger()
    with audit.request_ids() as calls:
        vault = verify_vault(kv, target)
        if not (vault.soft_delete and vault.purge_protection):
            raise ConfigError(
                "vault_id",
                f"vault {vault.name} lacks soft delete or purge protection",
                "enable both on the vault, then run again",
            )
        key = create_or_adopt_key(kv, target)
        ensure_provider_registered(kv)
        create_or_get_policy(kv, target)
        policy = wait_for_policy_identity(kv, target)
        principal = policy.principal_id or ""
        key_grant = grant_key_access(kv, target, principal)
        wait_for_propagation(kv, target, principal)
        reader = grant_policy_reader(kv, target, pp_admin)
    writes = [c for c in calls if c.method not in ("GET", "HEAD")]
    audit.record(
        {
            "event": "onboard-key-vault-half",
            "procedure": PROCEDURE,
            "policy": policy.policy_id,
            "key": key.kid,
            "key_created": key.created,
            "key_access": key_grant.model_dump(mode="json"),
            "reader": reader.model_dump(mode="json"),
            "writes": [w.model_dump() for w in writes],
        }
    )
    logger.info(
        "Key Vault half done: key %s, policy %s (identity %s), %d write(s)",
        key.version,
        policy.name,
        principal,
        len(writes),
    )
    return policy


@flow(name="onboard")
def onboard(
    kv_connection: str,
    pp_connection: str,
    target: str,
    pp_admin: str,
    selector: FleetSelector,
    requester: str | None = None,
    enable_managed: bool = True,
    waves: WaveSpec | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
    operation_deadline_days: float = 4,
    max_link_attempts: int = 3,
) -> RunOutcome:
    """Encrypt the selected environments with the target's key through its enterprise policy.

    `kv_connection`: the Key Vault admin (key, policy, role assignments). `pp_connection`: reads environments
    for the plan (read only). `pp_admin`: UPN or object id of the Power Platform admin who gets Reader on the
    policy, approves the handoff and runs the Power Platform half with the connection block they name.
    `requester` defaults to the principal `kv_connection` signs in as.
    """
    if selector.is_empty():
        raise ConfigError(
            "selector", "no environments selected", "name environment_ids, or a geo / skus / name_pattern"
        )
    if max_link_attempts < 1 or operation_deadline_days <= 0:
        raise ConfigError(
            "max_link_attempts / operation_deadline_days",
            f"{max_link_attempts} attempts within {operation_deadline_days} days",
            "use at least 1 attempt and a positive deadline (default 3 attempts, 4 days)",
        )
    kv, tgt = load_settings(kv_connection, target)
    spec = waves or WaveSpec()

    def prepare() -> HandoffWork | RunOutcome:
        """Plan, the Key Vault half and the handoff approval: skipped by a parked run re-entering."""
        pp_read, _ = load_settings(pp_connection, target)
        who = requester or connection_principal(kv)

        def plan_handoff() -> Plan:
            plan = Plan(procedure=PROCEDURE, requester=who,
                        target_summary=f"Power Platform half: environments → policy {tgt.policy_name}")
            plan_power_platform_half(plan, tgt, get_policy(kv, tgt), chosen_environments(pp_read, selector),
                                     enable_managed)
            return plan

        facts = read_key_vault_facts(kv, tgt, pp_admin)
        plan = Plan(procedure=PROCEDURE, requester=who,
                    target_summary=f"key {tgt.key_name} → policy {tgt.policy_name} ({tgt.geo})")
        plan_key_vault_half(plan, tgt, facts, pp_admin)
        plan_power_platform_half(plan, tgt, facts.policy, chosen_environments(pp_read, selector),
                                 enable_managed)
        plan.publish()
        plan.raise_for_errors()
        if dry_run:
            return RunOutcome(procedure=PROCEDURE, status="dry-run", plan_hash=plan.hash, message="plan only")

        policy = key_vault_half(kv, tgt, pp_admin)
        approval = hand_off(
            plan_handoff,
            kv,
            pp_read,
            tgt,
            policy,
            requester=who,
            key=f"{PROCEDURE}-handoff",
            timeout_s=approval_timeout_s,
            poll_interval_s=approval_poll_s,
            done_message=f"every environment already encrypted with {policy.name}",
        )
        if isinstance(approval, RunOutcome):  # a refusal is "rejected"; nothing to hand off: "completed"
            done = approval.status == "completed"
            return approval.model_copy(update={"status": "nothing-to-do"}) if done else approval
        wait_for_reader(approval.connection(), tgt)
        return approval

    work = resumed.work if (resumed := parking.resumed(PROCEDURE, HandoffWork)) else prepare()
    if isinstance(work, RunOutcome):
        return work
    pp, policy = work.connection(), work.policy
    step = link_step(pp, policy, timedelta(days=operation_deadline_days), max_link_attempts,
                     parking.waiting_for(spec, resumed))
    with audit.request_ids() as calls:  # the wave threads run in copies of this context: same collector
        report = parking.continue_waves(
            PROCEDURE, pp, work, lambda: plan_waves(changing_members(work.plan, get_environments(pp)), spec),
            step, spec, resumed)
    audit.record(
        {
            "event": "onboard-power-platform-half",
            "procedure": PROCEDURE,
            "plan_hash": work.plan.hash,
            "approvers": work.approvers,
            "writes": [c.model_dump() for c in calls if c.method not in ("GET", "HEAD")],
        }
    )
    verified, rows = verify(pp, policy, report, work.expected)
    return finish(
        work.plan,
        work.approvers,
        verified,
        rows,
        f"{len(verified.results) - len(verified.failed) - len(verified.not_started)} of {len(work.expected)} "
        f"environment(s) encrypted with {tgt.key_name} through {policy.name}",
    )

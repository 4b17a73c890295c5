"""Cleanup: once the holds have expired, disable old key versions and remove an old policy's key access.

The documentation requires keeping the previous key version usable for 28 days after a rotation, and the old
key with the old policy's access for 30 days after environments left that policy (revert, change of policy):
database restores need them. This flow acts only on what is past its hold, on the cloud's clock:

- a key version's hold ends at the later of its `ppcmk-hold-until` tag (rotate records one) and 28 days after
  the next version was created (so a rotation made outside ppcmk is protected too); the current version is
  never touched;
- an old policy's hold is its `ppcmk-hold-until` tag (revert and change_policy record one); without a tag, or
  while any environment is still linked to it, the plan stops with an error.

Anything inside a hold is refused and the plan says until when; when nothing is eligible the run ends
Completed with status nothing-to-do, naming the holds and when the first ends. Eligible changes need one
approver other than the requester. Keys are never deleted: a version is only disabled (re-enabling it is one
click), access is removed from the vault, the policy stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import cast

from prefect import flow, get_run_logger
from prefect.states import State
from pydantic import BaseModel, Field

from ppcmk.approvals.gate import connection_principal
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.models.azure import KeyVersionInfo, PolicyInfo, linked_to
from ppcmk.models.findings import error
from ppcmk.safety import holds
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import Plan, PlanItem, RunOutcome, publish_table
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import key_client, read_key_versions, read_vault
from ppcmk.services.policies import read_policy
from ppcmk.services.role_grants import read_key_grants
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
    approval_unless_plan_only,
    final_state,
    load_connection,
    load_target,
    published,
)
from ppcmk_tasks.access import revoke_key_access
from ppcmk_tasks.environments import get_environments

PROCEDURE = "cleanup"


def version_hold(
    conn: ConnectionSettings,
    target: TargetSettings,
    version: KeyVersionInfo,
    successor: KeyVersionInfo,
    now: datetime,
) -> holds.Hold:
    """The later of the recorded hold and 28 days after the version was superseded (the rotation; counted
    from now when the successor's creation time is unknown)."""
    rule = holds.Hold(
        subject=f"key {target.key_name} version {version.version}",
        until=(successor.created_on or now) + holds.ROTATION_HOLD,
        reason=f"28 days after rotation to {successor.version}",
    )
    recorded = holds.key_version_hold(conn, target.vault_id, target.key_name, version.version)
    return recorded if recorded is not None and recorded.until > rule.until else rule


class Candidates(BaseModel):
    """What the plan found: versions that may be disabled, the old policy, and the holds still running."""

    versions: list[str] = Field(default_factory=list)
    policy: PolicyInfo | None = None
    held: list[holds.Hold] = Field(default_factory=list)


def plan_cleanup(
    kv: ConnectionSettings,
    pp: ConnectionSettings | None,
    target: TargetSettings,
    requester: str,
    disable_old_versions: bool,
    old_policy: str | None,
) -> tuple[Plan, Candidates]:
    factory = ClientFactory.for_settings(kv)
    now = factory.now()
    plan = Plan(procedure=PROCEDURE, requester=requester,
                target_summary=f"key {target.key_name}" + (f", policy {old_policy}" if old_policy else ""))
    found = Candidates()
    if disable_old_versions:
        versions = read_key_versions(factory, target.vault_id, target.key_name).versions  # newest first
        for successor, version in pairwise(versions):
            if not version.enabled:
                continue
            hold = version_hold(kv, target, version, successor, now)
            if hold.active(now):
                found.held.append(hold)
                plan.items.append(PlanItem(target=f"{target.key_name}/{version.version}", kind="key",
                                           action=f"refused: on hold until {hold.until.isoformat()}",
                                           detail=hold.reason, changes=False))
            else:
                found.versions.append(version.version)
                plan.items.append(PlanItem(target=f"{target.key_name}/{version.version}", kind="key",
                                           action="disable the version (never deleted)",
                                           detail=f"hold ended {hold.until.isoformat()}"))
    if old_policy is not None:
        _plan_policy(plan, found, factory, cast(ConnectionSettings, pp), target.model_copy(
            update={"policy_name": old_policy}), now)
    return plan, found


def _plan_policy(plan: Plan, found: Candidates, factory: ClientFactory, pp: ConnectionSettings,
                 old: TargetSettings, now: datetime) -> None:
    policy = read_policy(factory, old)
    if policy is None or not policy.principal_id or not policy.key_vault_id:
        raise ConfigError("old_policy", f"policy {old.policy_name!r} (or its identity or key) does not exist "
                          f"in {old.resource_group}", "name an existing enterprise policy of that group")
    linked = [env.id for env in get_environments(pp) if linked_to(env, policy)]
    if linked:
        plan.add_findings([error("cleanup.policy_in_use", policy.name, f"still linked to {', '.join(linked)}",
                                 "move or revert those environments first; the hold starts after that")])
    hold = holds.policy_hold(factory.settings, old.resource_group, policy.name)
    if hold is None:
        plan.add_findings([error("cleanup.no_hold", policy.name, "no hold was recorded, so nothing proves "
                                 "30 days have passed since environments left this policy",
                                 "run revert / change_policy (they record the hold), or wait 30 days after "
                                 "the last environment left and tag the policy ppcmk-hold-until")])
        return
    grants = read_key_grants(factory, read_vault(factory, policy.key_vault_id), policy.principal_id or "")
    if hold.active(now):
        found.held.append(hold)
    found.policy = policy
    for grant in grants:
        plan.items.append(PlanItem(
            target=grant.assignment_id or f"access policy of {grant.principal_id}", kind="role-assignment",
            action=f"refused: on hold until {hold.until.isoformat()}" if hold.active(now)
            else f"remove {policy.name}'s key access", detail=hold.reason, changes=not hold.active(now)))


@cmk_task(task_run_name="disable-key-version-{version}")
def disable_key_version(conn: ConnectionSettings, target: TargetSettings, version: str) -> bool:
    """Disable one old version after re-checking its hold on the cloud clock; never the current one."""
    factory = ClientFactory.for_settings(conn)
    versions = read_key_versions(factory, target.vault_id, target.key_name).versions
    index = next((i for i, v in enumerate(versions) if v.version == version), None)
    if index is None or index == 0:
        raise ConfigError("version", f"{version} is not an old version of {target.key_name}",
                          "only versions older than the current one are disabled")
    if not versions[index].enabled:
        return False
    now = factory.now()
    version_hold(conn, target, versions[index], versions[index - 1], now).enforce(now)
    key_client(factory, target.vault_id).update_key_properties(target.key_name, version, enabled=False)
    return True


def remove_policy_access(kv: ConnectionSettings, pp: ConnectionSettings, target: TargetSettings,
                         policy: PolicyInfo) -> int:
    """Re-check the hold and that no environment is linked, then revoke; returns the grants removed."""
    hold = holds.policy_hold(kv, target.resource_group, policy.name)
    if hold is None:
        raise ConfigError("old_policy", f"the hold on {policy.name} disappeared", "run the plan again")
    hold.enforce(ClientFactory.for_settings(kv).now())
    if any(linked_to(env, policy) for env in get_environments(pp)):
        raise ConfigError("old_policy", f"an environment was linked to {policy.name} meanwhile",
                          "run again to see which one")
    vault_target = target.model_copy(update={"vault_id": policy.key_vault_id, "policy_name": policy.name})
    return len(revoke_key_access(kv, vault_target, policy.principal_id or "").removed)


@flow(name="cleanup", **RELEASE_HOOKS)
@run_form
def cleanup(
    kv_connection: str,
    target: str,
    pp_connection: str | None = None,
    requester: str | None = None,
    disable_old_versions: bool = True,
    old_policy: str | None = None,
    dry_run: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
) -> RunOutcome | State[RunOutcome]:
    """Disable the target key's old versions past their 28-day hold and, with old_policy, remove that policy's
    key access past its 30-day hold. Nothing to do (Completed, with the hold dates) while everything is on
    hold. One approver other than the requester; nothing is ever deleted.

    Args:
        kv_connection: CmkConnection block that disables versions and removes role assignments, e.g.
            kv-admin; in the sandbox sandbox-kv-admin.
        target: CmkTarget block naming the vault and key whose old versions are cleaned up, e.g.
            cmk-target; in the sandbox sandbox-target (key cmk-prod).
        pp_connection: CmkConnection block that reads the environments, to prove none is still linked to
            old_policy, e.g. pp-admin; in the sandbox sandbox-pp-admin. Needed with old_policy.
        requester: Who asks for the cleanup (UPN or object id); cannot approve it. Empty: the principal
            kv_connection signs in as.
        disable_old_versions: Disable the key's versions past their hold (never the current version).
        old_policy: Name of a policy in the target's resource group whose key access goes once its hold
            ended, e.g. ep-cmk-europe-old; empty: leave policies alone.
    """
    approving = Approving(approval_timeout_s, approval_poll_s)
    if old_policy is not None and pp_connection is None:
        raise ConfigError("pp_connection", "old_policy needs a connection that can read environments",
                          "name a Power Platform admin (or management app) connection block")
    kv, tgt = load_connection(kv_connection), load_target(target)
    pp = load_connection(pp_connection) if pp_connection else None
    who = requester or connection_principal(kv)

    latest: dict[str, Candidates] = {}

    def make_plan() -> Plan:
        plan, latest["found"] = plan_cleanup(kv, pp, tgt, who, disable_old_versions, old_policy)
        return plan

    plan = published(make_plan())
    found = latest["found"]
    if found.held and not plan.changes:
        return still_on_hold(plan, found.held)
    request = ApprovalRequest.plan_approval(plan, PROCEDURE, who, approving)
    approval = approval_unless_plan_only(request, make_plan, kv, dry_run)
    if isinstance(approval, RunOutcome):
        return final_state(approval)
    plan, found = approval.plan, latest["found"]  # the candidates of the plan that was approved
    disabled = [v for v in found.versions if disable_key_version(kv, tgt, v)]
    removed = 0
    if found.policy is not None and not any(h.subject.endswith(found.policy.name) for h in found.held):
        removed = remove_policy_access(kv, cast(ConnectionSettings, pp), tgt, found.policy)
    return cleaned(kv, tgt, plan, approval.approvers, disabled, old_policy, removed)


def still_on_hold(plan: Plan, held: Sequence[holds.Hold]) -> RunOutcome:
    """Everything that could go is still on hold: nothing to do yet, which is not a failure."""
    first = min(held, key=lambda h: h.until)
    message = "nothing can be cleaned up yet: " + "; ".join(
        f"{h.subject} is on hold until {h.until.isoformat()} ({h.reason})" for h in held
    ) + f". Run cleanup again after {first.until.isoformat()}, when the first hold ends"
    get_run_logger().info(message)
    return RunOutcome(procedure=PROCEDURE, status="nothing-to-do", plan_hash=plan.hash, message=message)


def cleaned(
    kv: ConnectionSettings,
    tgt: TargetSettings,
    plan: Plan,
    approvers: list[str],
    disabled: list[str],
    old_policy: str | None,
    removed: int,
) -> RunOutcome:
    """The key's versions read back as the result table, the audit entry and the outcome."""
    factory = ClientFactory.for_settings(kv)
    rows = [{"version": v.version, "current": v.current, "enabled": v.enabled}
            for v in read_key_versions(factory, tgt.vault_id, tgt.key_name).versions]
    publish_table(rows, PROCEDURE, "result", description="key versions after cleanup (none deleted)")
    audit.record({"event": "cleanup-finished", "procedure": PROCEDURE, "plan_hash": plan.hash,
                  "requester": plan.requester, "approvers": approvers, "disabled_versions": disabled,
                  "old_policy": old_policy, "grants_removed": removed})
    message = (f"disabled {len(disabled)} old version(s) of {tgt.key_name}; removed {removed} key access "
               f"grant(s) of {old_policy or 'no policy'}; nothing deleted")
    get_run_logger().info(message)
    return RunOutcome(procedure=PROCEDURE, status="completed", plan_hash=plan.hash, message=message,
                      approvers=approvers, rows=rows)

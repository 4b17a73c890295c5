"""Rotate the customer-managed key: a new key version, the previous one held for 28 days.

A new version is not destructive (environments follow a versionless policy within 24 hours, and earlier
versions stay enabled), so this flow asks for no approval and runs unattended on a schedule (`approval=True`
asks one approver other than the requester first: what `ppcmk converge` starts). It never
disables or deletes a version; the cleanup flow does that after the hold, with approval. A policy pinned to
one key version would not follow the rotation: the plan flags it as a warning.

Re-runs converge: when the current version is younger than `min_interval_hours` (cloud clock), the rotation
already happened and is not repeated.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import HttpResponseError
from prefect import flow, get_run_logger
from prefect.states import State

from ppcmk.approvals.gate import connection_principal
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ServiceError
from ppcmk.models.azure import KeyInfo, PolicyInfo
from ppcmk.models.findings import info, warning
from ppcmk.safety.plan import OutcomeStatus, Plan, PlanItem, PlannedHold, RunOutcome, publish_table
from ppcmk.safety.validation import check_key_shape, check_parameters, check_rotation
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import (
    approved,
    final_state,
    load_connection,
    load_target,
    plan_only_outcome,
    published,
)
from ppcmk_tasks.holds import ensure_rotation_hold
from ppcmk_tasks.keyvault import get_key_info
from ppcmk_tasks.policy import get_policy
from ppcmk_tasks.rotation import list_key_versions, new_key_version, rotate_key_now, set_rotation_policy


@flow(name="rotate", log_prints=False)
@run_form
def rotate(
    connection: str,
    target: str,
    requester: str | None = None,
    mode: Literal["new-version", "rotate-now"] = "new-version",
    min_interval_hours: int = 24,
    set_policy: bool = False,
    rotate_after_days: int = 90,
    expire_after_days: int | None = 365,
    notify_before_days: int = 30,
    dry_run: bool = False,
    approval: bool = False,
    approval_timeout_s: int = 3 * 24 * 3600,
    approval_poll_s: int = 10,
) -> RunOutcome | State[RunOutcome]:
    """Rotate the target's key: a new version, a health check, the previous version held for 28 days.

    Args:
        connection: CmkConnection block of the identity that rotates (Key Vault Crypto Officer on the key),
            e.g. kv-admin; in the sandbox sandbox-kv-admin.
        target: CmkTarget block naming the vault, key and enterprise policy, e.g. cmk-target; in the sandbox
            sandbox-target (key cmk-prod in kv-cmk-prod).
        requester: Who asks for the rotation (UPN or object id), for the audit trail. Empty: the principal
            the connection signs in as (a scheduled run).
        mode: new-version creates the version with ppcmk's key parameters; rotate-now asks Key Vault to
            rotate by the key's own rotation policy.
        min_interval_hours: A key whose current version is younger than this is left alone (nothing to do),
            so a retried or doubled run never rotates twice.
        set_policy: Also write the key's rotation policy (the three values below).
        rotate_after_days: Rotation policy: rotate this many days after a version was created.
        expire_after_days: Rotation policy: each version expires this many days after creation; empty for
            no expiry.
        notify_before_days: Rotation policy: Event Grid notifies this many days before expiry.
        approval: Ask one approver other than the requester before rotating (off: the scheduled run is
            unattended; a new version breaks nothing).
        approval_timeout_s: With approval: seconds to wait for the answer before the run ends as not approved.
        approval_poll_s: With approval: how often (seconds) a local run looks for the answer; deployment
            runs suspend.
    """
    conn, key_target = load_connection(connection), load_target(target)
    # a scheduled run has nobody to name: the principal the connection signs in as requested it
    requester = requester or connection_principal(conn)

    # 1. Plan: what the key and the policy look like now, and what this run will do.
    check_parameters(min_interval_hours=min_interval_hours)
    approving = Approving(approval_timeout_s, approval_poll_s)
    since = ClientFactory.for_settings(conn).now() - timedelta(hours=min_interval_hours)  # cloud clock
    if set_policy:
        check_rotation(rotate_after_days, expire_after_days, notify_before_days)
    current = get_key_info(conn, key_target)
    if set_policy:
        check_key_shape(key_target, current.kty, current.size)
    recently_rotated = current.created_on is not None and current.created_on > since
    plan = plan_rotation(requester, key_target, current, readable_policy(conn, key_target), recently_rotated,
                         mode, min_interval_hours)
    if set_policy:
        plan.items.append(PlanItem(
            target=key_target.key_name, kind="key", action="set the rotation policy",
            detail=f"rotate after {rotate_after_days} d, expire after {expire_after_days} d"))
    published(plan)
    if dry_run:
        return final_state(plan_only_outcome(plan, dry_run))
    if approval and not recently_rotated:
        request = ApprovalRequest.plan_approval(plan, "rotate", requester, approving)
        answer = approved(request, lambda: plan, conn)
        if isinstance(answer, RunOutcome):
            return final_state(answer)

    # 2. Apply: rotation policy, then the new version (idempotent through `since`), the hold, the read-back;
    # 3. record the history.
    if set_policy:
        set_rotation_policy(conn, key_target, rotate_after_days, expire_after_days, notify_before_days)
    verified = rotate_and_hold(conn, key_target, mode, since)
    return recorded(plan, key_target, current, verified, publish_history(conn, key_target))


def readable_policy(conn: ConnectionSettings, target: TargetSettings) -> PolicyInfo | None:
    """The target's policy, or None when it cannot be read (no policy yet, the provider unregistered):
    then no policy pins a version."""
    try:
        return get_policy(conn, target)
    except (ServiceError, HttpResponseError) as unreadable:
        get_run_logger().info("Enterprise policy not readable (%s); skipping the pinned-version check",
                              unreadable)
        return None


def recorded(
    plan: Plan, target: TargetSettings, previous: KeyInfo, verified: KeyInfo, rows: list[dict[str, object]]
) -> RunOutcome:
    """The rotation in the audit trail and the log, and the run's outcome (nothing to do when the current
    version did not change)."""
    audit.record({"event": "rotation", "plan_hash": plan.hash, "requester": plan.requester,
                  "key": target.key_name, "vault": target.vault_id, "previous": previous.version,
                  "current": verified.version})
    status: OutcomeStatus = "nothing-to-do" if verified.version == previous.version else "completed"
    get_run_logger().info("Key %s: current version %s (was %s)", target.key_name, verified.version,
                          previous.version)
    return RunOutcome(procedure="rotate", status=status, plan_hash=plan.hash, rows=rows,
                      message=f"current version {verified.version}; previous {previous.version}")


def plan_rotation(
    requester: str,
    target: TargetSettings,
    current: KeyInfo,
    policy: PolicyInfo | None,
    recently_rotated: bool,
    mode: Literal["new-version", "rotate-now"],
    min_interval_hours: int,
) -> Plan:
    """The new version (or nothing, when the current one is recent), and a warning for a pinned policy."""
    plan = Plan(procedure="rotate", requester=requester,
                target_summary=f"key {target.key_name} in {target.vault_id.rsplit('/', 1)[-1]}")
    if policy is not None and policy.key_version:
        plan.add_findings([warning(
            "policy.pinned_key_version", policy.name,
            f"the policy references key version {policy.key_version}: environments will not follow rotation",
            "change the policy to the versionless key (change_policy flow) before relying on rotation")])
    if recently_rotated:
        plan.add_findings([info("key.recently_rotated", target.key_name,
                                f"current version {current.version} is younger than {min_interval_hours} h")])
        plan.items.append(PlanItem(target=target.key_name, kind="key", action="none: already rotated",
                                   detail=f"current version {current.version}", changes=False))
    else:
        action = "create a new key version" if mode == "new-version" else "rotate now"
        plan.items.append(PlanItem(target=target.key_name, kind="key", action=action,
                                   detail=f"previous version {current.version} stays enabled"))
        plan.holds.append(PlannedHold(subject=f"key version {current.version}", days=28,
                                      reason="previous version after rotation"))
    return plan


def rotate_and_hold(
    conn: ConnectionSettings,
    target: TargetSettings,
    mode: Literal["new-version", "rotate-now"],
    since: datetime,
) -> KeyInfo:
    """The new version (none when one was made `since`), the previous one held 28 days (also placed when a
    crashed run left it out), and the key read back: its current version must be the new one."""
    rotated = (new_key_version(conn, target, since=since) if mode == "new-version"
               else rotate_key_now(conn, target, since=since))
    ensure_rotation_hold(conn, target, rotated.version)
    verified = get_key_info(conn, target)
    if verified.version != rotated.version:
        raise RuntimeError(f"after rotation the current version is {verified.version}, expected "
                           f"{rotated.version}; run again to converge")
    return verified


def publish_history(conn: ConnectionSettings, target: TargetSettings) -> list[dict[str, object]]:
    """The key's versions after the rotation, as the result table."""
    history = list_key_versions(conn, target)
    rows: list[dict[str, object]] = [
        {"version": v.version, "current": v.current, "enabled": v.enabled,
         "created": v.created_on.isoformat() if v.created_on else "",
         "expires": v.expires_on.isoformat() if v.expires_on else ""}
        for v in history.versions
    ]
    publish_table(rows, "rotate", target.key_name, "history", description="Key versions after rotation")
    return rows

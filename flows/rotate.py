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

from datetime import timedelta
from typing import Literal

from azure.core.exceptions import HttpResponseError
from prefect import flow, get_run_logger

from blocks import CmkConnection, CmkTarget
from flows._runbook import approved
from ppcmk import audit
from ppcmk.approvals import connection_principal
from ppcmk.clients import ClientFactory
from ppcmk.errors import ServiceError
from ppcmk.findings import info, warning
from ppcmk.plan import Plan, PlanItem, PlannedHold, RunOutcome, publish_table
from ppcmk.validation import check_key_shape, check_parameters, check_rotation
from tasks.holds import ensure_rotation_hold
from tasks.keyvault import (
    get_key_info,
    list_key_versions,
    new_key_version,
    rotate_key_now,
    set_rotation_policy,
)
from tasks.policy import get_policy


@flow(name="rotate", log_prints=False)
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
) -> RunOutcome:
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
        dry_run: Plan and publish the plan only; change nothing.
    """
    logger = get_run_logger()
    conn = CmkConnection.load(connection).settings()
    key_target = CmkTarget.load(target).settings()
    # a scheduled run has nobody to name: the principal the connection signs in as requested it
    requester = requester or connection_principal(conn)
    now = ClientFactory.for_settings(conn).now()

    # 1. Plan: what the key and the policy look like now, and what this run will do.
    check_parameters(min_interval_hours=min_interval_hours, approval_timeout_s=approval_timeout_s,
                     approval_poll_s=approval_poll_s)
    if set_policy:
        check_rotation(rotate_after_days, expire_after_days, notify_before_days)
    current = get_key_info(conn, key_target)
    if set_policy:
        check_key_shape(key_target, current.kty, current.size)
    try:
        policy = get_policy(conn, key_target)
    except (ServiceError, HttpResponseError) as unreadable:  # no policy yet (RP unregistered): nothing pinned
        logger.info("Enterprise policy not readable (%s); skipping the pinned-version check", unreadable)
        policy = None
    recently_rotated = current.created_on is not None and now - current.created_on < timedelta(
        hours=min_interval_hours)
    plan = Plan(procedure="rotate", requester=requester,
                target_summary=f"key {key_target.key_name} in {key_target.vault_id.rsplit('/', 1)[-1]}")
    if policy is not None and policy.key_version:
        plan.add_findings([warning(
            "policy.pinned_key_version", policy.name,
            f"the policy references key version {policy.key_version}: environments will not follow rotation",
            "change the policy to the versionless key (change_policy flow) before relying on rotation")])
    if recently_rotated:
        plan.add_findings([info("key.recently_rotated", key_target.key_name,
                                f"current version {current.version} is younger than {min_interval_hours} h")])
        plan.items.append(PlanItem(target=key_target.key_name, kind="key", action="none: already rotated",
                                   detail=f"current version {current.version}", changes=False))
    else:
        action = "create a new key version" if mode == "new-version" else "rotate now"
        plan.items.append(PlanItem(target=key_target.key_name, kind="key", action=action,
                                   detail=f"previous version {current.version} stays enabled"))
        plan.holds.append(PlannedHold(subject=f"key version {current.version}", days=28,
                                      reason="previous version after rotation"))
    if set_policy:
        plan.items.append(PlanItem(
            target=key_target.key_name, kind="key", action="set the rotation policy",
            detail=f"rotate after {rotate_after_days} d, expire after {expire_after_days} d"))
    plan.publish()
    plan.raise_for_errors()
    if dry_run:
        return RunOutcome(procedure="rotate", status="dry-run", plan_hash=plan.hash, message="plan only")
    if approval and not recently_rotated:
        answer = approved(plan, conn, lambda: plan, requester=requester, key="rotate",
                          timeout_s=approval_timeout_s, poll_interval_s=approval_poll_s)
        if isinstance(answer, RunOutcome):
            return answer

    # 2. Apply: rotation policy, then the new version (idempotent through `since`), then the hold.
    if set_policy:
        set_rotation_policy(conn, key_target, rotate_after_days, expire_after_days, notify_before_days)
    since = now - timedelta(hours=min_interval_hours)
    rotated = (new_key_version(conn, key_target, since=since) if mode == "new-version"
               else rotate_key_now(conn, key_target, since=since))
    ensure_rotation_hold(conn, key_target, rotated.version)  # also repairs one a crashed run left out

    # 3. Verify by reading back, then record the history.
    verified = get_key_info(conn, key_target)
    if verified.version != rotated.version:
        raise RuntimeError(f"after rotation the current version is {verified.version}, expected "
                           f"{rotated.version}; run again to converge")
    history = list_key_versions(conn, key_target)
    rows = [{"version": v.version, "current": v.current, "enabled": v.enabled,
             "created": v.created_on.isoformat() if v.created_on else "", "expires":
             v.expires_on.isoformat() if v.expires_on else ""} for v in history.versions]
    publish_table(rows, "rotate", key_target.key_name, "history", description="Key versions after rotation")
    audit.record({"event": "rotation", "plan_hash": plan.hash, "requester": requester,
                  "key": key_target.key_name, "vault": key_target.vault_id, "previous": current.version,
                  "current": verified.version})
    status = "nothing-to-do" if verified.version == current.version else "completed"
    logger.info("Key %s: current version %s (was %s)", key_target.key_name, verified.version, current.version)
    return RunOutcome(procedure="rotate", status=status, plan_hash=plan.hash, rows=rows,
                      message=f"current version {verified.version}; previous {current.version}")

"""change_policy end to end: new key and policy, two outages per environment, handoff, holds, re-run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk.safety.holds import policy_hold
from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from tests.support.arm import policy_id
from tests.support.runs import (
    NEW_POLICY,
    approve_next,
    approver_read_policy_before_linking,
    completed,
    halves_audited_as,
    start_change,
)
from tests.support.scenario import FINANCE, LINKED_POLICY, PP_ADMIN, RESOURCE_GROUP, VAULT

pytestmark = pytest.mark.usefixtures("prefect_backend")


def linked_policy(cloud: Any) -> str | None:
    env = cloud.world.powerplatform.environment(FINANCE)
    return env.cmk.policy_id.rsplit("/", 1)[-1] if env.cmk else None


def test_change_policy_moves_through_two_outages_and_holds_the_old_key(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_change(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN)
    assert "2 outage window(s) across 1 environment(s)" in pending.description
    assert f"unlink from {LINKED_POLICY}, then link to {NEW_POLICY}" in pending.description
    completed(running)
    assert linked_policy(cloud) == NEW_POLICY
    assert (
        cloud.log.count(method="POST", path=r"/unlink") == 1
        and cloud.log.count(method="POST", path=r"/link") == 1
    )
    conn = CmkConnection.load(sandbox_blocks["kv-admin"]).settings()
    hold = policy_hold(conn, RESOURCE_GROUP, LINKED_POLICY)
    assert hold is not None and hold.until - ClientFactory.for_settings(conn).now() > timedelta(days=29)
    new_principal = cloud.world.arm.get_policy(policy_id(cloud, NEW_POLICY)).principal_id
    vault_grants = [
        a
        for a in cloud.world.rbac.assignments.values()
        if a.principal_id == new_principal and a.scope.lower().endswith(f"/vaults/{VAULT}")
    ]
    assert len(vault_grants) == 1  # the new identity holds the (old and new) key's vault exactly once


def test_the_moves_wait_for_the_approvers_reader_and_are_audited_as_change_policy(
    cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog
) -> None:
    running = start_change(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    completed(running)
    assert approver_read_policy_before_linking(cloud, NEW_POLICY)
    key_vault_half, half = halves_audited_as(audit_home, "change_policy")
    assert key_vault_half["policy"].endswith(f"/{NEW_POLICY}") and half["approvers"] == [PP_ADMIN]
    writes = [w["url"] for w in half["writes"]]
    assert sum(u.endswith("/unlink") for u in writes) == 1 and sum(u.endswith("/link") for u in writes) == 1


def test_the_plan_shows_two_outage_windows_per_environment(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    outcome = start_change(sandbox_blocks, dry_run=True).result()
    assert outcome.status == "dry-run"
    assert cloud.log.count(method="PUT") == 0 and linked_policy(cloud) == LINKED_POLICY


def test_a_failed_link_is_reported_and_a_rerun_converges_without_duplicates(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    cloud.faults.add(method="POST", path=r"/enterprisePolicies/Encryption/link", status=400, times=1)
    running = start_change(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    first = running.result()
    assert first.status == "partial" and FINANCE in first.message
    assert linked_policy(cloud) is None  # between the outages: on the Microsoft key, and the result says so
    cloud.faults.clear()
    running = start_change(sandbox_blocks)  # the unfinished move is remembered: no selector needed
    pending = approve_next(running, PP_ADMIN)
    assert "1 outage window(s) across 1 environment(s)" in pending.description  # only the link is left
    completed(running)
    assert linked_policy(cloud) == NEW_POLICY
    assert cloud.log.count(method="PUT", path=rf"enterprisePolicies/{NEW_POLICY}($|\?)", status=201) == 1
    assert (
        cloud.log.count(method="PUT", path=r"roleAssignments", status=201) == 2
    )  # key access + Reader, once

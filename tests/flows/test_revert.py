"""revert end to end against the sandbox: unlink back to the Microsoft key, approvals, the 30-day hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk.errors import HoldActive
from ppcmk.safety.holds import policy_hold
from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from tests.support.runs import answer, approve_next, completed, start_revert, wait_for_approval
from tests.support.scenario import (
    FINANCE,
    LINKED_POLICY,
    LINKED_POLICY_GRANT,
    PP_ADMIN,
    PRODUCTION,
    REQUESTER,
    RESOURCE_GROUP,
    VAULT,
)

pytestmark = pytest.mark.usefixtures("prefect_backend")


def env_state(cloud: Any, environment_id: str) -> Any:
    return cloud.world.powerplatform.environment(environment_id)


def test_revert_unlinks_and_holds_the_key_for_30_days(
    cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog
) -> None:
    running = start_revert(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN)
    assert f"unlink from {LINKED_POLICY}" in pending.description and FINANCE in pending.description
    outcome = completed(running)
    env = env_state(cloud, FINANCE)
    assert env.cmk is None and env.key_managed_by == "Microsoft"
    assert [r["state"] for r in outcome.rows] == ["succeeded"] and "Enabled" in outcome.rows[0]["now"]
    conn = CmkConnection.load(sandbox_blocks["runbook"]).settings()
    hold = policy_hold(conn, RESOURCE_GROUP, LINKED_POLICY)
    now = ClientFactory.for_settings(conn).now()
    assert hold is not None and timedelta(days=29) < hold.until - now <= timedelta(days=30)
    with pytest.raises(HoldActive, match="until"):
        hold.enforce(now + timedelta(days=29))
    events = [e["event"]["event"] for e in audit_home.entries()]
    assert "revert-finished" in events and "hold-recorded" in events


def test_a_failed_unlink_is_reported_and_a_rerun_converges(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    cloud.faults.add(method="POST", path=r"/enterprisePolicies/Encryption/unlink", status=400, times=1)
    running = start_revert(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    first = running.result()
    assert first.status == "partial" and FINANCE in first.message
    assert "linked to" in first.rows[0]["now"]  # the result says where the environment stands
    cloud.faults.clear()
    running = start_revert(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    completed(running)
    assert env_state(cloud, FINANCE).cmk is None
    assert cloud.log.count(method="POST", path=r"/unlink", status=202) == 1


def test_cleanup_refuses_to_break_the_revert_hold(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    from ppcmk_flows.cleanup import cleanup

    running = start_revert(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    completed(running)
    cloud.clock.advance(timedelta(days=29))
    held = cleanup(
        kv_connection=sandbox_blocks["kv-admin"],
        target=sandbox_blocks["target"],
        pp_connection=sandbox_blocks["pp-admin"],
        requester=REQUESTER,
        disable_old_versions=False,
        old_policy=LINKED_POLICY,
        dry_run=True,
    )
    assert held.status == "nothing-to-do" and "on hold until" in held.message
    grants = [a for a in cloud.world.rbac.assignments.values() if a.scope.lower().endswith(f"/{VAULT}")]
    assert any(a.name == LINKED_POLICY_GRANT for a in grants)


def test_an_environment_linked_while_waiting_is_planned_again(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_revert(sandbox_blocks)
    first = wait_for_approval(running)
    assert PRODUCTION not in first.description
    # meanwhile another admin links a second environment to the policy (through the admin API)
    factory = ClientFactory.for_settings(CmkConnection.load(sandbox_blocks["runbook"]).settings())
    system_id = env_state(cloud, FINANCE).cmk.system_id
    factory.pp_admin().begin_link(PRODUCTION, system_id)
    cloud.clock.advance(timedelta(hours=2))
    answer(first, approve=True, approver=PP_ADMIN)
    second = approve_next(running, PP_ADMIN)
    assert second.plan_hash != first.plan_hash and PRODUCTION in second.description
    completed(running)
    assert env_state(cloud, FINANCE).cmk is None and env_state(cloud, PRODUCTION).cmk is None

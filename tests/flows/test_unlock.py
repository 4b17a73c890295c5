"""unlock end to end: restores exactly what lock revoked (same assignment), re-enables, converges."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk_flows._lock_record import load_lock_record
from ppcmk_flows.unlock import unlock
from tests.support.arm import policy_id
from tests.support.lock import locked_by_two, policy_grants
from tests.support.runs import RunningFlow, approve_next, completed, start_with_sandbox_blocks
from tests.support.scenario import FINANCE, LINKED_POLICY_GRANT, PP_ADMIN_2

pytestmark = pytest.mark.usefixtures("prefect_backend")


@pytest.fixture
def locked(cloud: Any, sandbox_blocks: dict[str, str]) -> Any:
    outcome = locked_by_two(sandbox_blocks)
    assert outcome.status == "completed" and policy_grants(cloud) == []
    return cloud


def start_unlock(blocks: dict[str, str]) -> RunningFlow:
    return start_with_sandbox_blocks(unlock, blocks)


def test_unlock_restores_the_same_assignment_and_reenables(
    locked: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_unlock(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN_2)
    assert "re-enable" in pending.description and LINKED_POLICY_GRANT in pending.description
    outcome = completed(running)
    assert policy_grants(locked) == [LINKED_POLICY_GRANT]  # the very assignment lock removed, same name
    env = locked.world.powerplatform.environment(FINANCE)
    assert env.locked_at is None
    assert [r["state"] for r in outcome.rows if r["environment_id"] == FINANCE] == ["succeeded"]
    assert "Enabled" in next(r["now"] for r in outcome.rows if r["environment_id"] == FINANCE)
    record = load_lock_record(policy_id(locked))
    assert record is not None and record.state == "unlocked"


def test_unlock_rejected_changes_nothing(locked: Any, sandbox_blocks: dict[str, str]) -> None:
    running = start_unlock(sandbox_blocks)
    approve_next(running, PP_ADMIN_2, approve=False)
    assert running.state().name == "Rejected"
    assert policy_grants(locked) == []
    assert locked.world.powerplatform.environment(FINANCE).locked_at is not None


def test_a_failed_reenable_is_reported_and_a_rerun_converges(
    locked: Any, sandbox_blocks: dict[str, str]
) -> None:
    rule = locked.faults.add(method="POST", path=r"/environments/[^/]+/enable", status=400, times=1)
    running = start_unlock(sandbox_blocks)
    approve_next(running, PP_ADMIN_2)
    first = running.result()
    assert first.status == "partial" and FINANCE in first.message
    assert policy_grants(locked) == [LINKED_POLICY_GRANT]
    assert load_lock_record(policy_id(locked)).state == "locked"  # type: ignore[union-attr]
    locked.faults.clear()
    del rule
    puts_before = locked.log.count(method="PUT", path=r"roleAssignments")
    running = start_unlock(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN_2)
    assert "none: already restored" in pending.description
    completed(running)
    assert locked.log.count(method="PUT", path=r"roleAssignments") == puts_before  # no duplicate grant
    assert policy_grants(locked) == [LINKED_POLICY_GRANT]
    assert locked.world.powerplatform.environment(FINANCE).locked_at is None

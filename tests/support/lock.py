"""The lock runbook as its tests and unlock's need it: a policy locked by two approvers, and what its
identity holds."""

from __future__ import annotations

from typing import Any

from ppcmk_flows.lock import lock
from tests.support.arm import policy_id
from tests.support.runs import RunningFlow, approve_next, start_with_sandbox_blocks
from tests.support.scenario import LINKED_POLICY, PP_ADMIN, PP_ADMIN_2


def policy_grants(cloud: Any) -> list[str]:
    """The names of the role assignments LINKED_POLICY's identity holds."""
    principal = cloud.world.arm.get_policy(policy_id(cloud)).principal_id
    return sorted(a.name for a in cloud.world.rbac.assignments.values() if a.principal_id == principal)


def start_lock(blocks: dict[str, str], **parameters: Any) -> RunningFlow:
    return start_with_sandbox_blocks(lock, blocks, **parameters)


def locked_by_two(blocks: dict[str, str]) -> Any:
    """LINKED_POLICY locked, approved by both Power Platform admins (the plan says what the lock deletes)."""
    running = start_lock(blocks)
    first = approve_next(running, PP_ADMIN, confirmation=LINKED_POLICY)
    assert (
        "DELETED 30 days after the lock" in first.description and "2 distinct people" in first.description
    )
    approve_next(running, PP_ADMIN_2, confirmation=LINKED_POLICY)
    return running.result()

"""migrate_byok end to end: BYOK discovery, the 28-day retention note, handoff approval, re-plan, re-run."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk_flows.migrate_byok import migrate_byok
from tests.support.runs import (
    RunningFlow,
    answer,
    approve_next,
    approver_read_policy_before_linking,
    completed,
    halves_audited_as,
    start_with_sandbox_blocks,
    wait_for_approval,
)
from tests.support.scenario import LEGACY_BYOK as BYOK
from tests.support.scenario import LINKED_POLICY, PP_ADMIN, PRODUCTION, REQUESTER

pytestmark = pytest.mark.usefixtures("prefect_backend")


def start_migration(blocks: dict[str, str], **overrides: Any) -> RunningFlow:
    return start_with_sandbox_blocks(migrate_byok, blocks, pp_admin=PP_ADMIN, **overrides)


def on_policy(cloud: Any, environment_id: str) -> bool:
    env = cloud.world.powerplatform.environment(environment_id)
    return (
        env.cmk is not None
        and env.cmk.policy_id.endswith(f"/{LINKED_POLICY}")
        and env.key_managed_by == "CustomerViaMicrosoft"  # migrated BYOK keeps it (cmk-migrate-from-byok)
    )


def test_byok_environment_is_linked_with_the_retention_note(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_migration(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN)
    assert BYOK in pending.description and "28 days" in pending.description
    assert PRODUCTION not in pending.description  # not on BYOK: not chosen by default
    completed(running)
    assert on_policy(cloud, BYOK)
    assert cloud.log.count(method="POST", path=r"/link", status=202) == 1


def test_the_links_wait_for_the_approvers_reader_and_are_audited_as_migrate_byok(
    cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog
) -> None:
    running = start_migration(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    completed(running)
    assert approver_read_policy_before_linking(cloud, LINKED_POLICY)
    _, half = halves_audited_as(audit_home, "migrate_byok")
    assert half["approvers"] == [PP_ADMIN]
    links = [w for w in half["writes"] if w["url"].endswith("/link")]
    assert len(links) == 1 and all(w["ids"] for w in links)  # the change with its request ids


def test_the_requester_cannot_approve_the_migration(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    running = start_migration(sandbox_blocks)
    approve_next(running, REQUESTER)  # refused: asked again
    pending = wait_for_approval(running)
    assert "requested this run and cannot approve it" in pending.description
    assert not on_policy(cloud, BYOK) and cloud.log.count(method="POST", path=r"/link") == 0
    answer(pending, approve=False, approver=PP_ADMIN)
    assert running.state().name == "Rejected" and not on_policy(cloud, BYOK)


def test_a_plan_that_changed_before_approval_is_asked_again(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_migration(sandbox_blocks)
    first = wait_for_approval(running)
    assert PRODUCTION not in first.description
    with cloud.world.lock:  # meanwhile, another environment turns out to be on BYOK
        cloud.world.powerplatform.environment(PRODUCTION).key_managed_by = "CustomerViaMicrosoft"
    answer(first, approve=True, approver=PP_ADMIN)
    second = approve_next(running, PP_ADMIN)
    assert second.plan_hash != first.plan_hash and PRODUCTION in second.description
    completed(running)
    assert on_policy(cloud, BYOK) and on_policy(cloud, PRODUCTION)


def test_a_failed_link_then_a_rerun_converges_without_duplicates(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    cloud.faults.add(method="POST", path=r"/enterprisePolicies/Encryption/link", status=400, times=1)
    running = start_migration(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    first = running.result()
    assert first.status == "partial" and BYOK in first.message and not on_policy(cloud, BYOK)
    cloud.faults.clear()
    running = start_migration(sandbox_blocks)
    approve_next(running, PP_ADMIN)
    completed(running)
    assert on_policy(cloud, BYOK)
    assert cloud.log.count(method="PUT", path=r"enterprisePolicies/[^/]+($|\?)") == 0  # the policy is adopted
    assert cloud.log.count(method="POST", path=r"/link", status=202) == 1

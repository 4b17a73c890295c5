"""lock end to end against the sandbox: two approvers, typed confirmation, exact revocation record."""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

from blocks import CmkConnection
from flows._lock_record import load_lock_record
from flows.lock import lock
from ppcmk.clients import ClientFactory
from tests.flows.helpers import (
    FINANCE,
    REQUESTER,
    RunningFlow,
    answer,
    approve_next,
    start_with_sandbox_blocks,
    wait_for_approval,
)

pytestmark = pytest.mark.usefixtures("prefect_backend")

GRANT = "c0c0c0c0-0000-4000-8000-00000000c001"  # ep-existing's Crypto Service Encryption User on kv-cmk-prod
FIRST, SECOND = "pp-admin@contoso.example", "pp-admin-2@contoso.example"


def policy_grants(cloud: Any) -> list[str]:
    principal = cloud.world.arm.get_policy(policy_arm_id(cloud)).principal_id
    return sorted(a.name for a in cloud.world.rbac.assignments.values() if a.principal_id == principal)


def policy_arm_id(cloud: Any) -> str:
    return (
        f"/subscriptions/{cloud.endpoints.subscription_id}/resourceGroups/rg-cmk/providers/"
        "Microsoft.PowerPlatform/enterprisePolicies/ep-existing"
    )


def start_lock(blocks: dict[str, str]) -> RunningFlow:
    return start_with_sandbox_blocks(lock, blocks)


def locked_by_two(blocks: dict[str, str]) -> Any:
    running = start_lock(blocks)
    first = approve_next(running, FIRST, confirmation="ep-existing")
    assert (
        "DELETED 30 days after the lock" in first.description and "2 distinct approvers" in first.description
    )
    approve_next(running, SECOND, confirmation="ep-existing")
    return running.result()


def test_lock_revokes_exactly_the_grant_and_shows_the_countdown(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    assert policy_grants(cloud) == [GRANT]
    outcome = locked_by_two(sandbox_blocks)
    assert outcome.status == "completed", outcome.message
    assert outcome.approvers == [FIRST, SECOND]
    assert policy_grants(cloud) == []
    env = cloud.world.powerplatform.environment(FINANCE)
    assert env.locked_at is not None
    row = next(r for r in outcome.rows if r["environment"] == FINANCE)
    assert row["countdown"] == "30 days 0 h" and "Disabled" in row["now"]
    record = load_lock_record(policy_arm_id(cloud))
    assert record is not None and record.state == "locked"
    assert [g.assignment_id.rsplit("/", 1)[-1] for g in record.revoked] == [GRANT]


def test_lock_refuses_a_single_approver_answering_twice(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    running = start_lock(sandbox_blocks)
    approve_next(running, FIRST, confirmation="ep-existing")
    approve_next(running, FIRST, confirmation="ep-existing")
    outcome = running.result()
    assert outcome.status == "rejected" and "distinct approvers" in outcome.message
    assert policy_grants(cloud) == [GRANT]


def test_lock_refuses_a_wrong_typed_confirmation(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    running = start_lock(sandbox_blocks)
    approve_next(running, FIRST, confirmation="ep-existing ")
    approve_next(running, SECOND, confirmation="ep-exist1ng")
    outcome = running.result()
    assert outcome.status == "rejected" and "confirmation" in outcome.message
    assert policy_grants(cloud) == [GRANT]
    assert cloud.log.count(method="DELETE", path=r"roleAssignments") == 0


def test_the_requester_cannot_be_one_of_the_approvers(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    running = start_lock(sandbox_blocks)
    approve_next(running, REQUESTER, confirmation="ep-existing")
    outcome = running.result()
    assert outcome.status == "rejected" and "cannot approve" in outcome.message
    assert policy_grants(cloud) == [GRANT]


def test_a_crash_while_revoking_keeps_the_record_and_a_rerun_completes_it(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    cloud.faults.add(method="DELETE", path=r"roleAssignments", status=400, times=1)
    running = start_lock(sandbox_blocks)
    approve_next(running, FIRST, confirmation="ep-existing")
    approve_next(running, SECOND, confirmation="ep-existing")
    assert running.state().is_failed()
    record = load_lock_record(policy_arm_id(cloud))
    assert record is not None and record.state == "revoking"  # written before anything was revoked
    assert [g.assignment_id.rsplit("/", 1)[-1] for g in record.revoked] == [GRANT]
    cloud.faults.clear()
    assert locked_by_two(sandbox_blocks).status == "completed"
    record = load_lock_record(policy_arm_id(cloud))
    assert record is not None and record.state == "locked" and len(record.revoked) == 1
    assert policy_grants(cloud) == []


def test_a_grant_added_while_waiting_is_planned_again_and_revoked_too(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_lock(sandbox_blocks)
    first = wait_for_approval(running)
    # meanwhile another admin gives the policy's identity a second key role on the vault
    factory = ClientFactory.for_settings(CmkConnection.load(sandbox_blocks["kv-admin"]).settings())
    principal = cloud.world.arm.get_policy(policy_arm_id(cloud)).principal_id
    vault = (
        f"/subscriptions/{cloud.endpoints.subscription_id}/resourceGroups/rg-cmk/providers/"
        "Microsoft.KeyVault/vaults/kv-cmk-prod"
    )
    officer = (
        f"/subscriptions/{cloud.endpoints.subscription_id}/providers/Microsoft.Authorization/"
        "roleDefinitions/14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
    )
    factory.authorization().role_assignments.create(
        vault,
        "d0d0d0d0-0000-4000-8000-00000000d001",
        RoleAssignmentCreateParameters(
            role_definition_id=officer, principal_id=principal, principal_type="ServicePrincipal"
        ),
    )
    answer(first, approve=True, approver=FIRST, confirmation="ep-existing")
    approve_next(running, SECOND, confirmation="ep-existing")
    again = approve_next(running, FIRST, confirmation="ep-existing")  # the plan changed: both approvers again
    assert again.plan_hash != first.plan_hash and "d0d0d0d0" in again.description
    approve_next(running, SECOND, confirmation="ep-existing")
    outcome = running.result()
    assert outcome.status == "completed", outcome.message
    assert policy_grants(cloud) == []
    assert len(load_lock_record(policy_arm_id(cloud)).revoked) == 2  # type: ignore[union-attr]

"""lock end to end against the sandbox: two approvers, typed confirmation, exact revocation record."""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from ppcmk_flows._lock_record import load_lock_record
from tests.support.arm import policy_id, vault_id
from tests.support.lock import locked_by_two, policy_grants, start_lock
from tests.support.runs import answer, approve_next, completed, wait_for_approval
from tests.support.scenario import FINANCE, LINKED_POLICY, LINKED_POLICY_GRANT, PP_ADMIN, PP_ADMIN_2

pytestmark = pytest.mark.usefixtures("prefect_backend")

FIRST, SECOND = PP_ADMIN, PP_ADMIN_2


def test_lock_revokes_exactly_the_grant_and_shows_the_countdown(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    assert policy_grants(cloud) == [LINKED_POLICY_GRANT]
    outcome = locked_by_two(sandbox_blocks)
    assert outcome.status == "completed", outcome.message
    assert outcome.approvers == [FIRST, SECOND]
    assert policy_grants(cloud) == []
    env = cloud.world.powerplatform.environment(FINANCE)
    assert env.locked_at is not None
    row = next(r for r in outcome.rows if r["environment"] == FINANCE)
    assert row["countdown"] == "30 days 0 h" and "Disabled" in row["now"]
    record = load_lock_record(policy_id(cloud))
    assert record is not None and record.state == "locked"
    assert [g.assignment_id.rsplit("/", 1)[-1] for g in record.revoked] == [LINKED_POLICY_GRANT]


def test_a_crash_while_revoking_keeps_the_record_and_a_rerun_completes_it(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    cloud.faults.add(method="DELETE", path=r"roleAssignments", status=400, times=1)
    running = start_lock(sandbox_blocks)
    approve_next(running, FIRST, confirmation=LINKED_POLICY)
    approve_next(running, SECOND, confirmation=LINKED_POLICY)
    assert running.state().is_failed()
    record = load_lock_record(policy_id(cloud))
    assert record is not None and record.state == "revoking"  # written before anything was revoked
    assert [g.assignment_id.rsplit("/", 1)[-1] for g in record.revoked] == [LINKED_POLICY_GRANT]
    cloud.faults.clear()
    assert locked_by_two(sandbox_blocks).status == "completed"
    record = load_lock_record(policy_id(cloud))
    assert record is not None and record.state == "locked" and len(record.revoked) == 1
    assert policy_grants(cloud) == []


def test_a_grant_added_while_waiting_is_planned_again_and_revoked_too(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_lock(sandbox_blocks)
    first = wait_for_approval(running)
    # meanwhile another admin gives the policy's identity a second key role on the vault
    factory = ClientFactory.for_settings(CmkConnection.load(sandbox_blocks["kv-admin"]).settings())
    principal = cloud.world.arm.get_policy(policy_id(cloud)).principal_id
    vault = vault_id(cloud)
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
    answer(first, approve=True, approver=FIRST, confirmation=LINKED_POLICY)
    approve_next(running, SECOND, confirmation=LINKED_POLICY)
    again = approve_next(running, FIRST, confirmation=LINKED_POLICY)  # the plan changed: both approvers again
    assert again.plan_hash != first.plan_hash and "d0d0d0d0" in again.description
    approve_next(running, SECOND, confirmation=LINKED_POLICY)
    completed(running)
    assert policy_grants(cloud) == []
    assert len(load_lock_record(policy_id(cloud)).revoked) == 2  # type: ignore[union-attr]

"""Re-runs repair what a failed or crashed run left: each case below failed before (a re-run stopped on the
problem it exists to fix, or wrote a second time)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prefect import flow

from ppcmk.fleet.selection import FleetSelector
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._lock_record import load_lock_record, save_lock_record
from ppcmk_flows.lock import PROCEDURE as LOCK
from ppcmk_flows.lock import lock
from ppcmk_flows.onboard import onboard
from ppcmk_tasks.environments import reenable_environment
from tests.support.arm import linked_policy_grant_id
from tests.support.runs import approve_next, start, start_with_sandbox_blocks
from tests.support.sandbox import connection, save_target
from tests.support.scenario import FINANCE, LINKED_POLICY, PP_ADMIN, PP_ADMIN_2, PRODUCTION, REQUESTER

pytestmark = pytest.mark.usefixtures("prefect_backend")

KEY_GRANT_PUT = r"/vaults/kv-cmk-prod/providers/Microsoft\.Authorization/roleAssignments/"


def test_onboard_rerun_after_a_failed_key_grant_is_not_blocked_by_the_policy_it_repairs(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    save_target(cloud, "rerun-target", key_name="cmk-rerun", key_size=2048, policy_name="ep-rerun")
    parameters = dict(kv_connection=sandbox_blocks["kv-admin"], pp_connection=sandbox_blocks["pp-admin"],
                      target="rerun-target", pp_admin=PP_ADMIN, requester=REQUESTER, approval_poll_s=1,
                      selector=FleetSelector(environment_ids=[PRODUCTION]))
    cloud.faults.add("PUT", KEY_GRANT_PUT, status=500, times=None)
    failed = onboard(**parameters, return_state=True)
    assert failed.is_failed() and "grant-key-access" in str(failed.message)
    cloud.faults.clear()
    cloud.advance(timedelta(minutes=5))  # the policy identity exists and reads Unhealthy: no key access

    running = start(onboard, **parameters)
    approve_next(running, PP_ADMIN)
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    env = cloud.world.powerplatform.environment(PRODUCTION)
    assert env.cmk is not None and env.cmk.policy_id.endswith("/ep-rerun")


def test_a_lock_that_stopped_before_its_record_completes_on_rerun(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    running = start_with_sandbox_blocks(lock, sandbox_blocks)
    for approver in (PP_ADMIN, PP_ADMIN_2):
        approve_next(running, approver, confirmation=LINKED_POLICY)
    assert running.result().status == "completed"
    policy_id = cloud.world.arm.find_policy_by_name(LINKED_POLICY).arm_id
    record = load_lock_record(policy_id)
    assert record is not None and record.state == "locked"
    save_lock_record(record.model_copy(update={"state": "revoking"}), LOCK)  # what a crash there leaves

    rerun = start_with_sandbox_blocks(lock, sandbox_blocks).result()  # no grant left: nothing to approve
    assert rerun.status == "completed" and "completed the lock" in rerun.message
    completed = load_lock_record(policy_id)
    assert completed is not None and completed.state == "locked" and completed.revoked == record.revoked
    assert completed.locked_at == record.locked_at  # the countdown kept


def test_a_reenable_whose_answer_was_lost_is_not_sent_twice(cloud: Any) -> None:
    kv, pp = connection(cloud, "kv-admin"), connection(cloud, "pp-admin")
    grants = ClientFactory.for_settings(kv).authorization().role_assignments
    grant_id = linked_policy_grant_id(cloud)
    revoked = grants.delete_by_id(grant_id)
    cloud.advance(timedelta(minutes=1))  # locked
    grants.create_by_id(grant_id, {"properties": {"roleDefinitionId": revoked.role_definition_id,
                                                  "principalId": revoked.principal_id,
                                                  "principalType": "ServicePrincipal"}})
    cloud.advance(timedelta(minutes=5))  # access is back; the environment stays locked until re-enabled
    cloud.faults.add("POST", r"/environments/.*/enable$", drop_after=True, times=1)

    @flow(name="reenable-after-a-lost-answer")
    def reenable() -> Any:
        return reenable_environment(pp, FINANCE)

    assert reenable().done
    assert cloud.log.count(method="POST", path=r"/enable$") == 1
    assert cloud.world.powerplatform.environment(FINANCE).locked_at is None

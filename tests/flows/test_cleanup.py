"""cleanup against the sandbox: refused inside the 28/30-day holds (saying until when) on the virtual clock,
done with approval after advancing it; keys are never deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.safety import holds
from ppcmk.safety.plan import PlanHasErrors
from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from ppcmk_flows.cleanup import cleanup
from ppcmk_flows.rotate import rotate
from ppcmk_tasks.policy import ensure_provider_registered
from tests.support.arm import vault_id
from tests.support.runs import approve_next, completed, start
from tests.support.sandbox import save_target
from tests.support.scenario import (
    FINANCE,
    LINKED_POLICY,
    LINKED_POLICY_GRANT,
    PP_ADMIN,
    RESOURCE_GROUP,
    VAULT,
)

pytestmark = pytest.mark.usefixtures("prefect_backend")

TARGET = "cleanup-target"


@pytest.fixture
def rotated(cloud: Any, sandbox_blocks: dict[str, str]) -> dict[str, Any]:
    """A 2048-bit key (fast to generate) rotated once by the rotate flow: two versions, the old one held."""
    save_target(cloud, TARGET, key_name="cmk-cleanup", key_size=2048, policy_name=LINKED_POLICY)
    conn = CmkConnection.load(sandbox_blocks["kv-admin"]).settings()
    factory = ClientFactory.for_settings(conn)
    first = factory.key_client(factory.vault_url(vault_id(cloud))).create_rsa_key("cmk-cleanup", size=2048)
    cloud.clock.advance(timedelta(days=2))
    rotate(connection=sandbox_blocks["kv-admin"], target=TARGET, requester=PP_ADMIN)
    return {"conn": conn, "old": first.properties.version}


def versions(cloud: Any, key: str) -> dict[str, bool]:
    return {v.version: v.enabled for v in cloud.world.keyvault.get(VAULT).keys[key].versions}


def test_old_versions_are_refused_inside_28_days_then_disabled_never_deleted(
    cloud: Any, sandbox_blocks: dict[str, str], rotated: dict[str, Any]
) -> None:
    hold = holds.key_version_hold(rotated["conn"], vault_id(cloud), "cmk-cleanup",
                                  rotated["old"])
    assert hold is not None
    held = cleanup(kv_connection=sandbox_blocks["kv-admin"], target=TARGET)
    assert held.status == "nothing-to-do" and f"until {hold.until.isoformat()}" in held.message
    cloud.clock.advance(timedelta(days=27, hours=23))
    assert cleanup(kv_connection=sandbox_blocks["kv-admin"], target=TARGET).status == "nothing-to-do"
    assert all(versions(cloud, "cmk-cleanup").values())

    cloud.clock.advance(timedelta(hours=1, minutes=1))
    running = start(cleanup, kv_connection=sandbox_blocks["kv-admin"], target=TARGET, approval_poll_s=1)
    pending = approve_next(running, PP_ADMIN)
    assert f"cmk-cleanup/{rotated['old']}" in pending.description
    completed(running)
    after = versions(cloud, "cmk-cleanup")
    assert len(after) == 2 and after[rotated["old"]] is False and sum(after.values()) == 1
    assert cloud.log.count(method="DELETE", path="/keys/") == 0


def test_old_policy_access_waits_for_the_30_day_hold_and_no_linked_environment(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    params = {"kv_connection": sandbox_blocks["kv-admin"], "target": sandbox_blocks["target"],
              "pp_connection": sandbox_blocks["runbook"], "old_policy": LINKED_POLICY,
              "disable_old_versions": False}
    with pytest.raises(PlanHasErrors, match=f"still linked to {FINANCE}"):
        cleanup(**params, dry_run=True)

    conn = CmkConnection.load(sandbox_blocks["kv-admin"]).settings()
    with cloud.world.lock:  # Finance left the policy (what revert does), which starts the 30-day hold
        cloud.world.powerplatform.environment(FINANCE).cmk = None
    ensure_provider_registered(conn)  # a policy write on an unregistered RP makes the SDK sleep for real
    hold = holds.hold_policy(conn, RESOURCE_GROUP, LINKED_POLICY, holds.CHANGE_HOLD, "environments left")
    held = cleanup(**params)
    assert held.status == "nothing-to-do" and hold.until.isoformat() in held.message
    assert cloud.world.rbac.get(vault_id(cloud), LINKED_POLICY_GRANT) is not None

    cloud.clock.advance(timedelta(days=30, minutes=1))
    running = start(cleanup, **params, approval_poll_s=1)
    approve_next(running, PP_ADMIN)
    assert "removed 1 key access grant(s)" in completed(running).message
    assert cloud.world.rbac.get(vault_id(cloud), LINKED_POLICY_GRANT) is None
    assert cloud.world.arm.find_policy_by_name(LINKED_POLICY) is not None  # the policy itself stays

"""A key in a managed HSM, end to end against the sandbox: onboard grants the policy identity its LOCAL HSM
role and encrypts the environments; lock revokes that local role and the environments lock; unlock restores
the same local assignment and re-enables them."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk.fleet.selection import FleetSelector
from ppcmk.services.hsm_rbac import HSM_CRYPTO_SERVICE_ENCRYPTION_USER
from ppcmk_flows._lock_record import load_lock_record
from ppcmk_flows.lock import lock
from ppcmk_flows.onboard import onboard
from ppcmk_flows.unlock import unlock
from tests.support.arm import managed_hsm_id
from tests.support.runs import approve_next, start
from tests.support.sandbox import save_target
from tests.support.scenario import HSM, PP_ADMIN, PP_ADMIN_2, PRODUCTION, REQUESTER, SANDBOX

pytestmark = pytest.mark.usefixtures("prefect_backend")

CHOSEN = [PRODUCTION, SANDBOX]
TARGET = "hsm-onboard-target"
FIRST, SECOND = PP_ADMIN, PP_ADMIN_2


@pytest.fixture
def blocks(cloud: Any, sandbox_blocks: dict[str, str]) -> dict[str, str]:
    """A target for a new RSA-HSM key and policy on the scenario's managed HSM (2048 bits: generated fast)."""
    save_target(cloud, TARGET, vault_id=managed_hsm_id(cloud), key_name="cmk-hsm-onboard", key_type="RSA-HSM",
                key_size=2048, policy_name="ep-hsm-onboard")
    return sandbox_blocks


def policy_principal(cloud: Any) -> str:
    (policy,) = [p for p in cloud.world.arm.policies.values() if p.name == "ep-hsm-onboard"]
    return str(policy.principal_id)


def local_grants(cloud: Any, principal: str) -> list[tuple[str, str]]:
    hsm = cloud.world.keyvault.get(HSM)
    return [(a.scope, a.role_guid) for a in hsm.role_assignments.values() if a.principal_id == principal]


def encrypted(cloud: Any, environment_id: str) -> bool:
    env = cloud.world.powerplatform.environment(environment_id)
    return (env.cmk is not None and env.cmk.policy_id.lower().endswith("/ep-hsm-onboard")
            and env.cmk.link_status == "Linked" and env.key_managed_by == "Customer")


def test_onboard_on_a_managed_hsm_then_lock_and_unlock_it(cloud: Any, blocks: dict[str, str]) -> None:
    running = start(onboard, kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"],
                    target=TARGET, pp_admin=PP_ADMIN, selector=FleetSelector(environment_ids=CHOSEN),
                    approval_poll_s=1)
    approve_next(running, PP_ADMIN)
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    assert all(encrypted(cloud, env) for env in CHOSEN)
    principal = policy_principal(cloud)
    assert local_grants(cloud, principal) == [("/keys/cmk-hsm-onboard", HSM_CRYPTO_SERVICE_ENCRYPTION_USER)]
    # the grant went to the HSM's data plane, written once by the Key Vault admin; nothing to ARM for the key
    assert cloud.log.count(method="PUT", path=r"^/+keys/cmk-hsm-onboard/providers/.*/roleAssignments/",
                           caller="kv-admin") == 1
    assert cloud.log.count(method="PUT", path=r"managedHSMs/hsm-cmk.*/roleAssignments/") == 0
    assert cloud.world.keyvault.get(HSM).key("cmk-hsm-onboard").current.kty == "RSA-HSM"

    locking = start(lock, kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"], target=TARGET,
                    requester=REQUESTER, approval_poll_s=1)
    first = approve_next(locking, FIRST, confirmation="ep-hsm-onboard")
    assert "/keys/cmk-hsm-onboard" in first.description
    approve_next(locking, SECOND, confirmation="ep-hsm-onboard")
    locked = locking.result(timeout=120)
    assert locked.status == "completed", locked.message
    assert local_grants(cloud, principal) == []
    assert all(cloud.world.powerplatform.environment(env).locked_at is not None for env in CHOSEN)
    policy_id = next(p.arm_id for p in cloud.world.arm.policies.values() if p.name == "ep-hsm-onboard")
    record = load_lock_record(policy_id)
    assert record is not None and record.state == "locked"
    assert [(g.mechanism, g.scope) for g in record.revoked] == [("hsm_rbac", "/keys/cmk-hsm-onboard")]
    revoked_name = (record.revoked[0].assignment_id or "").rsplit("/", 1)[-1].lower()

    unlocking = start(unlock, kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"],
                      target=TARGET, requester=REQUESTER, approval_poll_s=1)
    approve_next(unlocking, FIRST)
    unlocked = unlocking.result(timeout=120)
    assert unlocked.status == "completed", unlocked.message
    assert local_grants(cloud, principal) == [("/keys/cmk-hsm-onboard", HSM_CRYPTO_SERVICE_ENCRYPTION_USER)]
    # the very assignment lock removed, under its own name
    assert revoked_name in cloud.world.keyvault.get(HSM).role_assignments
    assert all(cloud.world.powerplatform.environment(env).locked_at is None for env in CHOSEN)
    assert load_lock_record(policy_id).state == "unlocked"  # type: ignore[union-attr]

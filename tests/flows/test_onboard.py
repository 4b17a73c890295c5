"""onboard end to end against the sandbox: the Key Vault admin half, the handoff approved by the Power
Platform admin with their own connection, the links in waves, read-back verification, convergence."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk.fleet.selection import FleetSelector
from ppcmk_flows.onboard import onboard
from tests.support.runs import RunningFlow, answer, approve_next, start, wait_for_approval
from tests.support.sandbox import changes_the_cloud, save_target
from tests.support.scenario import PP_ADMIN, PRODUCTION, SANDBOX, UNMANAGED, VAULT

pytestmark = pytest.mark.usefixtures("prefect_backend")

CHOSEN = [PRODUCTION, SANDBOX, UNMANAGED]
TARGET = "onboard-target"
PP_WRITES = r"/link|/governanceConfiguration"


@pytest.fixture
def blocks(cloud: Any, sandbox_blocks: dict[str, str]) -> dict[str, str]:
    """A target for a key and policy that do not exist yet (2048 bits: key generation stays fast)."""
    save_target(cloud, TARGET, key_name="cmk-onboard", key_size=2048, policy_name="ep-onboard")
    return sandbox_blocks


def parameters(blocks: dict[str, str], **overrides: Any) -> dict[str, Any]:
    return {"kv_connection": blocks["kv-admin"], "pp_connection": blocks["pp-admin"], "target": TARGET,
            "pp_admin": PP_ADMIN, "selector": FleetSelector(environment_ids=CHOSEN), "approval_poll_s": 1,
            **overrides}


def run_onboard(blocks: dict[str, str], **overrides: Any) -> RunningFlow:
    return start(onboard, **parameters(blocks, **overrides))


def world_counts(cloud: Any) -> dict[str, int]:
    """What a re-run must never duplicate: key versions, policies, identity grants, the admin's Reader."""
    policies = [p for p in cloud.world.arm.policies.values() if p.name == "ep-onboard"]
    principal = policies[0].principal_id if policies else None
    key = cloud.world.keyvault.get(VAULT).keys.get("cmk-onboard")
    assignments = cloud.world.rbac.assignments.values()
    pp_admin = cloud.world.identities.require("pp-admin").object_id
    return {
        "key versions": len(key.versions) if key else 0,
        "policies": len(policies),
        "identity grants": sum(a.principal_id == principal for a in assignments),
        "admin readers": sum(
            a.principal_id == pp_admin and a.scope.lower().endswith("/enterprisepolicies/ep-onboard")
            for a in assignments
        ),
    }


ONCE = {"key versions": 1, "policies": 1, "identity grants": 1, "admin readers": 1}


def encrypted(cloud: Any, environment_id: str) -> bool:
    env = cloud.world.powerplatform.environment(environment_id)
    return (env.cmk is not None and env.cmk.policy_id.lower().endswith("/ep-onboard")
            and env.cmk.link_status == "Linked" and env.key_managed_by == "Customer")


def test_onboarding_encrypts_three_environments_and_a_rerun_changes_nothing(
    cloud: Any, blocks: dict[str, str], audit_home: AuditLog
) -> None:
    running = run_onboard(blocks)
    pending = approve_next(running, PP_ADMIN)
    assert "Power Platform half" in pending.description
    assert f"(`{UNMANAGED}`): enable Managed Environment, then link" in pending.description
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    assert outcome.approvers == [PP_ADMIN]
    assert all(encrypted(cloud, env) for env in CHOSEN)
    assert cloud.world.powerplatform.environment(UNMANAGED).managed
    assert {r["environment_id"]: r["state"] for r in outcome.rows} == dict.fromkeys(CHOSEN, "succeeded")
    assert world_counts(cloud) == ONCE
    # the links ran with the approver's connection, the Key Vault writes with the Key Vault admin's
    assert cloud.log.count(method="POST", path=r"/link$", caller="pp-admin") == 3
    assert cloud.log.count(method="PUT", path="roleAssignments", caller="kv-admin") == 2
    events = {e["event"]["event"]: e["event"] for e in audit_home.entries()}
    assert {"onboard-key-vault-half", "approval-granted", "onboard-finished"} <= set(events)
    links = [w for w in events["onboard-power-platform-half"]["writes"] if w["url"].endswith("/link")]
    assert len(links) == 3 and all(w["ids"] for w in links)  # each change with its request ids

    again = onboard(**parameters(blocks))  # nothing left to change: no approval is asked for
    assert again.status == "nothing-to-do", again.message
    assert world_counts(cloud) == ONCE
    assert cloud.log.count(method="POST", path=r"/link$") == 3


def test_dry_run_changes_nothing(cloud: Any, blocks: dict[str, str]) -> None:
    outcome = onboard(**parameters(blocks, dry_run=True))
    assert outcome.status == "dry-run"
    writes = [e for e in cloud.log.entries if changes_the_cloud(e.method, e.path)]
    assert writes == []
    assert world_counts(cloud)["policies"] == 0
    # the plan is made from what the doctor read: each fact is read once, the environments listed once
    once = {"vault": r"/vaults/kv-cmk-prod$", "key": r"/vaults/kv-cmk-prod/keys/cmk-onboard$",
            "policy": r"/enterprisePolicies/ep-onboard$", "provider": r"/providers/Microsoft\.PowerPlatform$",
            "environments": r"BusinessAppPlatform(/scopes/admin)?/environments$"}
    reads = {what: cloud.log.count(method="GET", path=path) for what, path in once.items()}
    assert reads == dict.fromkeys(once, 1)


def test_a_plan_changed_before_the_answer_is_asked_again(cloud: Any, blocks: dict[str, str]) -> None:
    running = run_onboard(blocks)
    first = wait_for_approval(running)
    with cloud.world.lock:  # someone enables Managed Environment meanwhile
        cloud.world.powerplatform.environment(UNMANAGED).protection_level = "Standard"
    answer(first, approve=True, approver=PP_ADMIN)
    second = approve_next(running, PP_ADMIN)
    assert second.plan_hash != first.plan_hash
    assert "enable Managed Environment" in first.description
    assert "enable Managed Environment" not in second.description
    outcome = running.result(timeout=120)
    assert outcome.status == "completed" and outcome.plan_hash == second.plan_hash
    assert all(encrypted(cloud, env) for env in CHOSEN)


def test_a_failure_mid_way_then_a_rerun_converges_without_duplicates(
    cloud: Any, blocks: dict[str, str]
) -> None:
    # Every attempt to grant the admin Reader fails: the key, the policy and the key grant already exist.
    cloud.faults.add(method="PUT", path=r"enterprisePolicies/ep-onboard/providers/Microsoft.Authorization/"
                     r"roleAssignments/", status=500, times=None)
    state = onboard(**parameters(blocks), return_state=True)
    assert state.is_failed()
    assert {**world_counts(cloud), "admin readers": 1} == ONCE and world_counts(cloud)["admin readers"] == 0
    cloud.faults.clear()

    running = run_onboard(blocks)
    approve_next(running, PP_ADMIN)
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    assert world_counts(cloud) == ONCE
    assert all(encrypted(cloud, env) for env in CHOSEN)

"""The approval outcomes of the real runbooks against the sandbox: a rejection ends the run Cancelled
"Rejected" and changes nothing after the plan; every kind of refused answer leaves the run waiting (a new
question each time) until a valid answer completes it; no acceptable answer in time ends it "Expired"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk.fleet.selection import FleetSelector
from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from ppcmk_flows.cleanup import cleanup
from ppcmk_flows.onboard import onboard
from ppcmk_flows.rotate import rotate
from tests.flows.approval_harness import SECOND
from tests.support.arm import vault_id
from tests.support.lock import start_lock
from tests.support.runs import (
    RunningFlow,
    answer,
    approve_next,
    start,
    start_change,
    start_revert,
    start_with_sandbox_blocks,
    wait_for_approval,
)
from tests.support.sandbox import save_target
from tests.support.scenario import LINKED_POLICY, PP_ADMIN, PRODUCTION, REQUESTER, VAULT

pytestmark = pytest.mark.usefixtures("prefect_backend")

OUTSIDER = "outsider@contoso.example"  # a person of the tenant without a Power Platform role


def start_onboard(cloud: Any, blocks: dict[str, str], **overrides: Any) -> RunningFlow:
    target = save_target(cloud, "approvals-onboard-target", key_name="cmk-approvals", key_size=2048,
                         policy_name="ep-approvals")
    return start_with_sandbox_blocks(onboard, {**blocks, "target": target}, pp_admin=PP_ADMIN,
                                     selector=FleetSelector(environment_ids=[PRODUCTION]), **overrides)


def start_cleanup(cloud: Any, blocks: dict[str, str], **overrides: Any) -> RunningFlow:
    """An old key version past its 28-day hold: cleanup plans to disable it."""
    target = save_target(cloud, "approvals-cleanup-target", key_name="cmk-tidy", key_size=2048,
                         policy_name=LINKED_POLICY)
    factory = ClientFactory.for_settings(CmkConnection.load(blocks["kv-admin"]).settings())
    factory.key_client(factory.vault_url(vault_id(cloud))).create_rsa_key("cmk-tidy", size=2048)
    cloud.clock.advance(timedelta(days=2))
    rotate(connection=blocks["kv-admin"], target=target, requester=PP_ADMIN)
    cloud.clock.advance(timedelta(days=29))
    return start(cleanup, kv_connection=blocks["kv-admin"], target=target, requester=REQUESTER,
                 approval_poll_s=1, **overrides)


def without_cloud(start_run: Callable[..., RunningFlow]) -> Callable[..., RunningFlow]:
    """A starter that needs only the blocks, called as every case's is: (cloud, blocks, **overrides)."""
    return lambda _cloud, blocks, **overrides: start_run(blocks, **overrides)


def key_versions_enabled(cloud: Any) -> bool:
    return all(v.enabled for v in cloud.world.keyvault.get(VAULT).keys["cmk-tidy"].versions)


@dataclass(frozen=True)
class Case:
    start: Callable[..., RunningFlow]
    unchanged: Callable[[Any], bool]  # nothing after the plan changed
    approvers: list[str] = field(default_factory=lambda: [PP_ADMIN])
    refusals: tuple[str, ...] = ("self-approval", "unproven approver", "stale plan hash")
    confirmation: str | None = None


CASES = {
    "onboard": Case(
        start_onboard,
        lambda c: c.log.count(method="POST", path=r"/link|/governance") == 0,
        refusals=("self-approval", "unproven approver", "no Power Platform role", "stale plan hash",
                  "no Reader"),
    ),
    "change_policy": Case(
        without_cloud(start_change),
        lambda c: c.log.count(method="POST", path=r"/unlink") == 0,
        refusals=("self-approval", "unproven approver", "no Power Platform role", "stale plan hash",
                  "no Reader"),
    ),
    "revert": Case(without_cloud(start_revert), lambda c: c.log.count(method="POST", path=r"/unlink") == 0),
    "lock": Case(
        without_cloud(start_lock),
        lambda c: c.log.count(method="DELETE", path=r"roleAssignments") == 0,
        approvers=[PP_ADMIN, SECOND],
        confirmation=LINKED_POLICY,
        refusals=("self-approval", "unproven approver", "no Power Platform role", "stale plan hash",
                  "wrong confirmation"),
    ),
    "cleanup": Case(start_cleanup, key_versions_enabled),
}

REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "self-approval": ({"approver": REQUESTER}, "requested this run and cannot approve it"),
    "unproven approver": ({"proof": "hunter2"}, "not a token"),
    "no Power Platform role": ({"approver": OUTSIDER}, "holds neither Power Platform Administrator"),
    "stale plan hash": ({"approver": PP_ADMIN, "plan_hash": "0" * 64}, "but the plan to run is"),
    "no Reader": ({"approver": SECOND}, "has no Reader role"),
    "wrong confirmation": ({"approver": PP_ADMIN, "confirmation": "ep-exist1ng"}, "as confirmation"),
}


@pytest.fixture(scope="module")
def blocks(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    return sandbox_blocks


@pytest.mark.parametrize("procedure", CASES)
def test_a_rejection_ends_the_run_rejected_and_changes_nothing(
    procedure: str, cloud: Any, blocks: dict[str, str]
) -> None:
    case = CASES[procedure]
    running = case.start(cloud, blocks)
    approve_next(running, PP_ADMIN, approve=False, comment="CAB said no", confirmation=case.confirmation)
    state = running.state()
    assert state.is_cancelled() and state.name == "Rejected"
    assert f"rejected by Power Platform Admin ({PP_ADMIN}): CAB said no" in (state.message or "")
    assert state.result(raise_on_failure=False).status == "rejected"
    assert case.unchanged(cloud)


@pytest.mark.parametrize("procedure", CASES)
def test_refused_answers_keep_the_run_waiting_until_a_valid_one(
    procedure: str, cloud: Any, blocks: dict[str, str], audit_home: AuditLog
) -> None:
    case = CASES[procedure]
    running = case.start(cloud, blocks)
    pending = wait_for_approval(running, timeout=60)
    answer(pending, approve=True, proof="", confirmation=case.confirmation)  # submitted without signing in
    for kind in case.refusals:
        wrong, _ = REFUSED[kind]
        pending = wait_for_approval(running)
        assert case.unchanged(cloud), f"changed before a valid answer (after {kind})"
        answer(pending, approve=True, **{"confirmation": case.confirmation, **wrong})
    keys = [
        approve_next(running, approver, confirmation=case.confirmation).key for approver in case.approvers
    ]
    assert keys[0].endswith(f"-r{len(case.refusals) + 2}")  # one question per refused answer
    state = running.state()
    assert state.is_completed(), state.message
    reasons = [
        e["event"]["reason"] for e in audit_home.entries() if e["event"]["event"] == "approval-refused"
    ]
    assert len(reasons) == len(case.refusals) + 1 and "carries no proof" in reasons[0]
    for kind, reason in zip(case.refusals, reasons[1:], strict=True):
        assert REFUSED[kind][1] in reason, kind


@pytest.mark.parametrize("procedure", CASES)
def test_no_acceptable_answer_in_time_ends_the_run_expired(
    procedure: str, cloud: Any, blocks: dict[str, str]
) -> None:
    case = CASES[procedure]
    state = case.start(cloud, blocks, approval_timeout_s=1).state()
    assert state.is_cancelled() and state.name == "Expired", state
    assert "no acceptable answer" in (state.message or "")
    assert case.unchanged(cloud)

"""An approval request is one frozen value: its kind follows from its constructor, a re-plan is a copy with
the new plan (the original unchanged), and what every round of asking it shares (who asked, who held
Reader on the policy) is settled once per request."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

from ppcmk.approvals.proof import ConnectionBlockProver
from ppcmk.approvals.request import ApprovalRequest, Approving, Asking, PowerPlatformHandoff
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem

REQUESTER = "kv-admin@contoso.example"
WINDOW = Approving(timeout_s=3600, poll_s=1)


def plan_for(environment: str) -> Plan:
    return Plan(procedure="onboard", requester=REQUESTER, target_summary=f"{environment} → ep-x",
                items=[PlanItem(target=environment, kind="environment", action="link to ep-x")],
                outages=[OutageWindow(environment_id=environment, sequence=1, cause="link to ep-x")])


def no_blocks(name: str) -> ConnectionSettings:
    raise ValueError(f"no block {name}")


def handoff(reads: list[str]) -> PowerPlatformHandoff:
    """A hand-off on ep-x whose readers (as the Key Vault admin sees them) are counted as they are read."""
    return PowerPlatformHandoff(policy_name="ep-x", has_policy_reader=lambda _: True,
                                policy_readers=lambda: reads.append("read") or ["0A0A-PP", "0a0a-kv"])


def test_the_kind_follows_from_the_constructor() -> None:
    plain = ApprovalRequest.plan_approval(plan_for("env-1"), "revert", REQUESTER, WINDOW)
    handed = ApprovalRequest.handoff_approval(plan_for("env-1"), "onboard-handoff", REQUESTER, WINDOW,
                                              handoff([]))
    lock = ApprovalRequest.lock_approval(plan_for("env-1"), "lock", REQUESTER, WINDOW, 2, "ep-x")
    assert (plain.kind, plain.approvers_needed, plain.handoff, plain.confirm_text) == ("plan", 1, None, None)
    assert handed.kind == "handoff" and handed.handoff is not None and handed.approvers_needed == 1
    assert (lock.kind, lock.approvers_needed, lock.confirm_text) == ("lock", 2, "ep-x")
    assert lock.to_do(2) == "approver 2 of 2, type `ep-x` as confirmation" and plain.to_do(1) == ""


def test_a_request_is_frozen_and_replanned_by_copy() -> None:
    request = ApprovalRequest.lock_approval(plan_for("env-1"), "lock", REQUESTER, WINDOW, 2, "ep-x")
    again = request.replanned(plan_for("env-2"))
    assert request.plan.hash == plan_for("env-1").hash  # the original is untouched
    assert again.plan.hash == plan_for("env-2").hash
    assert again == ApprovalRequest.lock_approval(plan_for("env-2"), "lock", REQUESTER, WINDOW, 2, "ep-x")
    assert request.prefix(1) == f"lock-{plan_for('env-1').hash[:12]}-1" != again.prefix(1)
    with pytest.raises(FrozenInstanceError):
        request.plan = plan_for("env-2")  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        WINDOW.timeout_s = 1  # type: ignore[misc]


def test_the_approval_window_is_checked_when_it_is_made() -> None:
    with pytest.raises(ConfigError, match=r"^approval_timeout_s:"):
        Approving(timeout_s=0, poll_s=1)
    with pytest.raises(ConfigError, match=r"^approval_poll_s:"):
        Approving(timeout_s=60, poll_s=-1)


def test_who_held_reader_is_read_once_per_request_and_again_after_a_replan() -> None:
    reads: list[str] = []
    request = ApprovalRequest.handoff_approval(plan_for("env-1"), "onboard-handoff", REQUESTER, WINDOW,
                                               handoff(reads))
    prover = ConnectionBlockProver(None, no_blocks)
    asking = Asking.of(request, prover)
    answer_by = datetime(2030, 1, 1, tzinfo=UTC)
    rounds = [asking.fields(number, answer_by, []) for number in (1, 1, 1)]  # three rounds of one request
    assert reads == ["read"]
    assert all(r["reader_ids"] == ["0a0a-kv", "0a0a-pp"] for r in rounds)
    assert rounds[0]["requester"] == REQUESTER and rounds[0]["requester_id"] == REQUESTER
    assert rounds[0]["kind"] == "handoff" and rounds[0]["plan_hash"] == plan_for("env-1").hash
    may_approve = rounds[0]["may_approve"]
    assert prover.means in may_approve and "Reader on enterprise policy ep-x" in may_approve
    replanned = Asking.of(request.replanned(plan_for("env-2")), prover)
    assert reads == ["read", "read"]
    assert replanned.fields(1, answer_by, [])["plan_hash"] == plan_for("env-2").hash

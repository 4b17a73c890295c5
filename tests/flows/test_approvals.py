"""Approvals answered through Prefect's resume API: bound to the plan hash, separation of duty, timeouts."""

from __future__ import annotations

import pytest
from prefect import flow

from ppcmk.approvals import IdentityResolver, request_approval
from ppcmk.audit import AuditLog
from ppcmk.errors import ApprovalRejected, SeparationOfDutyError
from ppcmk.plan import Plan, PlanItem
from tests.support.runs import answer, approve_next, start, wait_for_approval

pytestmark = pytest.mark.usefixtures("prefect_backend")

REQUESTER = "kv-admin@contoso.com"


def _plan(target: str = "env-1") -> Plan:
    return Plan(procedure="test-approval", requester=REQUESTER, target_summary=target,
                items=[PlanItem(target=target, kind="environment", action="link")])


@flow(name="approval-harness")
def harness(targets: list[str], approvers_needed: int = 1, confirm_text: str | None = None,
            timeout_s: int = 30) -> dict:
    """Plans once per entry of `targets` (the world as seen at each re-plan); returns what was approved."""
    plans = iter(targets)
    first = _plan(next(plans))
    try:
        approval = request_approval(
            first, requester=REQUESTER, key="harness", timeout_s=timeout_s, identities=IdentityResolver(None),
            replan=lambda: _plan(next(plans, targets[-1])), approvers_needed=approvers_needed,
            confirm_text=confirm_text, poll_interval_s=0.2,
        )
    except (ApprovalRejected, SeparationOfDutyError) as refused:
        return {"status": "rejected", "reason": str(refused), "error": type(refused).__name__}
    return {"status": "approved", "plan_hash": approval.plan.hash, "approvers": approval.approvers}


def test_approval_returns_the_approved_plan_and_audits_it(audit_home: AuditLog) -> None:
    running = start(harness, targets=["env-1"])
    pending = approve_next(running, "pp-admin@contoso.com")
    assert pending.plan_hash == _plan().hash and "test-approval" in pending.description
    result = running.result()
    assert result == {"status": "approved", "plan_hash": _plan().hash, "approvers": ["pp-admin@contoso.com"]}
    events = [e["event"]["event"] for e in audit_home.entries()]
    assert events == ["approval-answered", "approval-granted"] and not audit_home.verify_chain()


def test_rejection_ends_the_run_completed_with_the_reason() -> None:
    running = start(harness, targets=["env-1"])
    approve_next(running, "pp-admin@contoso.com", approve=False, comment="not during quarter close")
    state = running.state()
    assert state.is_completed()
    assert "rejected the plan" in state.result()["reason"] and "quarter close" in state.result()["reason"]


def test_the_requester_cannot_approve_their_own_run() -> None:
    running = start(harness, targets=["env-1"])
    approve_next(running, REQUESTER.upper())
    result = running.result()
    assert result["error"] == "SeparationOfDutyError" and "cannot approve" in result["reason"]


def test_a_changed_plan_is_asked_again_under_a_new_key() -> None:
    # the world changes while the first answer is pending
    running = start(harness, targets=["env-1", "env-2"])
    first = approve_next(running, "pp-admin@contoso.com")
    second = approve_next(running, "pp-admin@contoso.com")
    assert second.key != first.key and second.plan_hash == _plan("env-2").hash
    assert running.result()["plan_hash"] == _plan("env-2").hash


def test_an_answer_for_another_plan_is_refused() -> None:
    running = start(harness, targets=["env-1"])
    pending = wait_for_approval(running)
    answer(pending, approve=True, approver="pp-admin@contoso.com", plan_hash="0" * 64)
    assert "but the plan to run is" in running.result()["reason"]


def test_two_distinct_approvers_and_the_typed_confirmation_are_required() -> None:
    running = start(harness, targets=["env-1"], approvers_needed=2, confirm_text="cmk-policy")
    approve_next(running, "pp-admin@contoso.com", confirmation="cmk-policy")
    approve_next(running, "PP-ADMIN@contoso.com", confirmation="cmk-policy")
    assert "distinct approvers" in running.result()["reason"]

    running = start(harness, targets=["env-1"], approvers_needed=2, confirm_text="cmk-policy")
    approve_next(running, "pp-admin@contoso.com", confirmation="cmk-policy")
    approve_next(running, "pp-admin-2@contoso.com", confirmation="cmk-polcy")
    assert "as confirmation" in running.result()["reason"]

    running = start(harness, targets=["env-1"], approvers_needed=2, confirm_text="cmk-policy")
    approve_next(running, "pp-admin@contoso.com", confirmation="cmk-policy")
    approve_next(running, "pp-admin-2@contoso.com", confirmation="cmk-policy")
    assert running.result()["approvers"] == ["pp-admin@contoso.com", "pp-admin-2@contoso.com"]


def test_an_unanswered_request_times_out_as_rejected() -> None:
    state = harness(targets=["env-1"], timeout_s=1, return_state=True)
    assert state.is_completed()
    assert "no answer to approval" in state.result()["reason"]


def test_malformed_input_is_refused_by_the_server_and_the_run_keeps_waiting() -> None:
    running = start(harness, targets=["env-1"])
    pending = wait_for_approval(running)
    from prefect.flow_runs import resume_flow_run

    with pytest.raises(RuntimeError, match="approver"):
        resume_flow_run(pending.flow_run_id, run_input={"approve": True, "plan_hash": pending.plan_hash})
    answer(pending, approve=True, approver="pp-admin@contoso.com")
    assert running.result()["status"] == "approved"

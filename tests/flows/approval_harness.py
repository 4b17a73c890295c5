"""A flow that asks one real approval (ppcmk.approvals.gate.request_approval) for a one-environment plan, for
tests that answer it through the resume API or the CLI, each answerer with the proof of their own sign-in.
Given a target block, it is a hand-off on that target's policy, built as the two-half runbooks build theirs;
given a confirmation, a lock approval."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ppcmk.approvals.gate import request_approval
from ppcmk.approvals.proof import TokenProver
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.errors import ApprovalExpired, ApprovalRejected
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem
from ppcmk_flows._runbook import load_approvals, load_connection, load_target
from ppcmk_tasks.policy_reader import policy_handoff
from tests.support.runs import RunningFlow, start
from tests.support.scenario import LINKED_POLICY, PP_ADMIN_2, REQUESTER

SECOND = PP_ADMIN_2
POLICY = LINKED_POLICY


def plan_for(target: str = "env-1") -> Plan:
    return Plan(
        procedure="test-approval",
        requester=REQUESTER,
        target_summary="one environment → ep-x",
        items=[PlanItem(target=target, kind="environment", action="link to ep-x", name="Contoso Sales")],
        outages=[OutageWindow(environment_id=target, sequence=1, cause="link to ep-x")],
    )


@flow(name="approval-harness")
def harness(
    targets: list[str],
    kv_block: str,
    approvers_needed: int = 1,
    confirm_text: str | None = None,
    timeout_s: int = 300,  # a busy machine answers through a separate process and a sign-in
    handoff_target: str | None = None,
) -> dict:
    """Plans once per entry of `targets` (the world as seen at each re-plan); returns what was approved.
    `handoff_target`: a CmkTarget block whose policy the approver must read (a hand-off)."""
    plans = iter(targets)
    kv = load_connection(kv_block)
    first, approving = plan_for(next(plans)), Approving(timeout_s, 0.2)
    if handoff_target:
        handoff = policy_handoff(kv, load_target(handoff_target))
        request = ApprovalRequest.handoff_approval(first, "harness", REQUESTER, approving, handoff)
    elif confirm_text is not None:
        request = ApprovalRequest.lock_approval(first, "harness", REQUESTER, approving, approvers_needed,
                                                confirm_text)
    else:
        request = ApprovalRequest.plan_approval(first, "harness", REQUESTER, approving)
    try:
        approval = request_approval(request, TokenProver(load_approvals(), kv),
                                    replan=lambda: plan_for(next(plans, targets[-1])))
    except (ApprovalRejected, ApprovalExpired) as ended:
        return {"status": type(ended).__name__, "reason": str(ended)}
    return {
        "status": "approved",
        "plan_hash": approval.plan.hash,
        "approvers": approval.approvers,
        "approver_ids": approval.approver_ids,
    }


def run(blocks: dict[str, str], **parameters: Any) -> RunningFlow:
    return start(
        harness, targets=parameters.pop("targets", ["env-1"]), kv_block=blocks["kv-admin"], **parameters
    )

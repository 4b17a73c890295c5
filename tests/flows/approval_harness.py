"""A flow that asks one real approval (ppcmk.approvals.gate.request_approval) for a one-environment plan, for
tests that answer it through the resume API or the CLI, and the blocks its answerers sign in with. Given a
target block, it is a hand-off on that target's policy, built as the two-half runbooks build theirs; given a
confirmation, a lock approval."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ppcmk.approvals.gate import request_approval
from ppcmk.approvals.proof import ConnectionBlockProver
from ppcmk.approvals.request import ApprovalRequest, Approving
from ppcmk.errors import ApprovalExpired, ApprovalRejected
from ppcmk.safety.plan import OutageWindow, Plan, PlanItem
from ppcmk_blocks import CmkConnection
from ppcmk_flows._runbook import load_connection, load_target
from ppcmk_flows._two_half import policy_handoff
from tests.support.runs import RunningFlow, start
from tests.support.scenario import LINKED_POLICY, PP_ADMIN_2, REQUESTER

SECOND = PP_ADMIN_2
GHOST = "approvals-ghost"  # a block that exists but cannot sign in (an app the tenant does not know)
POLICY = LINKED_POLICY


def with_ghost(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    """The sandbox personas' blocks, plus GHOST, whose client id no application of the tenant has."""
    settings = load_connection(sandbox_blocks["pp-admin"])
    CmkConnection(
        cloud="sandbox",
        tenant_id=settings.tenant_id,
        subscription_id=settings.subscription_id,
        sandbox_url=settings.sandbox_url,
        credential_mode="client_secret",
        client_id="0e0e0000-0000-4000-8000-000000000000",
        client_secret="not-a-secret-of-this-tenant",
        ca_bundle=settings.ca_bundle,
        time_mode="virtual",
    ).save(GHOST, overwrite=True)
    return sandbox_blocks


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
    timeout_s: int = 30,
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
        approval = request_approval(request, ConnectionBlockProver(kv, load_connection),
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

"""The event a run emits when it starts waiting for an approval, for the notification automations
(deployments/automations.py) to react to.

A Suspended state alone does not tell an approval from a run parked while the service links its environments,
and it carries neither the plan nor who may approve; this event does, and names the run as its resource, so
the automation's templates can use `flow_run`, `flow` and `flow_run|ui_url`.
"""

from __future__ import annotations

from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.utilities.urls import url_for

from ppcmk.safety.plan import Plan

APPROVAL_WAITING_EVENT = "ppcmk.approval.waiting"


def who_may_approve(requester: str, handoff_policy: str | None, approvers_left: int) -> str:
    """In words: who can answer this question."""
    who = f"anyone but the requester {requester}"
    if handoff_policy is not None:
        who = (f"the Power Platform admin (not {requester}) with Reader on policy {handoff_policy}, naming "
               "their own connection block")
    return who + (f"; {approvers_left} more distinct approvers" if approvers_left > 1 else "")


def announce_approval_wait(plan: Plan, *, key: str, requester: str, handoff_policy: str | None = None,
                           approvers_left: int = 1) -> None:
    """Emit APPROVAL_WAITING_EVENT for the question `key`, unless a suspended run re-running from the top has
    already had it answered (Prefect then returns the answer at once instead of waiting)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    if key in (run.empirical_policy.pause_keys or set()):
        return
    emit_event(
        event=APPROVAL_WAITING_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.name": run.name},
        related=[{"prefect.resource.id": f"prefect.flow.{run.flow_id}", "prefect.resource.role": "flow",
                  "prefect.resource.name": context.flow.name if context.flow else plan.procedure}],
        payload={
            "runbook": plan.procedure,
            "waits_for": f"approval of plan {plan.hash[:12]}: {plan.target_summary} "
                         f"({len(plan.changes)} change(s), {len(plan.outages)} outage window(s))",
            "who_may_approve": who_may_approve(requester, handoff_policy, approvers_left),
            "requester": plan.requester,
            "plan_hash": plan.hash,
            "ui_url": url_for("flow-run", obj_id=run.id) or "",
        },
    )

"""Approvals bound to a plan and to a proof of who answered.

A run asks with `request_approval(request, prover, replan)`: `request` is the frozen `ApprovalRequest`,
`prover` the `Prover` that names the requester and proves each answerer (`ppcmk.approvals.proof`). The
approver answers a form (`ppcmk.approvals.forms`): Approve or Reject, and the proof (today the name of their
OWN CmkConnection block, which the flow signs in with: the object id in the token is the approver), and that
object id is what separation of duty compares (requester ≠ approver; distinct approvers where two are
needed). A *refused* answer (self-approval, a block that cannot sign in, an unknown block, no Reader on the
policy, a wrong confirmation, a stale plan hash) does not use the run up: the flow logs and audits why and
asks again under a new pause key, until the approval timeout, when the request raises `ApprovalExpired`. A
rejection raises `ApprovalRejected`. The flows turn both into named non-Completed states
(`flows._runbook.final_state`). What a request says and how one answer is judged: `ppcmk.approvals.request`.

Local runs and tests pause inside a tiny subflow; top-level deployment runs suspend, freeing the worker, and
re-run from the top on resume: the answered keys return their stored answers at once, and only the newest
answer is judged aloud (the earlier ones were logged and audited by the process that judged them first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from prefect import get_run_logger

from ppcmk.approvals.forms import PlanApproval, describe, read_answer
from ppcmk.approvals.notify import announce_approval_wait
from ppcmk.approvals.pause import (
    Answer,
    Question,
    ask_question,
    can_suspend,
    fired_keys,
    first_asked,
    record_verdict,
)
from ppcmk.approvals.proof import ProvenApprover, Prover, Refused, connection_principal
from ppcmk.approvals.request import ApprovalRequest, Asking, judge
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ApprovalExpired, ApprovalRejected
from ppcmk.safety.plan import Plan

__all__ = ["Approval", "can_suspend", "connection_principal", "request_approval"]

MAX_REPLANS = 3


@dataclass(frozen=True)
class Approval:
    """A granted request: the plan it was granted for, each approver's answer and who they proved to be."""

    plan: Plan
    decisions: tuple[PlanApproval, ...]
    proven: tuple[ProvenApprover, ...]

    @property
    def approvers(self) -> list[str]:
        return [p.upn or p.object_id for p in self.proven]

    @property
    def approver_ids(self) -> list[str]:
        return [p.object_id for p in self.proven]

    @property
    def connection(self) -> ConnectionSettings | None:
        """The connection the (last) approver proved themselves with: a hand-off's Power Platform half runs
        with it."""
        return self.proven[-1].connection if self.proven else None


def request_approval(
    request: ApprovalRequest, prover: Prover, replan: Callable[[], Plan] | None = None
) -> Approval:
    """Ask `request`; return the approval once granted for the plan that is current after the answer
    (`replan` makes it again; a changed plan is asked again, by copy of the request).

    Raises ApprovalRejected (a proven approver said no) and ApprovalExpired (no acceptable answer within the
    request's timeout). Refused answers are logged, audited and asked again; they never end the run.
    """
    for _round in range(MAX_REPLANS + 1):
        approval = _collect(Asking.of(request, prover), prover)
        current = replan() if replan is not None else request.plan
        if current.hash == request.plan.hash:
            return approval
        request.record(
            "approval-invalidated",
            detail=f"plan changed to {current.hash} before the change started; asking again",
        )
        get_run_logger().warning(
            "The world changed after the approval (plan %s → %s); asking again",
            request.plan.hash[:12],
            current.hash[:12],
        )
        current.publish()
        request = request.replanned(current)
    raise ApprovalRejected(
        f"the plan kept changing during approval ({MAX_REPLANS} re-plans); nothing was "
        "changed — find what else is modifying these objects, then run again"
    )


def _collect(asking: Asking, prover: Prover) -> Approval:
    decisions: list[PlanApproval] = []
    proven: list[ProvenApprover] = []
    for number in range(1, asking.request.approvers_needed + 1):
        decision, approver = _answer_of(asking, prover, number, proven)
        decisions.append(decision)
        proven.append(approver)
    asking.request.record(
        "approval-granted",
        approvers=[p.label for p in proven],
        approver_ids=[p.object_id for p in proven],
        comments=[d.comment for d in decisions],
    )
    return Approval(plan=asking.request.plan, decisions=tuple(decisions), proven=tuple(proven))


def _answer_of(
    asking: Asking, prover: Prover, number: int, prior: list[ProvenApprover]
) -> tuple[PlanApproval, ProvenApprover]:
    """Ask approver `number` until an acceptable answer (or a rejection, or the deadline)."""
    request = asking.request
    prefix, fired = request.prefix(number), fired_keys()
    answer_by = first_asked(prefix) + timedelta(seconds=request.approving.timeout_s)
    fields = asking.fields(number, answer_by, prior)
    refused_because, round_ = "", 1
    while True:
        key = prefix if round_ == 1 else f"{prefix}-r{round_}"
        # judged aloud before when a later key fired already
        replayed = bool({f"{prefix}-r{round_ + 1}", request.prefix(number + 1)} & fired)
        answer = _ask_round(asking, number, key, answer_by, fields, refused_because)
        decision = read_answer(request.kind, answer.values)
        try:
            approver = prover.prove(decision)
            judge(asking, decision, approver, prior, key, quiet=replayed)
        except ApprovalRejected as rejected:
            record_verdict(answer, key, {"verdict": "rejected", "reason": str(rejected)})
            raise
        except Refused as refused:
            refused_because = str(refused)
            record_verdict(
                answer,
                key,
                {"verdict": "refused", "reason": refused_because, "answer_by": answer_by.isoformat()},
            )
            if not replayed:
                _refused(request, key, decision, refused_because, answer_by)
                if datetime.now(UTC) >= answer_by:
                    _expire(request, key, answer_by)
            round_ += 1
            continue
        record_verdict(
            answer,
            key,
            {"verdict": "accepted", "approver": approver.label,
             "remaining": request.approvers_needed - number},
        )
        return decision, approver


def _ask_round(
    asking: Asking, number: int, key: str, answer_by: datetime, fields: dict[str, Any], refused_because: str
) -> Answer:
    """One round: the form (saying why the last answer was refused, if it was), the wait announced, the
    answer; none in time ends the request (ApprovalExpired)."""
    request, plan = asking.request, asking.request.plan
    text = asking.form_text(number, answer_by, refused_because)
    policy = request.handoff.policy_name if request.handoff is not None else None
    announce_approval_wait(plan, key=key, requester=asking.requester.label, handoff_policy=policy,
                           approvers_left=request.approvers_needed - number + 1)
    answer = ask_question(Question(request.kind, key, describe(plan, text), plan.hash, answer_by,
                                   request.approving.poll_s, fields))
    if answer is None:
        _expire(request, key, answer_by)
    return answer


def _refused(
    request: ApprovalRequest, key: str, decision: PlanApproval, reason: str, answer_by: datetime
) -> None:
    get_run_logger().warning(
        "Refused the answer to approval %s: %s. Nothing was changed; still waiting for "
        "an acceptable answer until %s UTC",
        key,
        reason,
        f"{answer_by:%Y-%m-%d %H:%M}",
    )
    request.record(
        "approval-refused",
        key=key,
        reason=reason,
        connection_block=decision.connection_block,
        decision=decision.decision,
    )


def _expire(request: ApprovalRequest, key: str, answer_by: datetime) -> NoReturn:
    reason = (
        f"no acceptable answer to approval {key} by {answer_by:%Y-%m-%d %H:%M} UTC "
        f"({request.approving.timeout_s} s); nothing after the plan was changed"
    )
    request.record("approval-expired", key=key, answer_by=answer_by.isoformat())
    raise ApprovalExpired(reason)

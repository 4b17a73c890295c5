"""Approvals bound to a plan and to a credential the approver controls.

A run asks with `request_approval`. The approver answers a form (`ppcmk.approvals.forms`): Approve or
Reject, and the name of their OWN CmkConnection block. The flow signs in with that block; the object id in
the token is the approver, and that is what separation of duty compares (requester ≠ approver; distinct
approvers where two are needed). A *refused* answer (self-approval, a block that cannot sign in, an unknown
block, no Reader on the policy, a wrong confirmation, a stale plan hash) does not use the run up: the flow
logs and audits why and asks again under a new pause key, until the approval timeout, when the request
raises `ApprovalExpired`. A rejection raises `ApprovalRejected`. The flows turn both into named
non-Completed states (`flows._runbook.final_state`). What a request says and how one answer is judged:
`ppcmk.approvals.request`.

Local runs and tests pause inside a tiny subflow; top-level deployment runs suspend, freeing the worker, and
re-run from the top on resume: the answered keys return their stored answers at once, and only the newest
answer is judged aloud (the earlier ones were logged and audited by the process that judged them first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from prefect import get_run_logger

from ppcmk.approvals.forms import FormKind, FormText, PlanApproval, describe, read_answer
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
from ppcmk.approvals.proof import IdentityResolver, ProvenApprover, Refused, connection_principal
from ppcmk.approvals.request import Ask, PowerPlatformHandoff, judge, record
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ApprovalExpired, ApprovalRejected
from ppcmk.safety.plan import Plan

__all__ = [
    "Approval",
    "IdentityResolver",
    "PowerPlatformHandoff",
    "can_suspend",
    "connection_principal",
    "request_approval",
]

MAX_REPLANS = 3


@dataclass
class Approval:
    plan: Plan
    decisions: list[PlanApproval]
    proven: list[ProvenApprover]
    connection: ConnectionSettings | None = None  # the approver's own connection (Power Platform half)
    notes: list[str] = field(default_factory=list)

    @property
    def approvers(self) -> list[str]:
        return [p.upn or p.object_id for p in self.proven]

    @property
    def approver_ids(self) -> list[str]:
        return [p.object_id for p in self.proven]


def request_approval(
    plan: Plan,
    *,
    requester: str,
    key: str,
    timeout_s: int,
    identities: IdentityResolver,
    replan: Callable[[], Plan] | None = None,
    handoff: PowerPlatformHandoff | None = None,
    approvers_needed: int = 1,
    confirm_text: str | None = None,
    poll_interval_s: float = 10,
    load_connection: Callable[[str], ConnectionSettings],
) -> Approval:
    """Ask for approval of `plan`; return it once granted for the plan that is current after the answer.
    `load_connection` turns the block name an approver answers with into its settings (the flow signs in
    with them: that is the proof of who answered).

    Raises ApprovalRejected (a proven approver said no) and ApprovalExpired (no acceptable answer within
    `timeout_s`). Refused answers are logged, audited and asked again; they never end the run.
    """
    kind: FormKind = "lock" if confirm_text is not None else "handoff" if handoff is not None else "plan"
    for _round in range(MAX_REPLANS + 1):
        ask = Ask(
            plan,
            kind,
            identities.object_id(requester),
            identities.label(requester),
            key,
            timeout_s,
            poll_interval_s,
            handoff,
            approvers_needed,
            confirm_text,
            load_connection,
        )
        approval = _collect(ask)
        current = replan() if replan is not None else plan
        if current.hash == plan.hash:
            return approval
        record(
            plan,
            "approval-invalidated",
            detail=f"plan changed to {current.hash} before the change started; asking again",
        )
        get_run_logger().warning(
            "The world changed after the approval (plan %s → %s); asking again",
            plan.hash[:12],
            current.hash[:12],
        )
        current.publish()
        plan = current
    raise ApprovalRejected(
        f"the plan kept changing during approval ({MAX_REPLANS} re-plans); nothing was "
        "changed — find what else is modifying these objects, then run again"
    )


def _collect(ask: Ask) -> Approval:
    decisions: list[PlanApproval] = []
    proven: list[ProvenApprover] = []
    connection: ConnectionSettings | None = None
    for number in range(1, ask.approvers_needed + 1):
        decision, approver, connection = _answer_of(ask, number, proven)
        decisions.append(decision)
        proven.append(approver)
    ask.record(
        "approval-granted",
        approvers=[p.label for p in proven],
        approver_ids=[p.object_id for p in proven],
        comments=[d.comment for d in decisions],
    )
    return Approval(plan=ask.plan, decisions=decisions, proven=proven, connection=connection)


def _answer_of(
    ask: Ask, number: int, prior: list[ProvenApprover]
) -> tuple[PlanApproval, ProvenApprover, ConnectionSettings]:
    """Ask approver `number` until an acceptable answer (or a rejection, or the deadline)."""
    prefix, fired = ask.prefix(number), fired_keys()
    answer_by = first_asked(prefix) + timedelta(seconds=ask.timeout_s)
    request = ask.request(number, answer_by, prior)
    refused_because, round_ = "", 1
    while True:
        key = prefix if round_ == 1 else f"{prefix}-r{round_}"
        replayed = bool({f"{prefix}-r{round_ + 1}", ask.prefix(number + 1)} & fired)  # judged aloud before
        answer = _ask_round(ask, number, key, answer_by, request, refused_because)
        decision = read_answer(ask.kind, answer.values)
        try:
            approver, connection = judge(ask, decision, prior, key, quiet=replayed)
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
                _refused(ask, key, decision, refused_because, answer_by)
                if datetime.now(UTC) >= answer_by:
                    _expire(ask, key, answer_by)
            round_ += 1
            continue
        record_verdict(
            answer,
            key,
            {"verdict": "accepted", "approver": approver.label, "remaining": ask.approvers_needed - number},
        )
        return decision, approver, connection


def _ask_round(
    ask: Ask, number: int, key: str, answer_by: datetime, request: dict[str, Any], refused_because: str
) -> Answer:
    """One round: the form (saying why the last answer was refused, if it was), the wait announced, the
    answer; none in time ends the request (ApprovalExpired)."""
    text = FormText(ask.requester_label, ask.who_may_approve(), answer_by, ask.to_do(number),
                    ask.plan_link(), refused_because)
    policy = ask.handoff.policy_name if ask.handoff is not None else None
    announce_approval_wait(ask.plan, key=key, requester=ask.requester_label, handoff_policy=policy,
                           approvers_left=ask.approvers_needed - number + 1)
    answer = ask_question(Question(ask.kind, key, describe(ask.plan, text), ask.plan.hash, answer_by,
                                   ask.poll_interval_s, request))
    if answer is None:
        _expire(ask, key, answer_by)
    return answer


def _refused(ask: Ask, key: str, decision: PlanApproval, reason: str, answer_by: datetime) -> None:
    get_run_logger().warning(
        "Refused the answer to approval %s: %s. Nothing was changed; still waiting for "
        "an acceptable answer until %s UTC",
        key,
        reason,
        f"{answer_by:%Y-%m-%d %H:%M}",
    )
    ask.record(
        "approval-refused",
        key=key,
        reason=reason,
        connection_block=decision.connection_block,
        decision=decision.decision,
    )


def _expire(ask: Ask, key: str, answer_by: datetime) -> NoReturn:
    reason = (
        f"no acceptable answer to approval {key} by {answer_by:%Y-%m-%d %H:%M} UTC "
        f"({ask.timeout_s} s); nothing after the plan was changed"
    )
    ask.record("approval-expired", key=key, answer_by=answer_by.isoformat())
    raise ApprovalExpired(reason)

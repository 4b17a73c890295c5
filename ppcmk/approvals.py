"""Approvals bound to a plan and to a credential the approver controls.

A run asks with `request_approval`. The approver answers a form (`ppcmk.approval_forms`): Approve or
Reject, and the name of their OWN CmkConnection block. The flow signs in with that block; the object id in
the token is the approver, and that is what separation of duty compares (requester ≠ approver; distinct
approvers where two are needed). A *refused* answer (self-approval, a block that cannot sign in, an unknown
block, no Reader on the policy, a wrong confirmation, a stale plan hash) does not use the run up: the flow
logs and audits why and asks again under a new pause key, until the approval timeout, when the request
raises `ApprovalExpired`. A rejection raises `ApprovalRejected`. The flows turn both into named
non-Completed states (`flows._runbook.final_state`).

Local runs and tests pause inside a tiny subflow; top-level deployment runs suspend, freeing the worker, and
re-run from the top on resume: the answered keys return their stored answers at once, and only the newest
answer is judged aloud (the earlier ones were logged and audited by the process that judged them first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import get_run_logger
from prefect.settings import PREFECT_UI_URL

from ppcmk import audit
from ppcmk.approval_forms import FormKind, FormText, PlanApproval, describe, plan_table_key, read_answer
from ppcmk.approval_identity import (
    IdentityResolver,
    ProvenApprover,
    Refused,
    connection_principal,
    prove,
)
from ppcmk.approval_pause import (
    Answer,
    Question,
    ask_question,
    can_suspend,
    fired_keys,
    first_asked,
    record_verdict,
    resumed_by,
)
from ppcmk.errors import ApprovalExpired, ApprovalRejected
from ppcmk.notifications import announce_approval_wait
from ppcmk.plan import Plan
from ppcmk.settings import ConnectionSettings

__all__ = [
    "Approval",
    "IdentityResolver",
    "PowerPlatformHandoff",
    "can_suspend",
    "connection_principal",
    "request_approval",
]

MAX_REPLANS = 3


@dataclass(frozen=True)
class PowerPlatformHandoff:
    """The approver will run the Power Platform half: they name their connection, which must hold Reader."""

    policy_name: str
    has_policy_reader: Callable[[str], bool]  # principal object id → holds Reader on the policy (ARM)
    policy_id: str = ""  # its ARM id: `ppcmk approve` checks the approver's Reader there before resuming
    designated: str = ""  # the admin this run granted Reader (shown on the form)
    designated_id: str = ""  # their object id: `ppcmk approve` cannot see a Reader granted minutes ago


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


@dataclass(frozen=True)
class Ask:
    """What every round of one approval request shares."""

    plan: Plan
    kind: FormKind
    requester_id: str
    requester_label: str
    base_key: str
    timeout_s: int
    poll_interval_s: float
    handoff: PowerPlatformHandoff | None
    approvers_needed: int
    confirm_text: str | None
    load_connection: Callable[[str], ConnectionSettings]  # a CmkConnection block's settings, by name

    def prefix(self, number: int) -> str:
        return f"{self.base_key}-{self.plan.hash[:12]}-{number}"

    def who_may_approve(self) -> str:
        sign_in = "signing in with their own CmkConnection block"
        if self.handoff is not None:
            granted = (
                f" (this run granted it to {self.handoff.designated})" if self.handoff.designated else ""
            )
            return (
                f"anyone but the requester, {sign_in}, who holds Reader on enterprise policy "
                f"{self.handoff.policy_name}{granted}"
            )
        if self.approvers_needed > 1:
            return (
                f"{self.approvers_needed} distinct approvers, neither of them the requester, each {sign_in}"
            )
        return f"any administrator but the requester, {sign_in}"

    def request(self, number: int, answer_by: datetime, prior: list[ProvenApprover]) -> dict[str, Any]:
        """The request in fields, stored in the form's schema: what `ppcmk approve` checks before it
        resumes and what `ppcmk approvals` and the waker read."""
        environments = [i.name or i.detail or i.target for i in self.plan.changes if i.kind == "environment"]
        return {
            "kind": self.kind,
            "procedure": self.plan.procedure,
            "plan_hash": self.plan.hash,
            "answer_by": answer_by.isoformat(),
            "requester": self.requester_label,
            "requester_id": self.requester_id,
            "may_approve": self.who_may_approve(),
            "environments": environments,
            "approver_number": number,
            "approvers_needed": self.approvers_needed,
            "approved_by": [p.object_id for p in prior],
            "policy_id": self.handoff.policy_id if self.handoff is not None else None,
            "designated_id": self.handoff.designated_id if self.handoff is not None else None,
            "confirm_text": self.confirm_text,
        }

    def to_do(self, number: int) -> str:
        """What this answer needs beyond a decision and a block ("" when nothing)."""
        steps = [f"approver {number} of {self.approvers_needed}"] if self.approvers_needed > 1 else []
        if self.confirm_text is not None:
            steps.append(f"type `{self.confirm_text}` as confirmation")
        return ", ".join(steps)


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
        _record(
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
    _record(
        ask.plan,
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
        text = FormText(
            ask.requester_label,
            ask.who_may_approve(),
            answer_by,
            ask.to_do(number),
            _plan_link(ask.plan),
            refused_because,
        )
        policy = ask.handoff.policy_name if ask.handoff is not None else None
        announce_approval_wait(
            ask.plan,
            key=key,
            requester=ask.requester_label,
            handoff_policy=policy,
            approvers_left=ask.approvers_needed - number + 1,
        )
        answer = ask_question(
            Question(
                ask.kind,
                key,
                describe(ask.plan, text),
                ask.plan.hash,
                answer_by,
                ask.poll_interval_s,
                request,
            )
        )
        if answer is None:
            _expire(ask, key, answer_by)
        decision = read_answer(ask.kind, cast(Answer, answer).values)
        try:
            approver, connection = _judge(ask, decision, prior, key, quiet=replayed)
        except ApprovalRejected as rejected:
            record_verdict(cast(Answer, answer), key, {"verdict": "rejected", "reason": str(rejected)})
            raise
        except Refused as refused:
            refused_because = str(refused)
            record_verdict(
                cast(Answer, answer),
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
            cast(Answer, answer),
            key,
            {"verdict": "accepted", "approver": approver.label, "remaining": ask.approvers_needed - number},
        )
        return decision, approver, connection


def _judge(
    ask: Ask, decision: PlanApproval, prior: list[ProvenApprover], key: str, quiet: bool
) -> tuple[ProvenApprover, ConnectionSettings]:
    approver, connection = prove(decision.connection_block, ask.load_connection)
    if not quiet:
        get_run_logger().info(
            "%s answered %s with connection block %s%s",
            approver.label,
            decision.decision,
            decision.connection_block,
            f": {decision.comment}" if decision.comment else "",
        )
        _record(
            ask.plan,
            "approval-answered",
            key=key,
            approver=approver.label,
            approver_id=approver.object_id,
            connection_block=decision.connection_block,
            decision=decision.decision,
            comment=decision.comment,
            prefect_actor=resumed_by(),
        )
    if decision.decision == "reject":
        reason = f"rejected by {approver.label}" + (f": {decision.comment}" if decision.comment else "")
        _record(
            ask.plan,
            "approval-rejected",
            key=key,
            approver=approver.label,
            approver_id=approver.object_id,
            comment=decision.comment,
        )
        raise ApprovalRejected(reason)
    _check_approval(ask, decision, approver, prior)
    return approver, connection


def _check_approval(
    ask: Ask, decision: PlanApproval, approver: ProvenApprover, prior: list[ProvenApprover]
) -> None:
    if decision.plan_hash != ask.plan.hash:
        raise Refused(
            f"{approver.label} approved plan {decision.plan_hash[:12]}, but the plan to run is "
            f"{ask.plan.hash[:12]}; approve the plan shown"
        )
    if ask.confirm_text is not None and getattr(decision, "confirmation", "").strip() != ask.confirm_text:
        raise Refused(
            f"{approver.label} typed {getattr(decision, 'confirmation', '')!r} as confirmation, not "
            f"{ask.confirm_text!r}"
        )
    if approver.object_id == ask.requester_id:
        raise Refused(
            f"{approver.label} requested this run and cannot approve it; a second administrator "
            "answers with their own connection block"
        )
    if approver.object_id in {p.object_id for p in prior}:
        raise Refused(
            f"{approver.label} already approved; {ask.approvers_needed} different approvers are required"
        )
    if ask.handoff is not None and not ask.handoff.has_policy_reader(approver.object_id):
        raise Refused(
            f"{approver.label} has no Reader role on the enterprise policy {ask.handoff.policy_name};"
            " the Key Vault admin grants it (role acdd72a7-3385-48ef-bd42-f606fba81ae7)"
        )


def _refused(ask: Ask, key: str, decision: PlanApproval, reason: str, answer_by: datetime) -> None:
    get_run_logger().warning(
        "Refused the answer to approval %s: %s. Nothing was changed; still waiting for "
        "an acceptable answer until %s UTC",
        key,
        reason,
        f"{answer_by:%Y-%m-%d %H:%M}",
    )
    _record(
        ask.plan,
        "approval-refused",
        key=key,
        reason=reason,
        connection_block=decision.connection_block,
        decision=decision.decision,
    )


def _expire(ask: Ask, key: str, answer_by: datetime) -> None:
    reason = (
        f"no acceptable answer to approval {key} by {answer_by:%Y-%m-%d %H:%M} UTC "
        f"({ask.timeout_s} s); nothing after the plan was changed"
    )
    _record(ask.plan, "approval-expired", key=key, answer_by=answer_by.isoformat())
    raise ApprovalExpired(reason)


def _plan_link(plan: Plan) -> str | None:
    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/artifacts/key/{plan_table_key(plan)}" if ui else None


def _record(plan: Plan, event: str, **details: object) -> None:
    audit.record(
        {
            "event": event,
            "procedure": plan.procedure,
            "plan_hash": plan.hash,
            "requester": plan.requester,
            **details,
        }
    )

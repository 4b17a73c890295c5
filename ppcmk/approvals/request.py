"""What one approval request is and checks: the request a run makes (`ApprovalRequest`, one frozen value,
re-planned by copy), what every round of asking it shares (`Asking`: who asked, who held Reader when it
was asked), and the judgement of one answer whose approver the prover has proven (the refusals: stale plan,
wrong confirmation, self-approval, the same approver twice, no Reader on the policy). The rounds and the
waiting are `ppcmk.approvals.gate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from prefect import get_run_logger
from prefect.settings import PREFECT_UI_URL

from ppcmk.approvals.forms import FormKind, FormText, PlanApproval, plan_table_key
from ppcmk.approvals.pause import resumed_by
from ppcmk.approvals.proof import Person, ProvenApprover, Prover, Refused
from ppcmk.audit import trail as audit
from ppcmk.errors import ApprovalRejected
from ppcmk.safety.plan import Plan
from ppcmk.safety.validation import check_parameters


@dataclass(frozen=True)
class Approving:
    """How long an approval waits, and how often a local run looks for the answer."""

    timeout_s: int
    poll_s: float

    def __post_init__(self) -> None:
        check_parameters(approval_timeout_s=self.timeout_s, approval_poll_s=self.poll_s)


@dataclass(frozen=True)
class PowerPlatformHandoff:
    """The approver will run the Power Platform half: they name their connection, which must hold Reader."""

    policy_name: str
    has_policy_reader: Callable[[str], bool]  # principal object id → holds Reader on the policy (ARM)
    # the object ids holding Reader or higher on the policy as the Key Vault admin sees them, read once per
    # ask: `ppcmk approve` accepts them, since a fresh Reader shows in its holder's own reads minutes later
    policy_readers: Callable[[], list[str]]
    policy_id: str = ""  # its ARM id: `ppcmk approve` checks the approver's Reader there before resuming
    designated: str = ""  # the admin this run granted Reader (shown on the form)


@dataclass(frozen=True)
class ApprovalRequest:
    """What a run asks approval for. Its constructors name the three kinds: a plain plan (one approver), a
    hand-off (its approver runs the Power Platform half and must read the policy), and a lock (several
    distinct approvers, each typing `confirm_text`). `requester` is who asked, as the run was given it (UPN
    or object id); the prover names them once per request."""

    plan: Plan
    key: str
    requester: str
    approving: Approving
    handoff: PowerPlatformHandoff | None = None
    approvers_needed: int = 1
    confirm_text: str | None = None

    @classmethod
    def plan_approval(cls, plan: Plan, key: str, requester: str, approving: Approving) -> ApprovalRequest:
        return cls(plan, key, requester, approving)

    @classmethod
    def handoff_approval(
        cls, plan: Plan, key: str, requester: str, approving: Approving, handoff: PowerPlatformHandoff
    ) -> ApprovalRequest:
        return cls(plan, key, requester, approving, handoff=handoff)

    @classmethod
    def lock_approval(
        cls, plan: Plan, key: str, requester: str, approving: Approving, approvers_needed: int,
        confirm_text: str,
    ) -> ApprovalRequest:
        return cls(plan, key, requester, approving, approvers_needed=approvers_needed,
                   confirm_text=confirm_text)

    @property
    def kind(self) -> FormKind:
        """Which form asks it: a confirmation makes it a lock's, a Reader requirement a hand-off's."""
        return "lock" if self.confirm_text is not None else "handoff" if self.handoff is not None else "plan"

    def replanned(self, plan: Plan) -> ApprovalRequest:
        """The same request about the plan made again (the world changed before the answer)."""
        return replace(self, plan=plan)

    def prefix(self, number: int) -> str:
        return f"{self.key}-{self.plan.hash[:12]}-{number}"

    def to_do(self, number: int) -> str:
        """What this answer needs beyond a decision and a block ("" when nothing)."""
        steps = [f"approver {number} of {self.approvers_needed}"] if self.approvers_needed > 1 else []
        if self.confirm_text is not None:
            steps.append(f"type `{self.confirm_text}` as confirmation")
        return ", ".join(steps)

    def plan_link(self) -> str | None:
        """The plan table in the Prefect UI, for the form."""
        ui = PREFECT_UI_URL.value()
        return f"{ui.rstrip('/')}/artifacts/key/{plan_table_key(self.plan)}" if ui else None

    def record(self, event: str, **details: object) -> None:
        """An approval event in the audit trail, with the plan it is about."""
        audit.record({"event": event, "procedure": self.plan.procedure, "plan_hash": self.plan.hash,
                      "requester": self.plan.requester, **details})


@dataclass(frozen=True)
class Asking:
    """One request while it is asked, the same for each of its rounds: who asked (named once), who held
    Reader or higher on the hand-off's policy as the Key Vault admin saw it then (lower-case object ids, read
    once: the request after a re-plan reads again), and how an answerer proves who they are."""

    request: ApprovalRequest
    requester: Person
    readers: tuple[str, ...]
    means: str

    @classmethod
    def of(cls, request: ApprovalRequest, prover: Prover) -> Asking:
        handoff = request.handoff
        readers = sorted({object_id.lower() for object_id in handoff.policy_readers()}) if handoff else []
        return cls(request, prover.person(request.requester), tuple(readers), prover.means)

    def who_may_approve(self) -> str:
        request = self.request
        if request.handoff is not None:
            designated = request.handoff.designated
            granted = f" (this run granted it to {designated})" if designated else ""
            return (
                f"anyone but the requester, {self.means}, who holds Reader on enterprise policy "
                f"{request.handoff.policy_name}{granted}"
            )
        if request.approvers_needed > 1:
            return (f"{request.approvers_needed} distinct approvers, neither of them the requester, each "
                    f"{self.means}")
        return f"any administrator but the requester, {self.means}"

    def fields(self, number: int, answer_by: datetime, prior: Sequence[ProvenApprover]) -> dict[str, Any]:
        """The request in fields, stored in the form's schema: what `ppcmk approve` checks before it
        resumes and what `ppcmk approvals` and the waker read."""
        request, plan = self.request, self.request.plan
        environments = [i.name or i.detail or i.target for i in plan.changes if i.kind == "environment"]
        return {
            "kind": request.kind,
            "procedure": plan.procedure,
            "plan_hash": plan.hash,
            "answer_by": answer_by.isoformat(),
            "requester": self.requester.label,
            "requester_id": self.requester.object_id,
            "may_approve": self.who_may_approve(),
            "environments": environments,
            "approver_number": number,
            "approvers_needed": request.approvers_needed,
            "approved_by": [p.object_id for p in prior],
            "policy_id": request.handoff.policy_id if request.handoff is not None else None,
            "reader_ids": list(self.readers),
            "confirm_text": request.confirm_text,
        }

    def form_text(self, number: int, answer_by: datetime, refused_because: str) -> FormText:
        request = self.request
        return FormText(self.requester.label, self.who_may_approve(), answer_by, request.to_do(number),
                        request.plan_link(), refused_because)


def judge(
    asking: Asking, decision: PlanApproval, approver: ProvenApprover, prior: Sequence[ProvenApprover],
    key: str, quiet: bool,
) -> None:
    """Accept the proven approver's answer; raises ApprovalRejected for a rejection and Refused for an
    answer that cannot count. `quiet`: an answer judged aloud before (a resumed deployment run replaying it)
    is not logged or audited again."""
    request = asking.request
    who = {"key": key, "approver": approver.label, "approver_id": approver.object_id}
    comment = f": {decision.comment}" if decision.comment else ""
    if not quiet:
        get_run_logger().info("%s answered %s with connection block %s%s", approver.label, decision.decision,
                              decision.connection_block, comment)
        request.record("approval-answered", **who, connection_block=decision.connection_block,
                       decision=decision.decision, comment=decision.comment, prefect_actor=resumed_by())
    if decision.decision == "reject":
        request.record("approval-rejected", **who, comment=decision.comment)
        raise ApprovalRejected(f"rejected by {approver.label}{comment}")
    check_approval(asking, decision, approver, prior)


def check_approval(
    asking: Asking, decision: PlanApproval, approver: ProvenApprover, prior: Sequence[ProvenApprover]
) -> None:
    request = asking.request
    if decision.plan_hash != request.plan.hash:
        raise Refused(
            f"{approver.label} approved plan {decision.plan_hash[:12]}, but the plan to run is "
            f"{request.plan.hash[:12]}; approve the plan shown"
        )
    typed = getattr(decision, "confirmation", "")
    if request.confirm_text is not None and typed.strip() != request.confirm_text:
        raise Refused(f"{approver.label} typed {typed!r} as confirmation, not {request.confirm_text!r}")
    if approver.object_id == asking.requester.object_id:
        raise Refused(
            f"{approver.label} requested this run and cannot approve it; a second administrator "
            "answers with their own connection block"
        )
    if approver.object_id in {p.object_id for p in prior}:
        raise Refused(
            f"{approver.label} already approved; {request.approvers_needed} different approvers are required"
        )
    if request.handoff is not None and not request.handoff.has_policy_reader(approver.object_id):
        raise Refused(
            f"{approver.label} has no Reader role on the enterprise policy {request.handoff.policy_name};"
            " the Key Vault admin grants it (role acdd72a7-3385-48ef-bd42-f606fba81ae7)"
        )

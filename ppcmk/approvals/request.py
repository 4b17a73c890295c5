"""What one approval request says and checks, whatever round it is in: the plan, who asked, who may
approve, the hand-off's Reader requirement, and the judgement of one answer (proof of the approver through
their own connection block, then the refusals: stale plan, wrong confirmation, self-approval, the same
approver twice, no Reader on the policy). The rounds and the waiting are `ppcmk.approvals.gate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from prefect import get_run_logger
from prefect.settings import PREFECT_UI_URL

from ppcmk.approvals.forms import FormKind, PlanApproval, plan_table_key
from ppcmk.approvals.pause import resumed_by
from ppcmk.approvals.proof import ProvenApprover, Refused, prove
from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ApprovalRejected
from ppcmk.safety.plan import Plan


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

    @cached_property
    def reader_ids(self) -> list[str]:
        """Who held Reader or higher on the policy when this request was made, as the Key Vault admin saw
        it (lower-case object ids): read once, and again by the next request after a re-plan."""
        if self.handoff is None:
            return []
        return sorted({object_id.lower() for object_id in self.handoff.policy_readers()})

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
            "reader_ids": self.reader_ids,
            "confirm_text": self.confirm_text,
        }

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
        record(self.plan, event, **details)


def judge(
    ask: Ask, decision: PlanApproval, prior: list[ProvenApprover], key: str, quiet: bool
) -> tuple[ProvenApprover, ConnectionSettings]:
    """The approver proven by signing in with the block they named, and their answer accepted; raises
    ApprovalRejected for a rejection and Refused for an answer that cannot count. `quiet`: an answer judged
    aloud before (a resumed deployment run replaying it) is not logged or audited again."""
    approver, connection = prove(decision.connection_block, ask.load_connection)
    who = {"key": key, "approver": approver.label, "approver_id": approver.object_id}
    comment = f": {decision.comment}" if decision.comment else ""
    if not quiet:
        get_run_logger().info("%s answered %s with connection block %s%s", approver.label, decision.decision,
                              decision.connection_block, comment)
        ask.record("approval-answered", **who, connection_block=decision.connection_block,
                   decision=decision.decision, comment=decision.comment, prefect_actor=resumed_by())
    if decision.decision == "reject":
        ask.record("approval-rejected", **who, comment=decision.comment)
        raise ApprovalRejected(f"rejected by {approver.label}{comment}")
    check_approval(ask, decision, approver, prior)
    return approver, connection


def check_approval(
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


def record(plan: Plan, event: str, **details: object) -> None:
    """An approval event in the audit trail, with the plan it is about."""
    audit.record(
        {
            "event": event,
            "procedure": plan.procedure,
            "plan_hash": plan.hash,
            "requester": plan.requester,
            **details,
        }
    )

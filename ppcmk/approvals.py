"""Approvals bound to a plan: the Prefect "Resume" form, separation of duty, re-plan when the world moved.

A run asks with `request_approval`. Local runs and tests pause inside a tiny subflow (so an unanswered
request ends as *rejected*, not as a failed run); top-level deployment runs suspend, freeing the worker, and
re-run from the top on resume (stable keys make the answered request return at once). Keys contain the plan
hash, so a changed plan is a new question. Outcome of a "no": `ApprovalRejected`, which flows turn into a
Completed run whose result has status "rejected" and which changed nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from ppcmk import audit
from ppcmk.clients import ClientFactory
from ppcmk.errors import ApprovalRejected, SeparationOfDutyError
from ppcmk.notifications import announce_approval_wait
from ppcmk.plan import Plan
from ppcmk.settings import ConnectionSettings

MAX_REPLANS = 3
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


class IdentityResolver:
    """Turns a UPN or object id into an object id through Graph, so 'alice@x' and her GUID compare equal.

    Where Graph cannot answer (no connection given, no directory read permission, unknown name), the
    lower-cased text is used, so the comparison degrades to the self-asserted names rather than failing.
    """

    def __init__(self, connection: ConnectionSettings | None) -> None:
        self._factory = ClientFactory.for_settings(connection) if connection is not None else None
        self._cache: dict[str, str] = {}

    def object_id(self, who: str) -> str:
        text = who.strip().lower()
        if _GUID.match(text) or self._factory is None:
            return text
        if text not in self._cache:
            try:
                self._cache[text] = self._factory.graph().user_object_id(text).lower()
            except Exception as unresolved:  # directory lookup is best effort by design (see class docstring)
                get_run_logger().warning(
                    "Could not resolve %s through Graph (%s); comparing names instead",
                    who,
                    type(unresolved).__name__,
                )
                self._cache[text] = text
        return self._cache[text]


def connection_principal(connection: ConnectionSettings) -> str:
    """The object id a connection signs in as, read from the oid claim of its own ARM token (never logged)."""
    factory = ClientFactory.for_settings(connection)
    token = factory.credential.get_token(connection.endpoints.arm_scope).token
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("oid", "")).lower()


class ApprovalDecision(RunInput):
    """The approver's answer. Every rule is JSON-schema expressible, so the server rejects malformed input."""

    approve: bool = Field(
        default=False, description="Tick to approve this exact plan; leave unticked to reject"
    )
    approver: str = Field(
        min_length=3, max_length=256, pattern=r"^\S+$", description="Your Entra object id or UPN"
    )
    comment: str = Field(default="", max_length=2000, description="Comment or change ticket, e.g. CHG-1234")
    plan_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="The plan you are answering (pre-filled; do not edit)"
    )
    connection_block: str | None = Field(
        default=None,
        description="Power Platform half only: name YOUR CmkConnection block; the run continues with it",
    )
    confirmation: str | None = Field(
        default=None, description="Only when asked: type the enterprise policy name to confirm"
    )


@dataclass(frozen=True)
class PowerPlatformHandoff:
    """The approver will run the Power Platform half: they name their connection, which must hold Reader."""

    policy_name: str
    has_policy_reader: Callable[[str], bool]  # principal object id → holds Reader on the policy (ARM)
    load_connection: Callable[[str], ConnectionSettings]  # block name → settings


@dataclass
class Approval:
    plan: Plan
    decisions: list[ApprovalDecision]
    approver_ids: list[str]
    connection: ConnectionSettings | None = None  # the approver's own connection (Power Platform half)
    notes: list[str] = field(default_factory=list)

    @property
    def approvers(self) -> list[str]:
        return [d.approver for d in self.decisions]


@flow(name="ppcmk-approval", flow_run_name="approval-{key}", persist_result=False)
def await_approval(
    description: str, plan_hash: str, key: str, timeout_s: int, poll_interval_s: float
) -> dict:
    """Pauses until the form is answered; a timeout fails this subflow, which the caller reads as 'no'."""
    form = ApprovalDecision.with_initial_data(description=description, plan_hash=plan_hash, approve=False)
    # The poll only feeds time.sleep, so sub-second intervals (tests) work despite the int annotation.
    decision = pause_flow_run(  # type: ignore[call-overload]
        wait_for_input=form, timeout=timeout_s, poll_interval=poll_interval_s, key=key
    )
    return decision.model_dump()


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
) -> Approval:
    """Ask for approval of `plan`; return it once granted for the plan that is current after the answer.

    Raises ApprovalRejected (a "no", a timeout, an answer for another plan, a wrong confirmation) and
    SeparationOfDutyError (approver is the requester, approvers not distinct, no Reader on the policy).
    """
    requester_id = identities.object_id(requester)
    for _round in range(MAX_REPLANS + 1):
        approval = _collect(
            plan,
            requester,
            requester_id,
            key,
            timeout_s,
            identities,
            handoff,
            approvers_needed,
            confirm_text,
            poll_interval_s,
        )
        current = replan() if replan is not None else plan
        if current.hash == plan.hash:
            return approval
        _record(
            plan,
            "approval-invalidated",
            requester=requester,
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


def _collect(
    plan: Plan,
    requester: str,
    requester_id: str,
    key: str,
    timeout_s: int,
    identities: IdentityResolver,
    handoff: PowerPlatformHandoff | None,
    approvers_needed: int,
    confirm_text: str | None,
    poll_interval_s: float,
) -> Approval:
    description = _description(plan, handoff, confirm_text, approvers_needed)
    decisions: list[ApprovalDecision] = []
    approver_ids: list[str] = []
    connection: ConnectionSettings | None = None
    for number in range(1, approvers_needed + 1):
        question_key = f"{key}-{plan.hash[:12]}-{number}"
        announce_approval_wait(plan, key=question_key, requester=requester,
                               handoff_policy=handoff.policy_name if handoff else None,
                               approvers_left=approvers_needed - number + 1)
        decision = _ask(description, plan.hash, question_key, timeout_s, poll_interval_s)
        _record(
            plan,
            "approval-answered",
            requester=requester,
            approver=decision.approver,
            approve=decision.approve,
            comment=decision.comment,
            key=question_key,
        )
        if not decision.approve:
            raise ApprovalRejected(
                f"{decision.approver} rejected the plan {plan.hash[:12]}"
                + (f": {decision.comment}" if decision.comment else "")
            )
        if decision.plan_hash != plan.hash:
            raise ApprovalRejected(
                f"{decision.approver} approved plan {decision.plan_hash[:12]}, but the plan "
                f"to run is {plan.hash[:12]}; nothing was changed — run again and approve "
                "the plan shown"
            )
        if confirm_text is not None and (decision.confirmation or "").strip() != confirm_text:
            raise ApprovalRejected(
                f"{decision.approver} typed {decision.confirmation!r} as confirmation, not "
                f"{confirm_text!r}; nothing was changed"
            )
        approver_id = identities.object_id(decision.approver)
        if approver_id == requester_id:
            raise SeparationOfDutyError(
                f"{decision.approver} requested this run and cannot approve it; ask a second administrator"
            )
        if approver_id in approver_ids:
            raise SeparationOfDutyError(
                f"{decision.approver} already approved; {approvers_needed} distinct approvers are required"
            )
        if handoff is not None:
            connection = _check_handoff(decision, approver_id, requester_id, handoff, identities)
        decisions.append(decision)
        approver_ids.append(approver_id)
    _record(
        plan,
        "approval-granted",
        requester=requester,
        approvers=[d.approver for d in decisions],
        comments=[d.comment for d in decisions],
    )
    return Approval(plan=plan, decisions=decisions, approver_ids=approver_ids, connection=connection)


def _check_handoff(
    decision: ApprovalDecision,
    approver_id: str,
    requester_id: str,
    handoff: PowerPlatformHandoff,
    identities: IdentityResolver,
) -> ConnectionSettings:
    if not decision.connection_block:
        raise SeparationOfDutyError(
            f"{decision.approver} approved the Power Platform half without naming a connection block; the "
            "half runs with the approver's own CmkConnection (field connection_block)"
        )
    connection = handoff.load_connection(decision.connection_block)
    principal_id = connection_principal(connection)
    if principal_id not in (approver_id, identities.object_id(principal_id)) or principal_id == requester_id:
        raise SeparationOfDutyError(
            f"connection block {decision.connection_block!r} signs in as {principal_id}, not as the approver "
            f"{decision.approver}; name a connection that signs in as you"
        )
    if not handoff.has_policy_reader(principal_id):
        raise SeparationOfDutyError(
            f"{decision.approver} has no Reader role on the enterprise policy {handoff.policy_name}; "
            "the Key Vault admin grants it (role acdd72a7-3385-48ef-bd42-f606fba81ae7), then run again"
        )
    return connection


def can_suspend() -> bool:
    """Whether this flow run may suspend (free its process until resumed): only a top-level deployment run
    can, because only a deployment can start it again. Approvals and parked link/unlink waits both ask."""
    run = FlowRunContext.get()
    return (
        run is not None
        and run.flow_run is not None
        and bool(run.flow_run.deployment_id)
        and run.flow_run.parent_task_run_id is None
    )


def _ask(
    description: str, plan_hash: str, key: str, timeout_s: int, poll_interval_s: float
) -> ApprovalDecision:
    if can_suspend():
        form = ApprovalDecision.with_initial_data(description=description, plan_hash=plan_hash, approve=False)
        return suspend_flow_run(wait_for_input=form, timeout=timeout_s, key=key)
    state = await_approval(description, plan_hash, key, timeout_s, poll_interval_s, return_state=True)
    if not state.is_completed():
        raise ApprovalRejected(
            f"no answer to approval {key} within {timeout_s} s; treated as rejected, nothing was changed"
        )
    return ApprovalDecision.model_validate(state.result())


def _description(
    plan: Plan, handoff: PowerPlatformHandoff | None, confirm_text: str | None, approvers_needed: int
) -> str:
    asks = [f"Approve plan `{plan.hash[:12]}` (leave **plan_hash** as pre-filled)."]
    if handoff is not None:
        asks.append(
            "You will run the **Power Platform half**: name your own CmkConnection block in "
            "**connection_block**; you need Reader on the enterprise policy."
        )
    if confirm_text is not None:
        asks.append(f"Type the policy name `{confirm_text}` in **confirmation**.")
    if approvers_needed > 1:
        asks.append(f"{approvers_needed} distinct approvers are required; each answers in turn.")
    return plan.summary_markdown() + "\n\n---\n" + " ".join(asks)


def _record(plan: Plan, event: str, **details: object) -> None:
    audit.record({"event": event, "procedure": plan.procedure, "plan_hash": plan.hash, **details})

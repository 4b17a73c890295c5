"""The forms an approver answers in the Prefect UI ("Resume"), one per kind of hand-off, and the plan text
Prefect renders above their fields.

Every rule a form states is JSON-schema expressible (a required Approve/Reject choice, the proof, a
pre-filled plan hash), so the Prefect server refuses a malformed answer before the run sees it. Whether the
answer is *acceptable* (whose proof, their roles, separation of duty, Reader, the confirmation) is judged by
the flow in `ppcmk.approvals.gate`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import ConfigDict, Field, create_model

from ppcmk.models.findings import Severity
from ppcmk.safety.plan import Plan, PlanItem, artifact_key

FormKind = Literal["plan", "handoff", "lock"]
HASH_PATTERN = r"^[0-9a-f]{64}$"
REQUEST = "x-ppcmk-request"  # schema keyword: the request in fields (deadline, requester, environments)
MAX_LISTED = 12  # per section of the description; the plan artifact has the rest

PROOF_HELP = ("A fresh sign-in as yourself: `ppcmk approve RUN_ID` fills it in, or paste the proof the "
              "sign-in page shows. It is checked, used once and then removed from the run")


class PlanApproval(RunInput):
    """Approve or reject one plan (revert, cleanup)."""

    decision: Literal["approve", "reject"] = Field(
        title="Decision", description="approve runs exactly this plan; reject ends the run Rejected"
    )
    proof: str = Field(max_length=20000, title="Your proof", description=PROOF_HELP,
                       json_schema_extra={"format": "password"})
    comment: str = Field(
        default="", max_length=2000, title="Comment", description="e.g. change ticket CHG-1234"
    )
    plan_hash: str = Field(
        pattern=HASH_PATTERN, title="Plan hash", description="The plan you answer (pre-filled: leave it)"
    )


class HandoffApproval(PlanApproval):
    """Approve the Power Platform half (onboard, change_policy, migrate_byok), which its own identity runs."""


class LockApproval(PlanApproval):
    """One of the two approvals of a lock: typing the policy name confirms what is revoked."""

    confirmation: str = Field(
        min_length=1, title="Confirmation", description="Type the enterprise policy name to confirm the lock"
    )


FORMS: dict[FormKind, type[PlanApproval]] = {
    "plan": PlanApproval,
    "handoff": HandoffApproval,
    "lock": LockApproval,
}


def form_for(kind: FormKind, request: dict[str, Any]) -> type[PlanApproval]:
    """The form of `kind` with `request` in its schema (for the CLI and the waker)."""
    base = FORMS[kind]
    form = create_model(base.__name__, __base__=base)
    form.model_config = ConfigDict(**{**base.model_config, "json_schema_extra": {REQUEST: request}})
    form.model_rebuild(force=True)
    return form


def read_answer(kind: FormKind, answer: dict[str, Any]) -> PlanApproval:
    """An answer read back with the plain form."""
    return FORMS[kind].model_validate(answer)


@dataclass(frozen=True)
class FormText:
    """What the description says beyond the plan itself."""

    requester: str  # "Key Vault Admin (kv-admin@contoso.example)"
    who_may_approve: str
    answer_by: datetime
    ask: str  # the one thing to do, e.g. "approver 2 of 2: type the policy name"
    plan_link: str | None  # the plan table artifact in the UI, when its address is known
    refused: str = ""  # why the previous answer was not accepted
    how_to_prove: str = ""  # the command to run, or the sign-in page to open


def describe(plan: Plan, text: FormText) -> str:
    """The markdown Prefect shows above the form: short, structured, names before ids. Its first lines are
    what a hurried approver must see without scrolling the description's box: what they decide (what changes,
    how many outages), who asks and until when, how to prove who they are; the details follow, the full table
    one link away."""
    lines = [f"### {plan.procedure}: {plan.target_summary}"]
    if text.refused:
        lines.append(f"> **The last answer was refused:** {text.refused}. Answer again.\n")
    lines += [
        f"**You decide:** {decision_summary(plan)}. *approve* runs exactly this plan, *reject* ends the run "
        "Rejected  ",
        f"**Requested by** {text.requester} · **answer by** {text.answer_by:%Y-%m-%d %H:%M} UTC, else the "
        "run ends *Expired*  ",
    ]
    if text.how_to_prove:
        lines.append(f"**Prove who you are:** {text.how_to_prove}  ")
    to_do = f"  \n**To do:** {text.ask}" if text.ask else ""
    lines.append(f"**May approve:** {text.who_may_approve}{to_do}")
    lines += _environments(plan) + _other_changes(plan) + _holds(plan) + _findings(plan)
    table = f"[plan table]({text.plan_link})" if text.plan_link else f"artifact `{plan_table_key(plan)}`"
    lines += ["", f"**Plan** `{plan.hash[:12]}` (full hash pre-filled below) · every step: {table}"]
    return "\n".join(lines)


def decision_summary(plan: Plan, named: int = 3) -> str:
    """'2 of 3 environments change (Contoso Production, Contoso Sandbox), 2 outage windows'."""
    environments = [i for i in plan.items if i.kind == "environment"]
    if not environments:
        return f"{len(plan.changes)} change(s), no environment offline"
    changing = [i.name or i.detail or i.target for i in environments if i.changes]
    more = f" and {len(changing) - named} more" if len(changing) > named else ""
    listed = f" ({', '.join(changing[:named])}{more})" if changing else ""
    return (f"{len(changing)} of {len(environments)} environment(s) change{listed}, "
            f"{len(plan.outages)} outage window(s)")


def environment_label(item: PlanItem) -> str:
    name = item.name or (item.detail if item.kind == "environment" else "")
    return f"**{name}** (`{item.target}`)" if name else f"`{item.target}`"


def _environments(plan: Plan) -> list[str]:
    environments = [i for i in plan.items if i.kind == "environment"]
    if not environments:
        return []
    changing = [i for i in environments if i.changes]
    lengths = {o.expected_duration for o in plan.outages}
    each = f", each {next(iter(lengths))}" if len(lengths) == 1 else ""
    affected = len({o.environment_id for o in plan.outages})
    lines = [
        "",
        f"**Environments: {len(changing)} changed of {len(environments)}** · {len(plan.outages)} "
        f"outage window(s) across {affected} environment(s){each}",
    ]
    order = {id(o): n for n, o in enumerate(plan.outages, start=1)}
    for item in sorted(environments, key=lambda i: not i.changes)[:MAX_LISTED]:
        windows = sorted(plan.outages_of(item.target), key=lambda o: o.sequence)
        outages = "; then ".join(
            f"Outage #{order[id(o)]} of {len(plan.outages)}: {o.cause}"
            + ("" if each else f", {o.expected_duration}")
            for o in windows
        )
        name = item.name or item.detail
        note = f" ({item.detail})" if item.detail and item.detail != name else ""
        lines.append(
            f"- {environment_label(item)}: {item.action}{note}." + (f" {outages}" if outages else "")
        )
    return lines + _more(len(environments))


def _other_changes(plan: Plan) -> list[str]:
    others = [i for i in plan.items if i.kind != "environment"]
    if not others:
        return []
    lines = ["", f"**Other steps: {sum(i.changes for i in others)} change(s) of {len(others)}**"]
    lines += [f"- {i.kind} `{i.target}`: {i.action}" + (f" ({i.detail})" if i.detail else "")
              for i in others[:MAX_LISTED]]
    return lines + _more(len(others))


def _more(count: int) -> list[str]:
    return [f"- … {count - MAX_LISTED} more in the plan table"] if count > MAX_LISTED else []


def _holds(plan: Plan) -> list[str]:
    if not plan.holds:
        return []
    return ["", "**Holds this run records**"] + [
        f"- {h.subject}: {h.days} days ({h.reason})" for h in plan.holds
    ]


def _findings(plan: Plan) -> list[str]:
    counts = Counter(f.severity for f in plan.findings)
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Severity if counts[s]) or "none"
    lines = ["", f"**Findings:** {summary}"]
    serious = sorted((f for f in plan.findings if f.severity != Severity.INFO), key=lambda f: f.severity.rank)
    lines += [f"- {f.severity.value} `{f.check}` {f.subject}: {f.message}" for f in serious[:MAX_LISTED]]
    return lines


def plan_table_key(plan: Plan) -> str:
    """The artifact key of the plan's step table (linked from the form)."""
    return f"{artifact_key(plan.procedure, 'plan')}-table"

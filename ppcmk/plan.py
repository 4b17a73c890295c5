"""What a runbook intends to do, shown before it does it, and the hash an approval is bound to.

A plan is computed from the world as read from the cloud. Its `hash` covers only world-relevant content
(what changes, on which object, with which outage), never timestamps, so re-planning an unchanged world
yields the same hash and an approval of that hash still applies.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from ppcmk.errors import PpcmkError
from ppcmk.findings import Finding, Severity

OutcomeStatus = Literal["completed", "partial", "rejected", "expired", "dry-run", "nothing-to-do"]


class PlanItem(BaseModel):
    """One intended change (or a deliberate no-op) on one object."""

    target: str = Field(description="environment id, or the object's name (vault/key, policy, role scope)")
    name: str = Field(default="", description="what a person calls the target (its display name)")
    kind: str = Field(description="environment | key | vault | policy | role-assignment | provider | hold")
    action: str = Field(description="what happens, e.g. 'link to policy cmk-eu', 'create key', 'none'")
    detail: str = ""
    changes: bool = True


class OutageWindow(BaseModel):
    """A period when an environment is disabled by the service (link and unlink each cause one)."""

    environment_id: str
    sequence: int = Field(ge=1, description="1 for the first window of this environment, 2 for the second")
    cause: str
    expected_duration: str = "minutes to hours (up to 4 days for large environments)"


class PlannedHold(BaseModel):
    """A hold window the run will record when it applies (e.g. 28 days on the previous key version)."""

    subject: str
    days: int
    reason: str


class PlanHasErrors(PpcmkError):
    """The plan found blocking problems; nothing was changed."""

    def __init__(self, procedure: str, errors: list[Finding]) -> None:
        self.errors = errors
        listed = "\n".join(
            f"- [{e.check}] {e.subject}: {e.message}" + (f" Fix: {e.fix}" if e.fix else "") for e in errors
        )
        super().__init__(f"{procedure}: the plan has {len(errors)} error(s); nothing was changed:\n{listed}")


class Plan(BaseModel):
    procedure: str
    requester: str
    target_summary: str
    items: list[PlanItem] = Field(default_factory=list)
    outages: list[OutageWindow] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    holds: list[PlannedHold] = Field(default_factory=list)

    @property
    def hash(self) -> str:
        """SHA-256 over what the plan would do to the world; requester and wording of findings excluded."""
        content = {
            "procedure": self.procedure,
            "target": self.target_summary,
            "items": [item.model_dump(exclude={"name"}) for item in self.items],
            "outages": [o.model_dump(exclude={"expected_duration"}) for o in self.outages],
            "findings": sorted(
                (f.severity.value, f.check, f.subject) for f in self.findings if f.severity != Severity.INFO
            ),
            "holds": [h.model_dump() for h in self.holds],
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def changes(self) -> list[PlanItem]:
        return [item for item in self.items if item.changes]

    def add_findings(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PlanHasErrors(self.procedure, self.errors)

    def outages_of(self, environment_id: str) -> list[OutageWindow]:
        return [o for o in self.outages if o.environment_id == environment_id]

    def summary_markdown(self) -> str:
        lines = [
            f"## {self.procedure}: plan `{self.hash[:12]}`",
            "",
            f"**Target:** {self.target_summary}  ",
            f"**Requested by:** `{self.requester}`  ",
            f"**Plan hash:** `{self.hash}`",
            "",
            f"**Changes:** {len(self.changes)} · **Outage windows:** {len(self.outages)} "
            f"across {len({o.environment_id for o in self.outages})} environment(s)",
        ]
        if self.findings:
            lines += ["", "### Findings"]
            lines += [
                f"- **{f.severity.value}** `{f.check}` {f.subject}: {f.message}"
                + (f" — *fix:* {f.fix}" if f.fix else "")
                for f in self.findings
            ]
        if self.holds:
            lines += ["", "### Holds recorded by this run"]
            lines += [f"- {h.subject}: {h.days} days ({h.reason})" for h in self.holds]
        lines += ["", "### Steps"]
        lines += [
            f"{n}. `{item.target}` ({item.kind}): {item.action}"
            + (f" — {item.detail}" if item.detail else "")
            for n, item in enumerate(self.items, start=1)
        ]
        return "\n".join(lines)

    def table_rows(self) -> list[dict[str, str]]:
        rows = []
        for item in self.items:
            windows = self.outages_of(item.target) if item.kind == "environment" else []
            rows.append(
                {
                    "target": item.target,
                    "kind": item.kind,
                    "action": item.action,
                    "detail": item.detail,
                    "outage windows": "; ".join(f"#{w.sequence}: {w.cause}" for w in windows) or "none",
                }
            )
        return rows

    def publish(self) -> None:
        """Publish the plan on the current flow run (markdown summary + table)."""
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        key = artifact_key(self.procedure, "plan")
        create_markdown_artifact(markdown=self.summary_markdown(), key=key, description="Plan summary")
        create_table_artifact(
            table=self.table_rows(), key=f"{key}-table", description=f"Plan {self.hash[:12]}: each step"
        )


class RunOutcome(BaseModel):
    """What a flow returns: a Completed run whose `status` tells apart done, rejected and dry-run."""

    procedure: str
    status: OutcomeStatus
    plan_hash: str
    message: str = ""
    approvers: list[str] = Field(default_factory=list)
    rows: list[dict[str, Any]] = Field(default_factory=list)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower())).strip("-")


def publish_table(rows: list[dict[str, Any]], *key_parts: str, description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        table=rows or [{"result": "nothing to report"}], key=artifact_key(*key_parts), description=description
    )

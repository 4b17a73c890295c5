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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact

from ppcmk.errors import PpcmkError
from ppcmk.models.arm_ids import short_id
from ppcmk.models.findings import Finding, Severity
from ppcmk.services.people import person

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
            f"- [{e.check}] {short_id(e.about)}: {short_id(e.message)}"
            + (f" Fix: {e.fix}" if e.fix else "")
            for e in errors
        )
        super().__init__(f"{procedure}: the plan has {len(errors)} error(s); nothing was changed:\n{listed}")


DRY_RUN = "dry run — nothing was changed"


class Plan(BaseModel):
    procedure: str
    requester: str
    target_summary: str
    items: list[PlanItem] = Field(default_factory=list)
    outages: list[OutageWindow] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    holds: list[PlannedHold] = Field(default_factory=list)
    # how it is shown, not what it does (outside the hash): a dry run's plan is the real run's, word for
    # word
    dry_run: bool = Field(default=False, description="the plan of a dry run: shown, never applied")

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

    def summary_markdown(self, steps: bool = True) -> str:
        """The plan in words: who asked, what changes, with what outages and holds. A dry run's says so
        first and speaks of what a run would do."""
        would = self.dry_run
        lines = [
            f"## {self.procedure}: {DRY_RUN} · plan `{self.hash[:12]}`" if would
            else f"## {self.procedure}: plan `{self.hash[:12]}`",
            "",
            *([f"**{DRY_RUN.capitalize()}:** this is what the run would do without dry_run.", ""]
              if would else []),
            f"**Target:** {self.target_summary}  ",
            f"**Requested by:** {person(self.requester)}  ",
            f"**Plan hash:** `{self.hash}`",
            "",
            f"**{'Would change' if would else 'Changes'}:** {len(self.changes)} · "
            f"**{'Outage windows it would cause' if would else 'Outage windows'}:** {len(self.outages)} "
            f"across {len({o.environment_id for o in self.outages})} environment(s)",
        ]
        if self.findings:
            lines += ["", "### Findings"]
            lines += [
                f"- **{f.severity.value}** `{f.check}` {short_id(f.about)}: {short_id(f.message)}"
                + (f" — *fix:* {short_id(f.fix)}" if f.fix else "")
                for f in self.findings
            ]
        if self.holds:
            lines += ["", "### Holds this run would record (none is recorded: a dry run)" if would
                      else "### Holds this run records when it applies"]
            lines += [f"- {short_id(h.subject)}: {h.days} days ({h.reason})" for h in self.holds]
        if not steps:
            return "\n".join(lines)
        lines += ["", "### Steps it would take" if would else "### Steps"]
        lines += [
            f"{n}. `{short_id(item.target)}` ({item.kind}): {item.action}"
            + (f" — {item.detail}" if item.detail else "")
            for n, item in enumerate(self.items, start=1)
        ]
        return "\n".join(lines)

    def table_rows(self) -> list[dict[str, str]]:
        """One row per step, in the order an admin reads it: what, what changes, the outage; the id last."""
        rows = []
        for item in self.items:
            environment = item.kind == "environment"
            windows = self.outages_of(item.target) if environment else []
            named = environment and bool(item.detail)
            rows.append(
                {
                    "name": item.detail if named else item.target,
                    "type": item.kind,
                    "what changes": item.action,
                    "outage windows": "; ".join(f"#{w.sequence}: {w.cause}" for w in windows) or "none",
                    "detail": "" if named else item.detail,
                    "id": item.target if named else "",
                }
            )
        return rows

    def publish(self) -> None:
        """Publish the plan on the current flow run as ONE table artifact: the steps under the summary.

        A re-plan (another hash) updates that artifact in place; a run resumed from a suspension finds its
        plan already shown and leaves it. The key is the runbook's, so the Artifacts page shows its latest."""
        from prefect.artifacts import create_table_artifact
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()  # a run started with dry_run shows its plan as a dry run's
        parameters = (context.parameters or {}) if context is not None else {}
        self.dry_run = self.dry_run or bool(parameters.get("dry_run"))
        key = artifact_key(self.procedure, "plan")
        table = self.table_rows() or [{"result": "no steps"}]
        description = self.summary_markdown(steps=False)
        shown = _this_runs_artifact(key)
        if shown is None:
            create_table_artifact(table=table, key=key, description=description)
        elif self.hash not in (shown.description or ""):
            with get_client(sync_client=True) as client:
                update = ArtifactUpdate(data=json.dumps(table), description=description)
                client.update_artifact(shown.id, update)


def _this_runs_artifact(key: str) -> Artifact | None:
    """The artifact with this key the current flow run published, if any."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[context.flow_run.id]),
                          key=ArtifactFilterKey(any_=[key]))
    with get_client(sync_client=True) as client:
        published = client.read_artifacts(artifact_filter=mine, limit=1)
    return published[0] if published else None


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


# Result columns an admin reads first, in this order; the rest follow as given, identifiers last.
READING_ORDER = ("name", "display_name", "type", "sku", "kind", "geo", "what changes", "action", "wave",
                 "outage", "outage windows", "state", "now", "link_status", "policy", "key", "version")


def reading_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their columns reordered for a person: names and what changed first, ids last; values
    that are objects are written out as one line."""
    if not rows:
        return rows
    columns = list(dict.fromkeys(name for row in rows for name in row))

    def rank(column: str) -> tuple[int, int]:
        if column in READING_ORDER:
            return 0, READING_ORDER.index(column)
        identifier = column == "id" or column.endswith("_id") or column.endswith("hash")
        return (2 if identifier else 1), columns.index(column)

    ordered = sorted(columns, key=rank)
    return [{name: _flat(row.get(name, "")) for name in ordered} for row in rows]


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), default=str) if value else ""
    return "" if value is None else value


def publish_table(rows: list[dict[str, Any]], *key_parts: str, description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(table=reading_order(rows) or [{"result": "nothing to report"}],
                          key=artifact_key(*key_parts), description=description)

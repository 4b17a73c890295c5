"""What an evidence pack holds: one model, written as the pack's JSON file and drawn as its HTML page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

DEFAULT_PERIOD = timedelta(days=365)


class Period(BaseModel):
    start: datetime
    end: datetime

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        return (start is None or start <= self.end) and (end is None or end >= self.start)


class Scope(BaseModel):
    """The whole tenant, one enterprise policy, or a set of environments (ids or names)."""

    policy: str | None = None
    environments: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        if self.policy:
            return f"enterprise policy {self.policy}"
        if self.environments:
            return f"environments {', '.join(self.environments)}"
        return "the whole tenant"


class ChainCheck(BaseModel):
    """The audit chain's verification when the pack was built."""

    store: str
    entries: int
    intact: bool
    problems: list[str] = Field(default_factory=list)
    last_seq: int = 0
    last_hash: str = ""


class Approver(BaseModel):
    """One approver's answer and whatever the audit entry holds about who they are and how that was proven."""

    approver: str
    decision: str
    at: datetime | None = None
    proof: dict[str, str] = Field(default_factory=dict)


class Change(BaseModel):
    """One runbook run that changed (or meant to change) something, from its audit entries."""

    procedure: str
    run: str
    started: datetime
    finished: datetime
    requester: str = ""
    approvers: list[Approver] = Field(default_factory=list)
    plan_hash: str = ""
    outcome: str
    subjects: list[str] = Field(default_factory=list, description="environments, keys, policies, by name")
    entries: list[int] = Field(default_factory=list, description="audit sequence numbers")


class Mark(BaseModel):
    """A moment on a timeline lane."""

    at: datetime
    kind: str  # version | rotation | expiry | hold | pickup | revert | lock | unlock | change
    label: str


class Span(BaseModel):
    """A stretch on a timeline lane; `end` None: still so at the period's end."""

    start: datetime
    end: datetime | None
    kind: str  # version | hold | cmk | outage | lock
    label: str


class Lane(BaseModel):
    """One row of a timeline: a key or an environment."""

    name: str
    object_id: str
    detail: str = ""
    spans: list[Span] = Field(default_factory=list)
    marks: list[Mark] = Field(default_factory=list)


class PickupRow(BaseModel):
    environment: str
    environment_id: str
    key: str
    version: str
    created: datetime
    due: datetime
    picked_up: datetime | None
    status: Literal["picked-up", "pending", "missing"]


class CoveragePoint(BaseModel):
    at: datetime
    on_cmk: int
    not_on_cmk: int


class Control(BaseModel):
    """A control with what shows it holds (or not), now."""

    object: str
    control: str
    value: str
    ok: bool
    evidence: str = ""


class RoleHolder(BaseModel):
    scope: str  # the vault's or the policy's name
    role: str
    principal: str  # by name when the directory tells it
    principal_id: str


class FindingSpan(BaseModel):
    kind: str
    severity: str
    object: str
    object_id: str
    since: datetime | None
    resolved: datetime | None
    message: str = ""
    fix: str = ""


class EstateRow(BaseModel):
    name: str
    environment_id: str
    sku: str
    state: str
    key_managed_by: str
    policy: str = ""
    key: str = ""
    on_cmk: bool
    encrypted_since: str = ""
    note: str = ""


class ManifestEntry(BaseModel):
    file: str
    bytes: int
    sha256: str


class EvidencePack(BaseModel):
    """Everything the pack says; the JSON file is this model, the HTML and the PDF draw it."""

    title: str
    tenant_id: str
    subscription_id: str
    generated_at: datetime
    period: Period
    scope: Scope
    chain: ChainCheck
    changes: list[Change] = Field(default_factory=list)
    keys: list[Lane] = Field(default_factory=list)
    environments: list[Lane] = Field(default_factory=list)
    pickups: list[PickupRow] = Field(default_factory=list)
    coverage: list[CoveragePoint] = Field(default_factory=list)
    controls: list[Control] = Field(default_factory=list)
    roles: list[RoleHolder] = Field(default_factory=list)
    findings: list[FindingSpan] = Field(default_factory=list)
    estate: list[EstateRow] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

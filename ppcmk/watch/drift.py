"""Drift: what watch found wrong with the estate, and what changed since the previous run.

A `Drift` is one finding about one object: its kind (`key.expiry`, `env.locked`, ...), severity, tier (a
finer step inside a severity: the 60- and 30-day expiry warnings, the days left of a lock), since when, and
the fix (the runbook with its parameters, or the `az` command). `changes(previous, current)` compares a run
with the state the previous run left (kept in the Prefect server) and yields only what appeared, changed
severity or tier, or resolved, so an hourly watch does not repeat itself. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

EVENT_PREFIX = "ppcmk.drift"


class DriftSeverity(StrEnum):
    CRITICAL = "critical"  # environments are down, or will be deleted: act now
    ERROR = "error"  # something the runbooks or the environments depend on is broken
    WARNING = "warning"  # works today, breaks later (expiry, overdue rotation)
    INFO = "info"  # worth knowing (a hold ends, cleanup becomes possible)

    @property
    def rank(self) -> int:
        return list(DriftSeverity).index(self)


class Drift(BaseModel):
    kind: str = Field(description="stable id, e.g. key.expiry; the event is ppcmk.watch.drift.<kind>")
    severity: DriftSeverity
    tier: str = Field(default="", description="finer step inside the severity, e.g. 30d")
    object: str = Field(description="the object by name (what a person reads)")
    object_id: str = Field(description="its id (ARM id, environment id)")
    object_type: str = Field(description="vault | key | key-version | policy | environment | desired-state")
    since: datetime | None = Field(default=None, description="when the condition began, if known")
    until: datetime | None = Field(default=None, description="when it ends, e.g. a lock's deletion")
    message: str
    fix: str
    replaces: str = Field(default="", description="the kind of an earlier finding on the same object that "
                                                  "this one carries on (never reported resolved)")

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.object_id.lower()}"

    @property
    def level(self) -> str:
        return f"{self.severity.value}:{self.tier}" if self.tier else self.severity.value

    @property
    def event(self) -> str:
        return f"{EVENT_PREFIX}.{self.kind}"


class Remembered(BaseModel):
    """What the state keeps of a finding between runs."""

    kind: str
    object: str
    object_id: str
    object_type: str
    severity: DriftSeverity
    tier: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def level(self) -> str:
        return f"{self.severity.value}:{self.tier}" if self.tier else self.severity.value

    @classmethod
    def of(cls, drift: Drift) -> Remembered:
        return cls(kind=drift.kind, object=drift.object, object_id=drift.object_id,
                   object_type=drift.object_type, severity=drift.severity, tier=drift.tier, since=drift.since,
                   until=drift.until)


class WatchState(BaseModel):
    """The open findings of the last run, by `Drift.key`."""

    checked_at: datetime | None = None
    open: dict[str, Remembered] = Field(default_factory=dict)

    @classmethod
    def of(cls, checked_at: datetime, drifts: Iterable[Drift]) -> WatchState:
        return cls(checked_at=checked_at, open={d.key: Remembered.of(d) for d in drifts})


ChangeKind = Literal["appeared", "changed", "resolved"]


class DriftChange(BaseModel):
    change: ChangeKind
    kind: str
    object: str
    object_id: str
    object_type: str
    severity: DriftSeverity | None = Field(description="None when resolved")
    tier: str = ""
    previous_level: str | None = None
    since: datetime | None = None
    message: str = ""
    fix: str = ""

    @property
    def event(self) -> str:
        return f"{EVENT_PREFIX}.{self.kind}"


def with_since(drifts: Sequence[Drift], previous: WatchState, now: datetime) -> list[Drift]:
    """Give every finding its start: its own when a fact says it, else when a run first saw it, else now."""
    dated = []
    for drift in drifts:
        if drift.since is None:
            seen = previous.open.get(drift.key)
            drift = drift.model_copy(update={"since": seen.since if seen and seen.since else now})
        dated.append(drift)
    return dated


def changes(previous: WatchState, current: Sequence[Drift]) -> list[DriftChange]:
    """What appeared, changed level, or resolved since the previous run (nothing for a repeat). A finding
    that carries on an earlier one (`replaces`: a locked environment now deleted) is a change of that one,
    which is therefore never reported resolved."""
    found: list[DriftChange] = []
    now_open = {d.key: d for d in current}
    for key, drift in now_open.items():
        before = previous.open.get(key) or previous.open.get(f"{drift.replaces}|{drift.object_id.lower()}")
        if before is not None and before.kind == drift.kind and before.level == drift.level:
            continue
        found.append(DriftChange(
            change="appeared" if before is None else "changed", kind=drift.kind, object=drift.object,
            object_id=drift.object_id, object_type=drift.object_type, severity=drift.severity,
            tier=drift.tier, previous_level=before.level if before else None, since=drift.since,
            message=drift.message, fix=drift.fix))
    carried_on = {f"{d.replaces}|{d.object_id.lower()}" for d in current if d.replaces}
    for key, before in previous.open.items():
        if key not in now_open and key not in carried_on:
            found.append(DriftChange(
                change="resolved", kind=before.kind, object=before.object, object_id=before.object_id,
                object_type=before.object_type, severity=None, previous_level=before.level,
                since=before.since, message=f"{before.kind} on {before.object} is resolved"))
    return found


def ordered(drifts: Iterable[Drift]) -> list[Drift]:
    """Most severe first, then by object and kind; one per (kind, object)."""
    unique = {d.key: d for d in drifts}
    return sorted(unique.values(), key=lambda d: (d.severity.rank, d.object.lower(), d.kind))


def worst(drifts: Iterable[Drift]) -> DriftSeverity | None:
    ranked = sorted((d.severity for d in drifts), key=lambda s: s.rank)
    return ranked[0] if ranked else None


def table_rows(drifts: Sequence[Drift], now: datetime) -> list[dict[str, str]]:
    """The estate's health as table rows (the artifact and the CLI table)."""
    return [
        {
            "severity": d.severity.value + (f" ({d.tier})" if d.tier else ""),
            "kind": d.kind,
            "object": d.object,
            "since": d.since.strftime("%Y-%m-%d %H:%M") if d.since else "",
            "for": _age(now, d.since),
            "finding": d.message,
            "fix": d.fix,
        }
        for d in drifts
    ]


def _age(now: datetime, since: datetime | None) -> str:
    if since is None:
        return ""
    seconds = max((now - since).total_seconds(), 0)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h"

"""Timelines from what was read: each key's versions, holds, rotations and expiry; each environment's time on
a customer-managed key, outages, locks, pickups of new versions and a platform revert; coverage over time; the
current estate. Pure: the cloud is read by `tasks.evidence`.

An environment's history comes from its lifecycle operations (a link or unlink is an outage from its start
to its end; the environment is on the customer-managed key from a link's end to an unlink's end) and from
the audit chain (a lock from the lock runbook's end until the unlock runbook's end or the environment's
re-enabling). Before its first operation in the period an environment is taken to have been as its first
operation found it (an unlink: on the key; a link: not).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ppcmk.audit.trail import entry_time
from ppcmk.checks.byok import byok_note, reverted_at
from ppcmk.evidence.changes import departures
from ppcmk.evidence.model import CoveragePoint, EstateRow, FindingSpan, Lane, Mark, Period, PickupRow, Span
from ppcmk.models.environments import Environment, EnvironmentOperation
from ppcmk.watch.estate import EstateFacts, KeyFact, OperationFact, PolicyFact
from ppcmk.watch.rotation_pickup import pickup

LINK, UNLINK, REENABLE, ROTATE = ("newcustomermanagedkey", "reverttomicrosoftkey", "enableenvironment",
                                  "rotatecustomermanagedkey")


@dataclass
class Reading:
    """What the pack is made from: the estate now, the environments as listed, the lifecycle operations of
    the environments with a history, and the audit chain's entries."""

    facts: EstateFacts
    listed: list[Environment]
    operations: dict[str, list[EnvironmentOperation]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    tenant_id: str = ""
    subscription_id: str = ""
    locked_findings: list[FindingSpan] = field(default_factory=list)  # env.locked, as watch recorded them

    def policy_name(self, policy_id: str | None) -> str:
        policy = self.facts.policy(policy_id)
        return policy.name if policy else (policy_id or "").rstrip("/").rsplit("/", 1)[-1]


def as_facts(operations: Iterable[EnvironmentOperation]) -> list[OperationFact]:
    return [OperationFact(name=o.name or "", status=o.status, start_time=o.start_time, end_time=o.end_time)
            for o in operations]


def _done(operation: EnvironmentOperation, name: str) -> bool:
    return (operation.name or "").lower() == name and operation.status.lower() == "succeeded"


# ------------------------------------------------------------------------------------------------- keys


def key_lane(key: KeyFact, policies: list[PolicyFact], entries: list[dict[str, Any]]) -> Lane:
    """Versions (each until the next one was created), holds, rotations, expiry."""
    lane = Lane(name=key.label, object_id=f"{key.vault_id}/keys/{key.name}",
                detail="used by " + (", ".join(p.name for p in policies) or "no policy"))
    oldest_first = list(reversed(key.versions))
    for index, version in enumerate(oldest_first):
        if version.created_on is None:
            continue
        following = oldest_first[index + 1].created_on if index + 1 < len(oldest_first) else None
        state = "current" if version.version == key.current_version else \
            "enabled" if version.enabled else "disabled"
        lane.spans.append(Span(start=version.created_on, end=following, kind="version",
                               label=f"version {version.version[:8]} ({state})"))
        lane.marks.append(Mark(at=version.created_on, kind="version",
                               label=f"version {version.version[:8]} created"))
        if version.hold_until and following:
            until = f"{version.hold_until:%Y-%m-%d}"
            lane.spans.append(Span(start=following, end=version.hold_until, kind="hold",
                                   label=f"hold on {version.version[:8]} until {until}"))
        if version.expires_on:
            lane.marks.append(Mark(at=version.expires_on, kind="expiry",
                                   label=f"version {version.version[:8]} expires"))
    for entry in entries:
        event = entry.get("event") or {}
        if event.get("event") == "rotation" and str(event.get("key", "")).lower() == key.name.lower():
            lane.marks.append(Mark(at=entry_time(entry), kind="rotation",
                                   label=f"rotate run, asked by {event.get('requester') or 'the schedule'}"))
    return lane


# ----------------------------------------------------------------------------------------- environments


def _locks(env_id: str, entries: list[dict[str, Any]]) -> list[tuple[str, datetime]]:
    """("lock" | "unlock", when) of the lock and unlock runs that named the environment, in order."""
    found = []
    for entry in entries:
        event = entry.get("event") or {}
        name = str(event.get("event", ""))
        if name not in ("lock-finished", "unlock-finished"):
            continue
        if any(isinstance(i, dict) and str(i.get("environment_id", "")).lower() == env_id.lower()
               for i in event.get("environments") or []):
            found.append((name.removesuffix("-finished"), entry_time(entry)))
    return found


def environment_lane(env: Environment, reading: Reading, period: Period) -> Lane:
    operations = sorted(reading.operations.get(env.id, []), key=lambda o: o.start_time or period.start)
    current = reading.policy_name(env.cmk.policy_id) if env.cmk else ""
    lane = Lane(name=env.display_name or env.id, object_id=env.id, detail=f"{env.sku or ''}")
    moves = [o for o in operations if _done(o, LINK) or _done(o, UNLINK)]
    on_since: datetime | None = period.start if moves and _done(moves[0], UNLINK) else None
    for operation in operations:
        start, end = operation.start_time, operation.end_time or operation.start_time
        if start is None or end is None:
            continue
        name = (operation.name or "").lower()
        if name in (LINK, UNLINK):
            lane.spans.append(Span(start=start, end=end, kind="outage",
                                   label="link" if name == LINK else "unlink"))
        if _done(operation, LINK) and on_since is None:
            on_since = end
        elif _done(operation, UNLINK) and on_since is not None:
            policy = policy_at(env, on_since, reading, departures(reading.entries)) or "customer-managed key"
            lane.spans.append(Span(start=on_since, end=end, kind="cmk", label=policy))
            on_since = None
        elif _done(operation, ROTATE):
            lane.marks.append(Mark(at=end, kind="pickup", label="took up a new key version"))
    if (at := reverted_at(operations)) is not None and not any(_done(o, LINK) for o in operations):
        lane.marks.append(Mark(at=at, kind="revert", label="reverted by the platform (BYOK end of support)"))
    if env.cmk is not None and env.cmk.linked:
        lane.spans.append(Span(start=on_since or period.start, end=None, kind="cmk", label=current))
    _lock_spans(lane, env.id, reading, operations)
    return lane


def _lock_spans(lane: Lane, env_id: str, reading: Reading, operations: list[EnvironmentOperation]) -> None:
    reenabled = [o.end_time for o in operations if _done(o, REENABLE) and o.end_time]
    locked: datetime | None = None
    for what, at in _locks(env_id, reading.entries):
        if what == "lock":
            locked = at
        elif locked is not None:
            lane.spans.append(Span(start=locked, end=at, kind="lock", label="locked"))
            locked = None
    if locked is not None:
        end = min((t for t in reenabled if t >= locked), default=None)
        lane.spans.append(Span(start=locked, end=end, kind="lock", label="locked"))
    _watched_locks(lane, env_id, reading)


def _watched_locks(lane: Lane, env_id: str, reading: Reading) -> None:
    """Locks watch saw that no lock run explains (access revoked outside ppcmk): its env.locked findings."""
    ours = [s for s in lane.spans if s.kind == "lock"]
    for finding in reading.locked_findings:
        if finding.object_id.lower() != env_id.lower() or finding.since is None:
            continue
        if not any(s.start <= (finding.resolved or s.start) and finding.since <= (s.end or finding.since)
                   for s in ours):
            lane.spans.append(Span(start=finding.since, end=finding.resolved, kind="lock",
                                   label="locked (seen by watch)"))


def encrypted_since(lane: Lane | None, period: Period) -> str:
    spans = lane.spans if lane else []
    span = next((s for s in reversed(spans) if s.kind == "cmk" and s.end is None), None)
    if span is None:
        return ""
    return f"before {period.start:%Y-%m-%d}" if span.start <= period.start else f"{span.start:%Y-%m-%d %H:%M}"


def on_cmk(lane: Lane, moment: datetime) -> bool:
    return any(s.kind == "cmk" and s.start <= moment and (s.end is None or moment < s.end)
               for s in lane.spans)


def coverage(lanes: list[Lane], others: int, period: Period) -> list[CoveragePoint]:
    """Environments on a customer-managed key vs not, at each moment something changed (and both ends);
    `others` environments had no customer-managed key in the period."""
    moments = {period.start, period.end}
    for lane in lanes:
        for span in lane.spans:
            if span.kind == "cmk":
                moments |= {m for m in (span.start, span.end) if m is not None and period.covers(m)}
    points = []
    for moment in sorted(moments):
        on = sum(on_cmk(lane, moment) for lane in lanes)
        points.append(CoveragePoint(at=moment, on_cmk=on, not_on_cmk=others + len(lanes) - on))
    return points


def policy_at(env: Environment, moment: datetime, reading: Reading,
              left: list[tuple[datetime, set[str], str]]) -> str:
    """The policy (name) the environment was on at `moment`: the one a later revert or change of policy
    took it off, else its policy now."""
    later = next((policy for at, ids, policy in left if at > moment and env.id.lower() in ids), None)
    if later is not None:
        return later
    return reading.policy_name(env.cmk.policy_id) if env.cmk else ""


def pickups(reading: Reading, lanes: dict[str, Lane], keys: list[KeyFact], period: Period) -> list[PickupRow]:
    """Each environment on a key when a new version of it was created in the period, and when it took it
    up (the documented 24 hours)."""
    rows, left = [], departures(reading.entries)
    by_name = {e.id: e for e in reading.listed}
    for key in keys:
        users = {p.name.lower() for p in reading.facts.policies if not p.key_version and
                 (p.key_name or "").lower() == key.name.lower()}
        for version in key.versions[:-1]:  # every version but the oldest is a rotation
            created = version.created_on
            if created is None or not period.covers(created):
                continue
            for env_id, lane in lanes.items():
                env = by_name[env_id]
                if not on_cmk(lane, created) or policy_at(env, created, reading, left).lower() not in users:
                    continue
                found = pickup(as_facts(reading.operations.get(env.id, [])), created, reading.facts.now)
                rows.append(PickupRow(environment=env.display_name or env.id, environment_id=env.id,
                                      key=key.label, version=version.version, created=created, due=found.due,
                                      picked_up=found.at, status=found.status))
    return sorted(rows, key=lambda r: (r.created, r.environment))


def estate_rows(reading: Reading, lanes: dict[str, Lane], wanted: list[Environment],
                period: Period) -> list[EstateRow]:
    rows = []
    for env in wanted:
        policy = reading.facts.policy(env.cmk.policy_id) if env.cmk else None
        reason = env.runtime_reason if env.runtime_reason not in (None, "NotSpecified") else None
        rows.append(EstateRow(
            name=env.display_name or env.id, environment_id=env.id, sku=env.sku or "",
            state=(env.runtime_state or "unknown") + (f" ({reason})" if reason else ""),
            key_managed_by=env.key_managed_by or "Microsoft",
            policy=policy.name if policy else (reading.policy_name(env.cmk.policy_id) if env.cmk else ""),
            key=f"{(policy.key_vault_id or '').rsplit('/', 1)[-1]}/{policy.key_name}" if policy else "",
            on_cmk=bool(env.cmk and env.cmk.linked),
            encrypted_since=encrypted_since(lanes.get(env.id), period),
            note=byok_note(env, reverted_at(reading.operations.get(env.id, [])))))
    return rows

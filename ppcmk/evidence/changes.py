"""The audit chain as evidence: its verification, every change with who asked, who approved (with whatever
the entry holds as proof of who they are) and how it ended, and the drift findings watch recorded.

Entries are grouped by the flow run that wrote them (a run resumed on another worker keeps its id), else by
their plan hash. Approvers are read from the entries generically: every field of an answer that is not the
request itself is shown as its proof, so a richer proof (a signed statement of an identity provider) shows
without a change here; a value shaped like a signed token is shown as its SHA-256, never as itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ppcmk.audit.trail import entry_time
from ppcmk.evidence.model import Approver, Change, FindingSpan, Period

DRIFT_EVENT = "drift-changed"
ANSWERED = "approval-answered"
# Fields of an answer that are the request or the answer itself, not evidence of who answered.
NOT_PROOF = frozenset({"event", "procedure", "plan_hash", "requester", "approver", "decision", "comment"})
SIGNED_TOKEN = re.compile(r"^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*$")
SUBJECT_FIELDS = ("policy", "old_policy", "new_policy", "key")


def shown(value: Any) -> str:
    """A proof value as text a person reads; a signed token by its fingerprint only."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if SIGNED_TOKEN.match(text):
        return f"signed token, sha256 {hashlib.sha256(text.encode()).hexdigest()}"
    return text


def _event(entry: dict[str, Any]) -> dict[str, Any]:
    event = entry.get("event")
    return event if isinstance(event, dict) else {}


def _group_key(entry: dict[str, Any]) -> str:
    event = _event(entry)
    run = (entry.get("by") or {}).get("flow_run_id")
    return f"run:{run}" if run else f"plan:{event['plan_hash']}" if event.get("plan_hash") else \
        f"entry:{entry.get('seq')}"


def _runs(entries: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The entries grouped by the run that wrote them, in chain order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(_group_key(entry), []).append(entry)
    return list(groups.values())


def _name(value: str) -> str:
    """An ARM id or key URL by its last meaningful segment (a key URL ends with its version)."""
    parts = [p for p in value.rstrip("/").split("/") if p]
    if len(parts) >= 3 and parts[-3] == "keys":
        return parts[-2]
    return parts[-1] if parts else value


def subjects(events: Iterable[dict[str, Any]]) -> tuple[list[str], set[str]]:
    """What a change touched, by name (environments, policies, keys), and every name and id it names."""
    names: dict[str, None] = {}
    ids: set[str] = set()
    for event in events:
        for item in event.get("environments") or []:
            if isinstance(item, dict) and item.get("environment_id"):
                names[str(item.get("name") or item["environment_id"])] = None
                ids |= {str(item["environment_id"]).lower(), str(item.get("name") or "").lower()}
        if str(event.get("event", "")).startswith("approval-"):
            continue  # an approval's `key` is its pause key, not a key vault key
        for field in SUBJECT_FIELDS:
            if isinstance(value := event.get(field), str) and value:
                names[_name(value)] = None
                ids |= {value.lower(), _name(value).lower()}
    return list(names), ids - {""}


def _approvers(entries: list[tuple[datetime, dict[str, Any]]]) -> list[Approver]:
    answered = [Approver(approver=str(e.get("approver") or e.get("approver_id") or "?"),
                         decision=str(e.get("decision") or ""), at=at,
                         proof={k: shown(v) for k, v in sorted(e.items()) if k not in NOT_PROOF and v not in
                                (None, "", [])})
                for at, e in entries if e.get("event") == ANSWERED]
    if answered:
        return answered
    granted: dict[str, Any] = next((e for _, e in entries if e.get("event") == "approval-granted"), {})
    return [Approver(approver=str(label), decision="approve") for label in granted.get("approvers") or []]


def _outcome(events: list[dict[str, Any]]) -> str:
    names = [str(e.get("event", "")) for e in events]
    finished = next((e for e in reversed(events) if str(e.get("event", "")).endswith("-finished")), None)
    if finished is not None:
        return str(finished.get("status") or "completed")
    if "rotation" in names:
        rotation = next(e for e in events if e.get("event") == "rotation")
        if rotation.get("current") == rotation.get("previous"):
            return "nothing-to-do"
        return f"completed: version {str(rotation.get('previous'))[:8]} → {str(rotation.get('current'))[:8]}"
    for ending, outcome in (("approval-rejected", "rejected"), ("approval-expired", "expired")):
        if ending in names:
            return outcome
    return "no outcome recorded (the run ended before finishing, or is still running)"


def _procedure(events: list[dict[str, Any]]) -> str:
    named = next((str(e["procedure"]) for e in events if e.get("procedure")), "")
    if named:
        return named
    names = [str(e.get("event", "")) for e in events]
    return "rotate" if "rotation" in names else names[0] if names else ""


def _change(group: list[dict[str, Any]]) -> Change:
    timed = [(entry_time(e), _event(e)) for e in group]
    events = [event for _, event in timed]
    by = group[0].get("by") or {}
    finished = next((e for e in reversed(events) if str(e.get("event", "")).endswith("-finished")), None)
    plan_hash = (finished or {}).get("plan_hash") or next(
        (str(e["plan_hash"]) for e in reversed(events) if e.get("plan_hash")), "")
    return Change(
        procedure=_procedure(events), run=str(by.get("flow_run_name") or by.get("flow_run_id") or "-"),
        started=min(at for at, _ in timed), finished=max(at for at, _ in timed),
        requester=next((str(e["requester"]) for e in events if e.get("requester")), ""),
        approvers=_approvers(timed), plan_hash=str(plan_hash), outcome=_outcome(events),
        subjects=subjects(events)[0], entries=[int(e.get("seq", 0)) for e in group])


def changes_in(entries: list[dict[str, Any]], period: Period, wanted: set[str] | None) -> list[Change]:
    """The changes whose entries fall in the period; with `wanted` (names and ids, lower case), only those
    that name one of them."""
    found = []
    for group in _runs(e for e in entries if _event(e).get("event") != DRIFT_EVENT):
        if wanted is not None and not (subjects(_event(e) for e in group)[1] & wanted):
            continue
        change = _change(group)
        if period.overlaps(change.started, change.finished):
            found.append(change)
    return sorted(found, key=lambda c: c.started)


def _when(value: Any, default: datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else default


def recorded_findings(entries: list[dict[str, Any]], period: Period) -> list[FindingSpan]:
    """Every drift finding watch recorded (appeared, changed, resolved) that was open in the period."""
    spans: dict[str, FindingSpan] = {}
    closed: list[FindingSpan] = []
    for entry in entries:
        event = _event(entry)
        if event.get("event") != DRIFT_EVENT:
            continue
        at = entry_time(entry)
        for change in event.get("changes") or []:
            key = f"{change.get('kind')}|{str(change.get('object_id', '')).lower()}"
            if change.get("change") == "resolved":
                if key in spans:
                    closed.append(spans.pop(key).model_copy(update={"resolved": at}))
                continue
            before = spans.get(key)
            spans[key] = FindingSpan(
                kind=str(change.get("kind")), severity=str(change.get("severity") or ""),
                object=str(change.get("object") or ""), object_id=str(change.get("object_id") or ""),
                since=before.since if before else _when(change.get("since"), at), resolved=None,
                message=str(change.get("message") or ""), fix=str(change.get("fix") or ""))
    every = closed + list(spans.values())
    return sorted((s for s in every if period.overlaps(s.since, s.resolved)),
                  key=lambda s: (s.since or period.start, s.kind))


def drift_record(checked_at: datetime, changes: Iterable[Any]) -> dict[str, Any]:
    """The audit event watch writes for the findings that appeared, changed or resolved in one run (each a
    `ppcmk.drift.DriftChange`), stamped with the cloud's time of that run: what `recorded_findings` reads."""
    return {"event": DRIFT_EVENT, "checked_at": checked_at.isoformat(),
            "changes": [c.model_dump(mode="json") for c in changes]}


def named_with(entries: list[dict[str, Any]], names: set[str]) -> set[str]:
    """Every name and id (lower case) that a change naming one of `names` also names: the environments a
    policy's changes moved, for a pack scoped to that policy."""
    found: set[str] = set()
    for group in _runs(entries):
        ids = subjects(_event(e) for e in group)[1]
        if ids & names:
            found |= ids
    return found


def departures(entries: list[dict[str, Any]]) -> list[tuple[datetime, set[str], str]]:
    """(when, environment ids, policy name) of each run that took environments off a policy (revert,
    change_policy): the policy is the one it held (its `hold-recorded` entry names it)."""
    found = []
    for group in _runs(entries):
        events = [_event(e) for e in group]
        held = next((str(e["policy"]) for e in events
                     if e.get("event") == "hold-recorded" and e.get("policy")), "")
        finished = next((e for e in events
                         if e.get("event") in ("revert-finished", "change_policy-finished")), None)
        if held and finished is not None:
            ids = {str(i.get("environment_id", "")).lower() for i in finished.get("environments") or []
                   if isinstance(i, dict)}
            found.append((max(entry_time(e) for e in group), ids, held))
    return sorted(found, key=lambda d: d[0])

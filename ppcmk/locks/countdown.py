"""The deletion countdown of a locked environment: the service deletes it 7 days (Sandbox) or 30 days (other
types) after it locked (cmk-lock-unlock.md). Pure.

The countdown starts at the earliest evidence of the lock, so that it never runs late: ppcmk's lock record,
the time the service last changed the environment while it is locked (its `lastModifiedTime`), the time the
cause began by the service's own clock (a disabled key version's update time, a key's or vault's deletion
date), and, last, the first watch run that saw it. Each start says where it comes from, so a person can tell a
countdown the service vouches for from one ppcmk could only estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 86400.0
# Alert tiers of a lock: a finding escalates (one event each) as its deletion comes within these many days.
ESCALATION_DAYS = (7, 3, 1)


def lock_lifetime(sku: str | None) -> timedelta:
    """How long a locked environment survives: 7 days for Sandbox environments, 30 for the others."""
    return timedelta(days=7 if (sku or "").lower() == "sandbox" else 30)


def days_left(until: datetime, now: datetime) -> int:
    """Whole days left on the cloud's clock (rounded down: 2 days 23 hours is 2)."""
    return max(math.floor((until - now).total_seconds() / DAY), 0)


@dataclass(frozen=True)
class Evidence:
    """When something says the lock began, and what says so (e.g. "the service's lastModifiedTime")."""

    at: datetime | None
    source: str


@dataclass(frozen=True)
class Countdown:
    started: datetime
    deleted_at: datetime
    source: str
    estimated: bool  # True when only ppcmk's first sighting dates it

    def left(self, now: datetime) -> int:
        return days_left(self.deleted_at, now)

    def tier(self, now: datetime) -> str:
        """The escalation tier: "7d", "3d" or "1d" left once within them, else "locked"."""
        remaining = (self.deleted_at - now).total_seconds() / DAY
        within = [days for days in ESCALATION_DAYS if remaining <= days]
        return f"{within[-1]}d" if within else "locked"

    def describe(self, now: datetime) -> str:
        left = self.left(now)
        days = f"{left} day{'' if left == 1 else 's'} left"
        if self.estimated:
            return (f"the service deletes it on {self.deleted_at:%Y-%m-%d %H:%M} or earlier, {days} "
                    f"(first seen locked {self.started:%Y-%m-%d %H:%M}; the service does not say when it "
                    "locked)")
        return (f"the service deletes it on {self.deleted_at:%Y-%m-%d %H:%M}, {days} (locked since "
                f"{self.started:%Y-%m-%d %H:%M}, by {self.source})")


FIRST_SEEN = "ppcmk's first sighting"


def countdown(sku: str | None, evidence: Iterable[Evidence], first_seen: datetime) -> Countdown:
    """The countdown from the earliest evidence; `first_seen` (now, or when watch first saw the lock) is the
    fallback, never later than the evidence."""
    dated = sorted((e for e in evidence if e.at is not None), key=lambda e: e.at or first_seen)
    earliest = dated[0] if dated else None
    if earliest is None or earliest.at is None or first_seen < earliest.at:
        return Countdown(first_seen, first_seen + lock_lifetime(sku), FIRST_SEEN, estimated=True)
    return Countdown(earliest.at, earliest.at + lock_lifetime(sku), earliest.source, estimated=False)

"""Watch's lock rules: a locked environment's deletion countdown, which escalates as the deletion nears, and a
locked environment that is gone, which is a loss and never reads as resolved. Pure.

The countdown starts at the earliest evidence (`ppcmk.locks.countdown`): ppcmk's lock record, the service's
`lastModifiedTime` of the locked environment, the time its key's current version was disabled, and last the
first watch run that saw the lock. Its tier is the escalation step ("locked", then "7d", "3d", "1d" left),
so an automation hears of it once per step, not every hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ppcmk.locks.countdown import Countdown, Evidence, countdown, lock_lifetime
from ppcmk.watch.drift import Drift, DriftSeverity, WatchState
from ppcmk.watch.estate import EnvironmentFact, EstateFacts

LOCKED, DELETED = "env.locked", "env.deleted"


def locked_drift(env: EnvironmentFact, estate: EstateFacts, previous: WatchState, target: str) -> Drift:
    """The lock of one environment, its countdown and the one runbook that ends it."""
    clock = lock_countdown(env, estate, previous)
    return Drift(kind=LOCKED, severity=DriftSeverity.CRITICAL, tier=clock.tier(estate.now), object=env.label,
                 object_id=env.id, object_type="environment", since=clock.started, until=clock.deleted_at,
                 message=f"locked (runtime disabled: its key cannot be used): {clock.describe(estate.now)}, "
                         "unless it is unlocked",
                 fix=f"run unlock (target={target}) before {clock.deleted_at:%Y-%m-%d %H:%M}: it repairs "
                     "what keeps the policy's identity from its key, whoever caused it, and re-enables the "
                     "environment")


def lock_countdown(env: EnvironmentFact, estate: EstateFacts, previous: WatchState) -> Countdown:
    seen = previous.open.get(f"{LOCKED}|{env.id.lower()}")
    evidence = [Evidence(env.last_modified, "the service's lastModifiedTime")]
    recorded = estate.lock_deletion(env.id)
    if recorded is not None:
        evidence.append(Evidence(recorded - lock_lifetime(env.sku), "ppcmk's lock record"))
    policy = estate.policy(env.policy_id)
    key = estate.key(policy.key_vault_id, policy.key_name) if policy else None
    if key is not None and key.exists and not key.enabled:
        evidence.append(Evidence(key.updated_on, "the key version's last update"))
    return countdown(env.sku, evidence, seen.since if seen and seen.since else estate.now)


@dataclass(frozen=True)
class _Gone:
    """A locked environment as the last run or the lock record knew it."""

    env_id: str
    name: str
    deadline: datetime | None  # when its countdown ends
    noticed: datetime | None = None  # when a run first found it gone


def deleted_drifts(estate: EstateFacts, previous: WatchState) -> Iterator[Drift]:
    """A locked environment (by watch's last run or ppcmk's lock record) that is no longer listed."""
    if not estate.environments_listed:
        return
    known = {env_id.lower(): _Gone(env_id, lock.names.get(env_id, env_id), deadline)
             for lock in estate.open_locks() for env_id, deadline in lock.deleted_after.items()}
    for seen in (s for s in previous.open.values() if s.kind in (LOCKED, DELETED)):
        recorded = known.get(seen.object_id.lower())
        known[seen.object_id.lower()] = _Gone(seen.object_id, seen.object,
                                              seen.until or (recorded.deadline if recorded else None),
                                              seen.since if seen.kind == DELETED else None)
    present = {env.id.lower() for env in estate.environments}
    for gone in known.values():
        if gone.env_id.lower() not in present:
            yield _deleted(gone, estate.now)


def _deleted(gone: _Gone, now: datetime) -> Drift:
    noticed = gone.noticed or now
    if gone.deadline is not None and gone.deadline <= noticed:
        how = f"the service deleted it when its lock countdown ended ({gone.deadline:%Y-%m-%d %H:%M})"
        since = gone.deadline
    else:
        how = ("it disappeared while locked, before its countdown ended: deleted by an administrator, or "
               "hidden from this identity")
        since = noticed
    return Drift(kind=DELETED, severity=DriftSeverity.CRITICAL, tier="deleted", object=gone.name,
                 object_id=gone.env_id, object_type="environment", since=since, until=gone.deadline,
                 replaces=LOCKED,
                 message=f"{gone.name} was locked and is gone: {how}. Its data is lost to Power Platform "
                         "unless Microsoft can still restore it",
                 fix=f"open a Microsoft support case at once naming environment {gone.env_id}; restore what "
                     "you can from your own exports or backups into a new environment; run unlock for its "
                     "policy so that the same lock takes no other environment")

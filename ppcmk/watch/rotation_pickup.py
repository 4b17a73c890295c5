"""Whether a linked environment took up its key's newest version: the documented "within about 24 hours".

The signal is the environment's lifecycle operations (Power Platform API): a `RotateCustomerManagedKey`
operation that ended after the version was created (inferred: the operation id is one of
`lifecycleOperationsEnforcement`'s), or a link that ended after it (the environment was encrypted with the
new version from the start). Watch reads the operations of each linked environment while its key's current
version is younger than the 28 days the previous version is held, and of each environment that had not
picked one up at its previous run; the evidence pack reads them for the environments in its scope. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from ppcmk.watch.estate import EnvironmentFact, KeyFact, OperationFact, PolicyFact

PICKUP_HOURS = 24.0  # customer-managed-key.md: "It can take 24 hours for all the resource providers ..."
WATCH_WINDOW = timedelta(days=28)  # the previous version's hold: after it, cleanup may disable that version
TAKES_UP = ("rotatecustomermanagedkey", "newcustomermanagedkey")
NOT_PICKED_UP = "env.rotation_not_picked_up"

PickupStatus = Literal["picked-up", "pending", "missing"]


class Pickup(BaseModel):
    status: PickupStatus
    due: datetime  # the version's creation plus the documented hours
    at: datetime | None = None  # when the environment took it up


def taken_up_at(operations: Iterable[OperationFact], created: datetime) -> datetime | None:
    """When the environment was first on the version created at `created`, by its operations."""
    ends = [o.end_time for o in operations
            if o.name.lower() in TAKES_UP and o.status.lower() == "succeeded" and o.end_time is not None
            and o.end_time >= created]
    return min(ends, default=None)


def pickup(operations: Iterable[OperationFact], created: datetime, now: datetime,
           hours: float = PICKUP_HOURS) -> Pickup:
    due = created + timedelta(hours=hours)
    at = taken_up_at(operations, created)
    if at is not None:
        return Pickup(status="picked-up", due=due, at=at)
    return Pickup(status="pending" if now <= due else "missing", due=due)


def follows_rotation(env: EnvironmentFact, policy: PolicyFact | None, key: KeyFact | None) -> bool:
    """The environment uses its policy's key by its newest version: linked, not locked, versionless."""
    return (env.linked and not env.locked and policy is not None and not policy.key_version
            and key is not None and key.exists and key.created_on is not None)


def _key_of(policy: PolicyFact) -> tuple[str, str]:
    return (policy.key_vault_id or "").lower(), (policy.key_name or "").lower()


def awaiting(environments: Sequence[EnvironmentFact], policies: Sequence[PolicyFact], keys: Sequence[KeyFact],
             now: datetime) -> set[str]:
    """Ids of the environments whose pickup of their key's current version watch checks now."""
    by_policy = {p.policy_id.lower(): p for p in policies}
    by_key = {(k.vault_id.lower(), k.name.lower()): k for k in keys}
    wanted = set()
    for env in environments:
        policy = by_policy.get((env.policy_id or "").lower())
        key = by_key.get(_key_of(policy)) if policy else None
        recent = key is not None and key.created_on is not None and now - key.created_on < WATCH_WINDOW
        if recent and follows_rotation(env, policy, key):
            wanted.add(env.id)
    return wanted

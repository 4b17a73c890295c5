"""Power Platform environments and their lifecycle operations (the admin API's state).

Scenario files and saved state share one shape; a scenario may name an environment's CMK policy by its ARM
name (`cmkPolicy`), saved state carries the full link.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.clock import instant_or_none
from ppcmk_sandbox.powerplatform.lifecycle import settle
from ppcmk_sandbox.powerplatform.records import (
    CmkLink,
    Environment,
    LifecycleOperation,
    OperationType,
)

if TYPE_CHECKING:
    from ppcmk_sandbox.arm.state import EnterprisePolicy
    from ppcmk_sandbox.world import World

# What the admin API's modules import from here with the state (the records are defined in `records`).
__all__ = ["CmkLink", "Environment", "LifecycleOperation", "OperationType", "PowerPlatformState"]


class PowerPlatformState:
    """Environments and operations, indexed so that settling (before every request on a running clock) and
    the per-environment reads cost what changes, not the size of the tenant: unfinished operations and
    every operation per environment, linked and unlocked environments per policy, and locked ones by when
    they are deleted. Change them through `add_operation`, `add_environment` and `remove_environment`, never
    by writing the dicts: the indexes follow those calls (and an environment's own changes), not the dicts."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.environments: dict[str, Environment] = {}  # lower-cased id -> environment
        self.operations: dict[str, LifecycleOperation] = {}  # lower-cased id -> operation
        # Unfinished operations per lower-cased environment id, oldest first (added when started, removed
        # when settle finishes them).
        self._unfinished: dict[str, list[LifecycleOperation]] = {}
        self._history: dict[str, list[LifecycleOperation]] = {}  # every operation per environment id
        self._policy_of: dict[str, str] = {}  # environment id -> lower-cased ARM id of its linked policy
        self._linked: dict[str, set[str]] = {}  # lower-cased policy id -> ids of environments linked to it
        self._unlocked: dict[str, set[str]] = {}  # the same, only those not locked (settle may lock them)
        self._deletions: list[tuple[datetime, str]] = []  # (deletion time, environment id) of locks, a heap

    @classmethod
    def load(cls, section: dict[str, Any], world: World) -> PowerPlatformState:
        state = cls(world)
        for entry in section.get("environments", []):
            state.add_environment(_environment_from(entry, world))
        for entry in section.get("operations", []):
            state.add_operation(_operation_from(entry, world))
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "environments": [e.to_dict() for e in self.environments.values()],
            "operations": [o.to_dict() for o in self.operations.values()],
        }

    def reconcile(self, world: World) -> None:
        settle(world)

    # ------------------------------------------------------------------------------------- environments

    def add_environment(self, environment: Environment) -> None:
        self.environments[environment.id.lower()] = environment
        environment.report_changes_to(self._reindex)
        self._reindex(environment)

    def remove_environment(self, environment_id: str) -> None:
        environment = self.environments.pop(environment_id.lower(), None)
        if environment is not None:
            environment.report_changes_to(None)
            self._unindex(environment_id.lower())

    def environment(self, environment_id: str) -> Environment | None:
        return self.environments.get(environment_id.lower())

    def _reindex(self, environment: Environment) -> None:
        """Index the environment by its link and lock as they are now (it calls this on every change)."""
        key = environment.id.lower()
        self._unindex(key)
        if environment.cmk is not None:
            policy = self._policy_of[key] = environment.cmk.policy_id.rstrip("/").lower()
            self._linked.setdefault(policy, set()).add(key)
            if environment.locked_at is None:
                self._unlocked.setdefault(policy, set()).add(key)
        deleted_at = self.deletion_time(environment)
        if deleted_at is not None:
            heapq.heappush(self._deletions, (deleted_at, key))

    def _unindex(self, key: str) -> None:
        """Forget the environment's link; its deletion entry, if any, is checked when it comes due."""
        policy = self._policy_of.pop(key, None)
        for index in (self._linked, self._unlocked):
            if policy is not None and policy in index:
                index[policy].discard(key)
                if not index[policy]:
                    del index[policy]

    def deletion_time(self, environment: Environment) -> datetime | None:
        """When the service deletes the environment if it is locked: 7 days after the lock for Sandbox
        environments, 30 for other types."""
        if environment.locked_at is None:
            return None
        settings = self._world.settings
        sandbox_type = environment.sku == "Sandbox"
        days = settings.lock_deletion_days_sandbox if sandbox_type else settings.lock_deletion_days_other
        return environment.locked_at + timedelta(days=days)

    def policies_with_unlocked_links(self) -> list[str]:
        """Lower-cased ids of the policies that linked, unlocked environments use (a lock may hit those)."""
        return list(self._unlocked)

    def unlocked_links(self, policy_id: str) -> list[Environment]:
        """The environments linked to the policy and not locked."""
        return [self.environments[key] for key in self._unlocked.get(policy_id.rstrip("/").lower(), ())]

    def due_deletions(self, now: datetime) -> list[str]:
        """Ids of environments locked long enough to be deleted at `now`. An entry is checked against the
        environment as it is when it comes due: one unlocked or deleted since is dropped, one relocked (or
        given another lifetime) waits for its own time."""
        due: dict[str, None] = {}
        while self._deletions and self._deletions[0][0] <= now:
            _, key = heapq.heappop(self._deletions)
            environment = self.environments.get(key)
            deleted_at = self.deletion_time(environment) if environment is not None else None
            if deleted_at is not None and deleted_at <= now:
                due[key] = None
            elif deleted_at is not None:
                heapq.heappush(self._deletions, (deleted_at, key))
        return list(due)

    def environments_using(self, policy: EnterprisePolicy) -> list[str]:
        """Ids of environments linked or being linked to the policy (ARM then refuses deletes/key changes)."""
        wanted = policy.arm_id.rstrip("/").lower()
        linked = {self.environments[key].id for key in self._linked.get(wanted, ())}
        linking = {
            o.environment_id
            for o in self.active_operations()
            if o.type == OperationType.LINK and o.target.get("policy_id", "").rstrip("/").lower() == wanted
        }
        return sorted(linked | linking)

    # --------------------------------------------------------------------------------------- operations

    def operation(self, operation_id: str) -> LifecycleOperation | None:
        return self.operations.get(operation_id.lower())

    def add_operation(self, operation: LifecycleOperation) -> None:
        self.operations[operation.id.lower()] = operation
        self._history.setdefault(operation.environment_id.lower(), []).append(operation)
        if operation.active:
            self._unfinished.setdefault(operation.environment_id.lower(), []).append(operation)

    def operation_finished(self, operation: LifecycleOperation) -> None:
        """Forget a finished operation in the index of unfinished ones (settle calls this)."""
        key = operation.environment_id.lower()
        remaining = [o for o in self._unfinished.get(key, []) if o is not operation]
        if remaining:
            self._unfinished[key] = remaining
        else:
            self._unfinished.pop(key, None)

    def active_operations(self) -> list[LifecycleOperation]:
        """Every operation still NotStarted or Running."""
        return [o for operations in self._unfinished.values() for o in operations]

    def active_operation(self, environment_id: str) -> LifecycleOperation | None:
        operations = self._unfinished.get(environment_id.lower())
        return operations[0] if operations else None

    def operations_of(self, environment_id: str) -> list[LifecycleOperation]:
        """Every operation on the environment, in the order they were added."""
        return list(self._history.get(environment_id.lower(), []))


def _operation_from(entry: dict[str, Any], world: World) -> LifecycleOperation:
    return LifecycleOperation(
        id=entry["id"],
        environment_id=entry["environment_id"],
        type=entry["type"],
        created_at=instant_or_none(entry.get("created_at")) or world.settings.start_time,
        duration_seconds=float(entry["duration_seconds"]),
        requested_by=dict(entry.get("requested_by", {})),
        target=dict(entry.get("target", {})),
        state=entry.get("state", "NotStarted"),
        error=entry.get("error"),
        finished_at=instant_or_none(entry.get("finished_at")),
    )


def _environment_from(entry: dict[str, Any], world: World) -> Environment:
    cmk = entry.get("cmk")
    link = CmkLink(**cmk) if isinstance(cmk, dict) else None
    if entry.get("cmkPolicy"):
        policy = world.arm.find_policy_by_name(entry["cmkPolicy"]) if world.arm else None
        if policy is None:
            raise ValueError(f"powerplatform.json: {entry['id']}: no such policy {entry['cmkPolicy']!r}")
        link = CmkLink(policy.arm_id, policy.system_id, policy.location)
    return Environment(
        id=entry["id"],
        display_name=entry.get("display_name", entry["id"]),
        location=entry["location"],
        azure_region=entry.get("azure_region", ""),
        sku=entry["sku"],
        protection_level=entry.get("protection_level", "Basic"),
        key_managed_by=entry.get("key_managed_by", "Customer" if link else "Microsoft"),
        cmk=link,
        admin_disabled=bool(entry.get("admin_disabled", False)),
        locked_at=instant_or_none(entry.get("locked_at")),
        created_at=instant_or_none(entry.get("created_at"))
        or world.settings.start_time - timedelta(days=90),
        modified_at=instant_or_none(entry.get("modified_at") or entry.get("locked_at")),
    )

"""Power Platform environments and their lifecycle operations (the admin API's state).

Scenario files and saved state share one shape; a scenario may name an environment's CMK policy by its ARM
name (`cmkPolicy`), saved state carries the full link.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sandbox.clock import parse_instant

if TYPE_CHECKING:
    from sandbox.arm.state import EnterprisePolicy
    from sandbox.world import World

TERMINAL = frozenset({"Succeeded", "Failed"})
# Operation types. Managed Environment's is recorded (EnableGovernanceConfiguration, the Terraform provider's
# test data); the others reuse the ids `lifecycleOperationsEnforcement` uses (inferred), as does turning
# Managed Environment off.
LINK = "NewCustomerManagedKey"
UNLINK = "RevertToMicrosoftKey"
GOVERNANCE = "EnableGovernanceConfiguration"
GOVERNANCE_OFF = "DisableGovernanceConfiguration"
GOVERNANCE_TYPES = (GOVERNANCE, GOVERNANCE_OFF)
REENABLE = "EnableEnvironment"


@dataclass
class CmkLink:
    policy_id: str  # ARM id of the enterprise policy
    system_id: str
    location: str
    link_status: str = "Linked"

    @property
    def policy_guid(self) -> str:
        return self.system_id.rsplit("/", 1)[-1]


@dataclass
class Environment:
    id: str
    display_name: str
    location: str
    azure_region: str
    sku: str
    protection_level: str = "Basic"
    key_managed_by: str = "Microsoft"
    cmk: CmkLink | None = None
    admin_disabled: bool = False  # runtime Disabled for a reason other than CMK (e.g. an admin)
    locked_at: datetime | None = None  # CMK lock: the policy identity lost use of the key
    created_at: datetime | None = None

    @property
    def managed(self) -> bool:
        return self.protection_level == "Standard"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["locked_at"] = self.locked_at.isoformat() if self.locked_at else None
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data


@dataclass
class LifecycleOperation:
    id: str
    environment_id: str
    type: str
    created_at: datetime
    duration_seconds: float
    requested_by: dict[str, str] = field(default_factory=dict)  # id, displayName, type
    target: dict[str, str] = field(default_factory=dict)  # link: policy ARM id + systemId; governance: level
    state: str = "NotStarted"
    error: str | None = None
    finished_at: datetime | None = None

    @cached_property
    def ends_at(self) -> datetime:
        """When the operation ends (start and duration never change; settle asks on every request)."""
        return self.created_at + timedelta(seconds=self.duration_seconds)

    @cached_property
    def starts_at(self) -> datetime:
        """When it turns Running: after its first tenth, at most 10 s (Validate and Prepare)."""
        return self.created_at + timedelta(seconds=min(10.0, self.duration_seconds / 10))

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


class PowerPlatformState:
    def __init__(self, world: World) -> None:
        self._world = world
        self.environments: dict[str, Environment] = {}  # lower-cased id -> environment
        self.operations: dict[str, LifecycleOperation] = {}  # lower-cased id -> operation
        # Unfinished operations per lower-cased environment id, oldest first (added when started, removed
        # when settle finishes them): a fleet keeps hundreds running while every request settles them and
        # reads environments, and scanning the whole history each time cost milliseconds per request.
        self._unfinished: dict[str, list[LifecycleOperation]] = {}

    @classmethod
    def load(cls, section: dict[str, Any], world: World) -> PowerPlatformState:
        state = cls(world)
        for entry in section.get("environments", []):
            state.add_environment(_environment_from(entry, world))
        for entry in section.get("operations", []):
            operation = LifecycleOperation(
                id=entry["id"],
                environment_id=entry["environment_id"],
                type=entry["type"],
                created_at=parse_instant(entry["created_at"])
                if entry.get("created_at")
                else world.settings.start_time,
                duration_seconds=float(entry["duration_seconds"]),
                requested_by=dict(entry.get("requested_by", {})),
                target=dict(entry.get("target", {})),
                state=entry.get("state", "NotStarted"),
                error=entry.get("error"),
                finished_at=parse_instant(entry["finished_at"]) if entry.get("finished_at") else None,
            )
            state.add_operation(operation)
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "environments": [e.to_dict() for e in self.environments.values()],
            "operations": [o.to_dict() for o in self.operations.values()],
        }

    def reconcile(self, world: World) -> None:
        from sandbox.powerplatform.lifecycle import settle

        settle(world)

    def add_environment(self, environment: Environment) -> None:
        self.environments[environment.id.lower()] = environment

    def environment(self, environment_id: str) -> Environment | None:
        return self.environments.get(environment_id.lower())

    def operation(self, operation_id: str) -> LifecycleOperation | None:
        return self.operations.get(operation_id.lower())

    def add_operation(self, operation: LifecycleOperation) -> None:
        self.operations[operation.id.lower()] = operation
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

    def environments_using(self, policy: EnterprisePolicy) -> list[str]:
        """Ids of environments linked or being linked to the policy (ARM then refuses deletes/key changes)."""
        wanted = policy.arm_id.lower()
        linked = {e.id for e in self.environments.values() if e.cmk and e.cmk.policy_id.lower() == wanted}
        linking = {
            o.environment_id
            for o in self.operations.values()
            if o.active and o.type == LINK and o.target.get("policy_id", "").lower() == wanted
        }
        return sorted(linked | linking)



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
        locked_at=parse_instant(entry["locked_at"]) if entry.get("locked_at") else None,
        created_at=parse_instant(entry["created_at"])
        if entry.get("created_at")
        else world.settings.start_time - timedelta(days=90),
    )

"""The Power Platform admin API's records: environments, their CMK links and lifecycle operations.

Plain data with no rules: `lifecycle` decides how they change, `state` keeps and indexes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

TERMINAL = frozenset({"Succeeded", "Failed"})
# Operation types. Managed Environment's is recorded (EnableGovernanceConfiguration, the Terraform provider's
# test data); the others reuse the ids `lifecycleOperationsEnforcement` uses (inferred), as does turning
# Managed Environment off.
class OperationType(StrEnum):
    LINK = "NewCustomerManagedKey"
    UNLINK = "RevertToMicrosoftKey"
    GOVERNANCE = "EnableGovernanceConfiguration"
    GOVERNANCE_OFF = "DisableGovernanceConfiguration"
    REENABLE = "EnableEnvironment"
    ROTATE = "RotateCustomerManagedKey"  # the service picking up a new key version (sandbox/.../rotation.py)


GOVERNANCE_TYPES = frozenset({OperationType.GOVERNANCE, OperationType.GOVERNANCE_OFF})
# the operations an environment is Disabled for once they start
OUTAGE_TYPES = frozenset({OperationType.LINK, OperationType.UNLINK})

# The fields the state indexes an environment by: its link (locking), its lock and type (deletion).
INDEXED_FIELDS = frozenset({"cmk", "locked_at", "sku"})


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
    modified_at: datetime | None = None  # lastModifiedTime: the last change the service made or was asked

    @property
    def managed(self) -> bool:
        return self.protection_level == "Standard"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["locked_at"] = self.locked_at.isoformat() if self.locked_at else None
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        data["modified_at"] = self.modified_at.isoformat() if self.modified_at else None
        return data

    def report_changes_to(self, changed: Callable[[Environment], None] | None) -> None:
        """Call `changed` after every change of its link or lock, whoever makes it (settle, a handler, a
        test), so the state's indexes cannot go stale; None stops."""
        object.__setattr__(self, "_changed", changed)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        changed = self.__dict__.get("_changed")
        if changed is not None and name in INDEXED_FIELDS:
            changed(self)


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

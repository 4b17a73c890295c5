"""Role assignments of the sandbox tenant, and the question everyone asks them: does X hold role R at S?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.clock import parse_instant
from ppcmk_sandbox.rbac.roles import BUILTIN_ROLES, find_by_name, role_guid
from ppcmk_sandbox.saved import saved_fields

if TYPE_CHECKING:
    from ppcmk_sandbox.world import World

ASSIGNMENTS_SEGMENT = "/providers/Microsoft.Authorization/roleAssignments/"


def scope_covers(assigned_scope: str, target_scope: str) -> bool:
    """An assignment at `assigned_scope` applies at `target_scope` when it is that scope or a parent of it."""
    parent = assigned_scope.rstrip("/").lower()
    target = target_scope.rstrip("/").lower()
    return parent == "" or target == parent or target.startswith(parent + "/")


@dataclass
class Assignment:
    """A role at a scope for a principal: what an ARM role assignment and a Managed HSM local one share."""

    name: str
    scope: str
    role_guid: str
    principal_id: str
    created_at: datetime

    @property
    def arm_id(self) -> str:
        return f"{self.scope.rstrip('/')}{ASSIGNMENTS_SEGMENT}{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """Its fields (a subclass's too) as ARM names them."""
        return saved_fields(self, camel=True, keys={"role_guid": "roleDefinitionId"})


@dataclass
class RoleAssignment(Assignment):
    principal_type: str
    created_by: str = ""
    description: str | None = None


class RbacState:
    """All role assignments, keyed by their lower-cased ARM id. Definitions are the built-in roles."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.assignments: dict[str, RoleAssignment] = {}

    @classmethod
    def load(cls, section: dict[str, Any], world: World) -> RbacState:
        """Scenario entries may name the role (`role`) and the principal (`principal`: a persona name); saved
        state carries the ids. (Grants to a scenario policy's identity are listed with the policy in arm.json,
        because that identity only exists once the policy does.)"""
        state = cls(world)
        for entry in section.get("assignments", []):
            state.add(scenario_assignment(entry, world))
        return state

    def to_dict(self) -> dict[str, Any]:
        return {"assignments": [a.to_dict() for a in self.assignments.values()]}

    def add(self, assignment: RoleAssignment) -> None:
        self.assignments[assignment.arm_id.lower()] = assignment

    def get(self, scope: str, name: str) -> RoleAssignment | None:
        return self.assignments.get(f"{scope.rstrip('/')}{ASSIGNMENTS_SEGMENT}{name}".lower())

    def remove(self, assignment: RoleAssignment) -> None:
        self.assignments.pop(assignment.arm_id.lower(), None)

    def find_same(self, scope: str, role: str, principal_id: str) -> RoleAssignment | None:
        """The assignment of `role` to `principal_id` exactly at `scope`, whatever its name."""
        for assignment in self.assignments.values():
            if (
                assignment.scope.rstrip("/").lower() == scope.rstrip("/").lower()
                and assignment.role_guid == role
                and assignment.principal_id.lower() == principal_id.lower()
            ):
                return assignment
        return None

    def has_role(self, oid: str, scope: str, role_ids: set[str] | frozenset[str], now: datetime) -> bool:
        """Whether `oid` holds one of `role_ids` at `scope` or a parent scope, counting only assignments older
        than the scenario's propagation delay (Azure RBAC takes minutes to apply a new grant)."""
        wanted = {role_guid(r) for r in role_ids}
        propagated_before = now - timedelta(seconds=self._world.settings.role_propagation_seconds)
        return any(
            a.principal_id.lower() == oid.lower()
            and a.role_guid in wanted
            and a.created_at <= propagated_before
            and scope_covers(a.scope, scope)
            for a in self.assignments.values()
        )

    def remove_under(self, scope: str) -> None:
        """Drop the assignments at or below a deleted resource, as ARM does."""
        for key in [k for k, a in self.assignments.items() if scope_covers(scope, a.scope)]:
            del self.assignments[key]


def scenario_assignment(
    entry: dict[str, Any], world: World, principal_id: str | None = None
) -> RoleAssignment:
    """An assignment from a scenario entry (ids may say `{subscriptionId}`), propagated before the start."""
    return RoleAssignment(
        name=entry["name"],
        scope=entry["scope"].replace("{subscriptionId}", world.settings.subscription_id),
        role_guid=_scenario_role(entry),
        principal_id=principal_id
        or entry.get("principalId")
        or world.identities.require(entry["principal"]).object_id,
        principal_type=entry.get("principalType", "ServicePrincipal"),
        created_at=parse_instant(entry["createdAt"])
        if "createdAt" in entry
        else world.settings.start_time - timedelta(days=1),
        created_by=entry.get("createdBy", ""),
        description=entry.get("description"),
    )


def _scenario_role(entry: dict[str, Any]) -> str:
    if "roleDefinitionId" in entry:
        guid = role_guid(entry["roleDefinitionId"])
        if guid in BUILTIN_ROLES:
            return guid
    elif (role := find_by_name(entry.get("role", ""))) is not None:
        return role.guid
    raise ValueError(f"rbac.json: assignment {entry.get('name')!r} names no built-in role (set `role`)")

"""Every Microsoft.Authorization route: role definitions and role assignments, at any ARM scope."""

from __future__ import annotations

from ppcmk_sandbox.arm.common import arm_route
from ppcmk_sandbox.rbac import handlers

# The scope is everything before the last /providers/Microsoft.Authorization (it may hold other /providers/).
_AUTHZ = r"(?P<scope>/.*?)/providers/Microsoft\.Authorization"
_DEFINITIONS = _AUTHZ + r"/roleDefinitions"
_ASSIGNMENTS = _AUTHZ + r"/roleAssignments"

ROUTES = [
    arm_route("GET", _DEFINITIONS, handlers.list_role_definitions),
    arm_route("GET", _DEFINITIONS + r"/(?P<name>[^/]+)", handlers.get_role_definition),
    arm_route("GET", _ASSIGNMENTS, handlers.list_role_assignments),
    arm_route("PUT", _ASSIGNMENTS + r"/(?P<name>[^/]+)", handlers.put_role_assignment, mutating=True),
    arm_route("GET", _ASSIGNMENTS + r"/(?P<name>[^/]+)", handlers.get_role_assignment),
    arm_route("DELETE", _ASSIGNMENTS + r"/(?P<name>[^/]+)", handlers.delete_role_assignment, mutating=True),
]

"""ARM handlers for Microsoft.Authorization: built-in role definitions, role assignments at any scope."""

from __future__ import annotations

import re
import uuid
from typing import Any

from ppcmk_sandbox.arm.common import iso
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.rbac.authorize import authorize
from ppcmk_sandbox.rbac.roles import BUILTIN_ROLES, RoleDefinition, find_by_name, role_guid
from ppcmk_sandbox.rbac.state import RbacState, RoleAssignment, scope_covers

_ROLE_NAME_FILTER = re.compile(r"roleName\s+eq\s+'([^']*)'", re.IGNORECASE)
_PRINCIPAL_FILTER = re.compile(r"(?:principalId\s+eq\s+|assignedTo\()'([^']*)'", re.IGNORECASE)
_AT_SCOPE_FILTER = re.compile(r"atScope\(\)", re.IGNORECASE)


def _rbac(req: SandboxRequest) -> RbacState:
    if req.world.rbac is None:
        raise SandboxHttpError(arm_error(500, "InternalServerError", "RBAC state is not loaded"))
    return req.world.rbac


def _definitions_root(req: SandboxRequest) -> str:
    subscription = f"/subscriptions/{req.world.settings.subscription_id}"
    return f"{subscription}/providers/Microsoft.Authorization/roleDefinitions"


def _definition_json(req: SandboxRequest, role: RoleDefinition) -> dict[str, Any]:
    return {
        "id": f"{_definitions_root(req)}/{role.guid}",
        "name": role.guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(role.actions),
                    "notActions": [],
                    "dataActions": list(role.data_actions),
                    "notDataActions": [],
                }
            ],
        },
    }


def list_role_definitions(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, match["scope"], "read", "Microsoft.Authorization/roleDefinitions/read")
    wanted = _ROLE_NAME_FILTER.search(req.query.get("$filter", ""))
    roles = list(BUILTIN_ROLES.values())
    if wanted:
        found = find_by_name(wanted.group(1))
        roles = [found] if found else []
    return SandboxResponse(200, {"value": [_definition_json(req, r) for r in roles], "nextLink": None})


def get_role_definition(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, match["scope"], "read", "Microsoft.Authorization/roleDefinitions/read")
    role = BUILTIN_ROLES.get(match["name"].lower())
    if role is None:
        raise SandboxHttpError(
            arm_error(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition '{match['name']}' does not exist.",
            )
        )
    return SandboxResponse(200, _definition_json(req, role))


def _assignment_json(req: SandboxRequest, assignment: RoleAssignment) -> dict[str, Any]:
    return {
        "id": assignment.arm_id,
        "name": assignment.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": f"{_definitions_root(req)}/{assignment.role_guid}",
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "description": assignment.description,
            "condition": None,
            "createdOn": iso(assignment.created_at),
            "updatedOn": iso(assignment.created_at),
            "createdBy": assignment.created_by,
            "updatedBy": assignment.created_by,
        },
    }


def _bad_request(code: str, message: str) -> SandboxHttpError:
    return SandboxHttpError(arm_error(400, code, message))


def put_role_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    scope, name = match["scope"], match["name"]
    authorize(req, scope, "assign", "Microsoft.Authorization/roleAssignments/write")
    try:
        uuid.UUID(name)
    except ValueError as exc:
        raise _bad_request(
            "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid: use a GUID."
        ) from exc
    body = req.json_object(lambda m: arm_error(400, "InvalidRequestContent", m))
    raw_properties = body.get("properties")
    properties: dict[str, Any] = raw_properties if isinstance(raw_properties, dict) else {}
    role = role_guid(str(properties.get("roleDefinitionId") or ""))
    if role not in BUILTIN_ROLES:
        raise _bad_request(
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{role}' does not exist (properties.roleDefinitionId).",
        )
    principal_id = str(properties.get("principalId") or "")
    principal_type = str(properties.get("principalType") or "")
    world = req.world
    if world.identities.get(principal_id) is None and principal_type != "ServicePrincipal":
        raise _bad_request(
            "PrincipalNotFound",
            f"Principal {principal_id} does not exist in the directory {world.settings.tenant_id}. Check "
            "that you have the correct principal ID. If you are creating this principal and then immediately "
            "assigning a role, this error might be related to a replication delay. In this case, set the "
            "role assignment principalType property to a value, such as ServicePrincipal, User, or Group.",
        )
    if not principal_type:
        known = world.identities.get(principal_id)
        principal_type = known.kind if known else "ServicePrincipal"
    rbac = _rbac(req)
    existing = rbac.get(scope, name)
    if existing is not None:
        if existing.role_guid != role or existing.principal_id.lower() != principal_id.lower():
            raise SandboxHttpError(
                arm_error(
                    409,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                )
            )
        return SandboxResponse(201, _assignment_json(req, existing))
    if rbac.find_same(scope, role, principal_id) is not None:
        raise SandboxHttpError(arm_error(409, "RoleAssignmentExists", "The role assignment already exists."))
    assignment = RoleAssignment(
        name=name,
        scope=scope,
        role_guid=role,
        principal_id=principal_id,
        principal_type=principal_type,
        created_at=world.clock.now(),
        created_by=req.caller.object_id if req.caller else "",
        description=properties.get("description"),
    )
    rbac.add(assignment)
    return SandboxResponse(201, _assignment_json(req, assignment))


def get_role_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, match["scope"], "read", "Microsoft.Authorization/roleAssignments/read")
    assignment = _rbac(req).get(match["scope"], match["name"])
    if assignment is None:
        raise SandboxHttpError(
            arm_error(404, "RoleAssignmentNotFound", f"The role assignment '{match['name']}' is not found.")
        )
    return SandboxResponse(200, _assignment_json(req, assignment))


def delete_role_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    authorize(req, match["scope"], "assign", "Microsoft.Authorization/roleAssignments/delete")
    rbac = _rbac(req)
    assignment = rbac.get(match["scope"], match["name"])
    if assignment is None:
        return SandboxResponse(204)
    rbac.remove(assignment)
    return SandboxResponse(200, _assignment_json(req, assignment))


def list_role_assignments(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """ARM's rules: assignments at, above and below the scope; with atScope() only at or above it."""
    scope = match["scope"]
    authorize(req, scope, "read", "Microsoft.Authorization/roleAssignments/read")
    query = req.query.get("$filter", "")
    principal = _PRINCIPAL_FILTER.search(query)
    at_scope = bool(_AT_SCOPE_FILTER.search(query))
    selected = []
    for assignment in _rbac(req).assignments.values():
        above = scope_covers(assignment.scope, scope)
        if not above and (at_scope or not scope_covers(scope, assignment.scope)):
            continue
        if principal and assignment.principal_id.lower() != principal.group(1).lower():
            continue
        selected.append(_assignment_json(req, assignment))
    return SandboxResponse(200, {"value": selected, "nextLink": None})

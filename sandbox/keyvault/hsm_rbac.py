"""Managed HSM local RBAC routes (served on each HSM's own origin): role definitions list, role assignments
list / get / create / delete at the local scopes ``/``, ``/keys`` and ``/keys/<name>``."""

from __future__ import annotations

import re
import uuid

from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, kv_error
from ppcmk_sandbox.keyvault.hsm_roles import (
    DATA_ACTIONS,
    LOCAL_ROLES,
    LocalRoleAssignment,
    has_local_role,
    local_roles_allowing,
)
from ppcmk_sandbox.keyvault.state import Vault
from ppcmk_sandbox.rbac.roles import role_guid
from ppcmk_sandbox.rbac.state import scope_covers

_SCOPE = r"/*(?P<scope>keys(?:/[^/]+)?)?/*providers/Microsoft\.Authorization"
_PRINCIPAL_FILTER = re.compile(r"principalId\s+eq\s+'(?P<id>[^']+)'", re.IGNORECASE)


def _bad(message: str) -> SandboxHttpError:
    return SandboxHttpError(kv_error(400, "BadParameter", message))


def _hsm(req: SandboxRequest) -> Vault:
    vault = req.vault
    if vault is None or vault.kind != "managedHSM":
        # A vault keeps its role assignments in ARM: this data-plane API does not exist there.
        raise SandboxHttpError(kv_error(404, "NotFound", f"No keyvault API at {req.method} {req.path}."))
    return vault


def _scope(match: re.Match[str]) -> str:
    return "/" + (match.group("scope") or "")


def _require(req: SandboxRequest, vault: Vault, operation: str, scope: str) -> None:
    if req.caller is None:
        raise SandboxHttpError(kv_error(401, "Unauthorized", "Request is missing a Bearer token."))
    roles = local_roles_allowing(operation)
    if not has_local_role(vault.role_assignments, req.caller.object_id, scope, roles):
        raise SandboxHttpError(
            kv_error(
                403,
                "Forbidden",
                f"Caller is not authorized to perform action on resource. Action: "
                f"'Microsoft.KeyVault/managedHsm{DATA_ACTIONS[operation]}'. Scope: '{scope}'. "
                f"Caller: oid={req.caller.object_id}. HSM: {vault.name}",
                inner="ForbiddenByRbac",
            )
        )


def list_definitions(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _hsm(req)
    _require(req, vault, "readRoles", _scope(match))
    return SandboxResponse(200, {"value": [r.to_json() for r in LOCAL_ROLES.values()], "nextLink": None})


def list_assignments(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """At, above and below the scope (as ARM lists); `$filter=atScope()` at or above only; `principalId eq`
    for one principal."""
    vault = _hsm(req)
    scope = _scope(match)
    _require(req, vault, "readRoles", scope)
    text = req.query.get("$filter", "")
    at_scope = "atscope()" in text.lower()
    principal = _PRINCIPAL_FILTER.search(text)
    found = [
        a
        for a in vault.role_assignments.values()
        if scope_covers(a.scope, scope) or (not at_scope and scope_covers(scope, a.scope))
    ]
    if principal:
        found = [a for a in found if a.principal_id.lower() == principal.group("id").lower()]
    return SandboxResponse(200, {"value": [a.to_json() for a in found], "nextLink": None})


def _assignment(vault: Vault, scope: str, name: str) -> LocalRoleAssignment:
    assignment = vault.role_assignments.get(name.lower())
    if assignment is None or assignment.scope.rstrip("/").lower() != scope.rstrip("/").lower():
        raise SandboxHttpError(
            kv_error(404, "RoleAssignmentNotFound", f"Role assignment {name} was not found at {scope}.")
        )
    return assignment


def get_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _hsm(req)
    scope = _scope(match)
    _require(req, vault, "readRoles", scope)
    return SandboxResponse(200, _assignment(vault, scope, match.group("name")).to_json())


def put_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """201 for a new assignment and for the same one again; 409 `RoleAssignmentExists` when the same role is
    already assigned to the principal at the scope under another name (ARM's rule, assumed here too)."""
    vault = _hsm(req)
    scope, name = _scope(match), match.group("name")
    _require(req, vault, "writeRoles", scope)
    try:
        uuid.UUID(name)
    except ValueError as exc:
        raise _bad(f"The role assignment name {name!r} must be a GUID.") from exc
    body = req.json_object(lambda m: kv_error(400, "BadParameter", m))
    properties = body.get("properties") or {}
    guid = role_guid(str(properties.get("roleDefinitionId") or ""))
    if guid not in LOCAL_ROLES:
        raise _bad("properties.roleDefinitionId must name a Managed HSM role definition "
                   "(Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/<guid>).")
    principal_id = str(properties.get("principalId") or "")
    if not principal_id:
        raise _bad("properties.principalId is required.")
    wanted = LocalRoleAssignment(name, scope, guid, principal_id, req.world.clock.now())
    for existing in vault.role_assignments.values():
        same = (existing.scope.rstrip("/").lower(), existing.role_guid, existing.principal_id.lower()) == (
            scope.rstrip("/").lower(), guid, principal_id.lower())
        if existing.name.lower() == name.lower():
            if not same:
                raise SandboxHttpError(kv_error(409, "Conflict", f"Role assignment {name} exists with "
                                                "another role, principal or scope."))
            return SandboxResponse(201, existing.to_json())
        if same:
            raise SandboxHttpError(
                kv_error(409, "RoleAssignmentExists", "The role assignment already exists.")
            )
    vault.role_assignments[name.lower()] = wanted
    return SandboxResponse(201, wanted.to_json())


def delete_assignment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _hsm(req)
    scope = _scope(match)
    _require(req, vault, "writeRoles", scope)
    assignment = _assignment(vault, scope, match.group("name"))
    del vault.role_assignments[assignment.name.lower()]
    return SandboxResponse(200, assignment.to_json())


_ASSIGNMENTS = _SCOPE + r"/roleAssignments"
_ONE = _ASSIGNMENTS + r"/(?P<name>[^/]+)"

ROUTES = [
    Route("GET", _SCOPE + r"/roleDefinitions/?", list_definitions, "keyvault"),
    Route("GET", _ASSIGNMENTS + "/?", list_assignments, "keyvault"),
    Route("GET", _ONE, get_assignment, "keyvault"),
    Route("PUT", _ONE, put_assignment, "keyvault", mutating=True),
    Route("DELETE", _ONE, delete_assignment, "keyvault", mutating=True),
]

"""Managed HSM local RBAC: the built-in local roles, the assignments an HSM holds on its own data plane, and
the one decision "may this principal do this operation at this local scope?".

A managed HSM has no access policies and ignores ARM role assignments for key operations: its roles are
assigned on the HSM itself, at the local scopes ``/`` (everything), ``/keys`` (all keys) or ``/keys/<name>``
(one key).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.clock import parse_instant
from ppcmk_sandbox.rbac.roles import role_guid
from ppcmk_sandbox.rbac.state import Assignment, scope_covers

if TYPE_CHECKING:
    from ppcmk_sandbox.identity.principals import Identities
    from ppcmk_sandbox.settings import SandboxSettings

DEFINITION_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"

HSM_ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4"
HSM_CRYPTO_OFFICER = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
HSM_CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b"
HSM_POLICY_ADMINISTRATOR = "4bd23610-cdcf-4971-bdee-bdc562cc28e4"
HSM_CRYPTO_AUDITOR = "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"
HSM_CRYPTO_SERVICE_ENCRYPTION_USER = "33413926-3206-4cdd-b39a-83574fe37a17"

# Our operation names (access-policy permission names, plus the role management ones) -> the data action the
# service documents for them (prefix Microsoft.KeyVault/managedHsm).
DATA_ACTIONS: dict[str, str] = {
    "get": "/keys/read/action",
    "list": "/keys/read/action",
    "create": "/keys/create",
    "import": "/keys/import/action",
    "update": "/keys/write/action",
    "delete": "/keys/delete",
    "recover": "/keys/deletedKeys/recover/action",
    "purge": "/keys/deletedKeys/delete",
    "backup": "/keys/backup/action",
    "restore": "/keys/restore/action",
    "encrypt": "/keys/encrypt/action",
    "decrypt": "/keys/decrypt/action",
    "wrapKey": "/keys/wrap/action",
    "unwrapKey": "/keys/unwrap/action",
    "sign": "/keys/sign/action",
    "verify": "/keys/verify/action",
    "rotate": "/keys/rotate/action",
    "getrotationpolicy": "/keys/rotationpolicy/read/action",
    "setrotationpolicy": "/keys/rotationpolicy/write/action",
    "readRoles": "/roleAssignments/read/action",
    "writeRoles": "/roleAssignments/write/action",
}
_ROLE_MANAGEMENT = frozenset({"readRoles", "writeRoles"})
_KEY_USE = frozenset(DATA_ACTIONS) - _ROLE_MANAGEMENT - {"recover", "purge"}


@dataclass(frozen=True)
class LocalRole:
    guid: str
    name: str
    description: str
    operations: frozenset[str]

    @property
    def definition_id(self) -> str:
        return DEFINITION_PREFIX + self.guid

    def to_json(self) -> dict[str, Any]:
        actions = sorted({"Microsoft.KeyVault/managedHsm" + DATA_ACTIONS[op] for op in self.operations})
        return {
            "id": self.definition_id,
            "name": self.guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.name,
                "description": self.description,
                "type": "AKVBuiltInRole",
                "assignableScopes": ["/"],
                "permissions": [
                    {"actions": [], "notActions": [], "dataActions": actions, "notDataActions": []}
                ],
            },
        }


# What each role allows, reduced to the operations the sandbox serves (the documented "permitted operations"
# table; which roles may read role assignments is inferred).
LOCAL_ROLES: dict[str, LocalRole] = {
    role.guid: role
    for role in (
        LocalRole(
            HSM_ADMINISTRATOR,
            "Managed HSM Administrator",
            "Security domain, full backup/restore and role management; no key management.",
            _ROLE_MANAGEMENT,
        ),
        LocalRole(
            HSM_CRYPTO_OFFICER,
            "Managed HSM Crypto Officer",
            "Role management, purge or recover deleted keys; no other key management.",
            _ROLE_MANAGEMENT | {"get", "list", "recover", "purge"},
        ),
        LocalRole(
            HSM_CRYPTO_USER,
            "Managed HSM Crypto User",
            "All key management except purge or recover deleted keys and export keys.",
            _KEY_USE | {"readRoles"},
        ),
        LocalRole(
            HSM_POLICY_ADMINISTRATOR,
            "Managed HSM Policy Administrator",
            "Create and delete role assignments.",
            _ROLE_MANAGEMENT,
        ),
        LocalRole(
            HSM_CRYPTO_AUDITOR,
            "Managed HSM Crypto Auditor",
            "Read (not use) key attributes.",
            frozenset({"get", "list", "getrotationpolicy", "readRoles"}),
        ),
        LocalRole(
            HSM_CRYPTO_SERVICE_ENCRYPTION_USER,
            "Managed HSM Crypto Service Encryption User",
            "Use a key for service encryption (get, wrap, unwrap).",
            frozenset({"get", "wrapKey", "unwrapKey"}),
        ),
    )
}


def local_roles_allowing(*operations: str) -> frozenset[str]:
    return frozenset(g for g, role in LOCAL_ROLES.items() if set(operations) <= role.operations)


def key_scope(key_name: str | None) -> str:
    return f"/keys/{key_name}" if key_name else "/keys"


@dataclass
class LocalRoleAssignment(Assignment):
    """An assignment on the HSM's own data plane (scope `/`, `/keys` or `/keys/<name>`)."""

    def to_json(self) -> dict[str, Any]:
        """The data plane's shape of an assignment."""
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "scope": self.scope,
                "roleDefinitionId": DEFINITION_PREFIX + self.role_guid,
                "principalId": self.principal_id,
            },
        }


def assignment_from_dict(
    entry: dict[str, Any], directory: Identities, settings: SandboxSettings
) -> LocalRoleAssignment:
    """A saved assignment, or a scenario one naming the role (`role`) and the persona (`principal`)."""
    if "roleDefinitionId" in entry:
        guid = role_guid(entry["roleDefinitionId"])
    else:
        wanted = str(entry.get("role", "")).lower()
        guid = next((g for g, r in LOCAL_ROLES.items() if r.name.lower() == wanted), "")
    if guid not in LOCAL_ROLES:
        raise ValueError(f"keyvault.json: HSM role assignment {entry.get('name')!r} names no local HSM role")
    return LocalRoleAssignment(
        name=entry.get("name") or str(uuid.uuid4()),
        scope=entry.get("scope", "/"),
        role_guid=guid,
        principal_id=entry.get("principalId") or directory.require(entry["principal"]).object_id,
        created_at=parse_instant(entry["createdAt"])
        if entry.get("createdAt")
        else settings.start_time - timedelta(days=1),
    )


def has_local_role(
    assignments: dict[str, LocalRoleAssignment],
    object_id: str,
    scope: str,
    roles: frozenset[str],
) -> bool:
    """Whether `object_id` holds one of `roles` at `scope` or above. Local assignments live in the HSM itself,
    so they apply at once (no ARM replication delay)."""
    return any(
        a.principal_id.lower() == object_id.lower()
        and a.role_guid in roles
        and scope_covers(a.scope, scope)
        for a in assignments.values()
    )


def initial_admin_assignments(object_ids: list[str], now: datetime) -> dict[str, LocalRoleAssignment]:
    """What a new HSM starts with: its `initialAdminObjectIds` hold Managed HSM Administrator at `/`."""
    assignments = [
        LocalRoleAssignment(str(uuid.uuid4()), "/", HSM_ADMINISTRATOR, str(oid), now) for oid in object_ids
    ]
    return {a.name.lower(): a for a in assignments}

"""Azure Resource Manager ids: parse, format, compare, and name role assignments deterministically.

ARM ids are case-insensitive (a case-sensitive comparison once broke the unlink script), so every
comparison here ignores case while formatting keeps the caller's spelling.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_NAME = r"[^/]+"
_RESOURCE_ID = re.compile(
    rf"^/subscriptions/(?P<subscription>{_GUID})/resourceGroups/(?P<resource_group>{_NAME})"
    rf"/providers/(?P<namespace>[A-Za-z0-9.]+)/(?P<type>[A-Za-z]+)/(?P<name>{_NAME})$",
    re.IGNORECASE,
)
VAULT_TYPE = ("Microsoft.KeyVault", "vaults")
MANAGED_HSM_TYPE = ("Microsoft.KeyVault", "managedHSMs")
POLICY_TYPE = ("Microsoft.PowerPlatform", "enterprisePolicies")

# A fixed namespace so that the same (scope, principal, role) always yields the same assignment name.
_ASSIGNMENT_NAMESPACE = uuid.UUID("6f1c1a52-3c1e-4a52-9d2b-7a3c0c6e2f10")


@dataclass(frozen=True)
class ResourceId:
    """A top-level ARM resource id inside a resource group."""

    subscription: str
    resource_group: str
    namespace: str
    type: str
    name: str

    def __str__(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{self.namespace}/{self.type}/{self.name}")

    def is_type(self, namespace: str, type_: str) -> bool:
        return self.namespace.lower() == namespace.lower() and self.type.lower() == type_.lower()


def parse_resource_id(value: str, expected: tuple[str, str] | None = None) -> ResourceId:
    """Parse `/subscriptions/<guid>/resourceGroups/<rg>/providers/<ns>/<type>/<name>`.

    Raises ValueError with an example of the expected shape when the id is malformed or of another type.
    """
    match = _RESOURCE_ID.match(value.strip())
    if not match:
        shape = "/subscriptions/<guid>/resourceGroups/<group>/providers/<namespace>/<type>/<name>"
        if expected:
            shape = shape.replace("<namespace>/<type>", f"{expected[0]}/{expected[1]}")
        raise ValueError(f"{value!r} is not a well-formed ARM resource id; expected {shape}")
    rid = ResourceId(**match.groupdict())
    if expected and not rid.is_type(*expected):
        wanted = "/".join(expected)
        raise ValueError(f"{value!r} is a {rid.namespace}/{rid.type} id, expected {wanted}")
    return rid


def vault_id(subscription: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription, resource_group, *VAULT_TYPE, name))


def policy_id(subscription: str, resource_group: str, name: str) -> str:
    return str(ResourceId(subscription, resource_group, *POLICY_TYPE, name))


_ANY_ID = re.compile(r"/subscriptions/[^\s,;()]+/([^/\s,;()]+)")


def short_id(text: object) -> str:
    """`text` with each ARM id in it shortened to its last segment (the resource's name): what people
    read."""
    return _ANY_ID.sub(r"\1", str(text))


def same_id(a: str | None, b: str | None) -> bool:
    """Case-insensitive ARM id equality that also ignores a trailing slash."""
    if a is None or b is None:
        return False
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def role_assignment_name(scope: str, principal_id: str, role_definition_id: str) -> str:
    """A deterministic role assignment name, so a re-run PUTs the same assignment instead of a duplicate."""
    role_guid = role_definition_id.rstrip("/").rsplit("/", 1)[-1]
    key = f"{scope.strip().rstrip('/').lower()}|{principal_id.lower()}|{role_guid.lower()}"
    return str(uuid.uuid5(_ASSIGNMENT_NAMESPACE, key))

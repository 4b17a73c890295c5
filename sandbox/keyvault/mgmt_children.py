"""ARM views below a vault: access policies (add / remove / replace) and keys with their versions."""

from __future__ import annotations

import re
from typing import Any

from ppcmk_sandbox.arm.common import not_found
from ppcmk_sandbox.http import SandboxRequest, SandboxResponse, arm_error
from ppcmk_sandbox.keyvault import bundles
from ppcmk_sandbox.keyvault.mgmt import bad_request, find_vault
from ppcmk_sandbox.keyvault.state import ARM_TYPES, Key, KeyVersion, Vault
from ppcmk_sandbox.rbac.authorize import authorize


def update_access_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "write", "Microsoft.KeyVault/vaults/accessPolicies/write")
    operation = match["operation"].lower()
    body = req.json_object(lambda m: arm_error(400, "BadRequest", m))
    changes = (body.get("properties") or {}).get("accessPolicies")
    if not isinstance(changes, list):
        raise bad_request("properties.accessPolicies must be a list of access policy entries.")
    policies: list[dict[str, Any]] = [dict(p) for p in vault.properties.get("accessPolicies") or []]
    for change in changes:
        _validate_entry(change)
        policies = _apply_access_change(policies, change, operation)
    vault.properties["accessPolicies"] = policies
    return SandboxResponse(
        200,
        {
            "id": f"{vault.arm_id}/accessPolicies/{operation}",
            "type": "Microsoft.KeyVault/vaults/accessPolicies",
            "properties": {"accessPolicies": changes},
        },
    )


def _validate_entry(entry: Any) -> None:
    if (
        not isinstance(entry, dict)
        or not entry.get("objectId")
        or not isinstance(entry.get("permissions"), dict)
    ):
        raise bad_request("each access policy entry needs tenantId, objectId and permissions.")


def _apply_access_change(
    policies: list[dict[str, Any]], change: dict[str, Any], operation: str
) -> list[dict[str, Any]]:
    """add: union of permissions; remove: subtract them (dropping an emptied entry); replace: overwrite."""
    oid = str(change["objectId"]).lower()
    current = next((p for p in policies if str(p.get("objectId", "")).lower() == oid), None)
    others = [p for p in policies if p is not current]
    if operation == "replace" or current is None:
        return others if operation == "remove" else [*others, change]
    merged: dict[str, list[str]] = {}
    for kind in {*current.get("permissions", {}), *change["permissions"]}:
        have = list(current.get("permissions", {}).get(kind, []))
        delta = {str(p).lower() for p in change["permissions"].get(kind, [])}
        if operation == "add":
            merged[kind] = have + [
                p for p in change["permissions"].get(kind, []) if p.lower() not in {h.lower() for h in have}
            ]
        else:
            merged[kind] = [p for p in have if p.lower() not in delta]
    if operation == "remove" and not any(merged.values()):
        return others
    return [*others, {**current, "permissions": merged}]


def _arm_key(
    req: SandboxRequest, vault: Vault, key: Key, version: KeyVersion | None = None
) -> dict[str, Any]:
    shown = version or key.current
    uri = f"{req.world.keyvault.url_for(vault, req.base_url)}keys/{key.name}"
    key_id = f"{vault.arm_id}/keys/{key.name}" + (f"/versions/{version.version}" if version else "")
    properties: dict[str, Any] = {
        "attributes": bundles.attributes(vault, shown),
        "kty": shown.kty,
        "keyOps": shown.key_ops,
        "keyUri": uri,
        "keyUriWithVersion": f"{uri}/{shown.version}",
    }
    if shown.size:
        properties["keySize"] = shown.size
    if shown.curve:
        properties["curveName"] = shown.curve
    if key.rotation_policy and version is None:
        properties["rotationPolicy"] = key.rotation_policy
    return {
        "id": key_id,
        "name": key.name if version is None else version.version,
        "type": f"{ARM_TYPES[vault.kind]}/keys" + ("/versions" if version else ""),
        "location": vault.location,
        "tags": shown.tags,
        "properties": properties,
    }


def _arm_key_of(req: SandboxRequest, match: re.Match[str]) -> tuple[Vault, Key]:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "read", f"{ARM_TYPES[vault.kind]}/keys/read")
    key = vault.key(match["key"])
    if key is None:
        raise not_found(f"{ARM_TYPES[vault.kind]}/keys", match["key"], vault.resource_group)
    return vault, key


def list_arm_keys(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = find_vault(req, match)
    authorize(req, vault.arm_id, "read", f"{ARM_TYPES[vault.kind]}/keys/read")
    items = [_arm_key(req, vault, k) for k in vault.keys.values() if not k.deleted]
    return SandboxResponse(200, {"value": items, "nextLink": None})


def get_arm_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault, key = _arm_key_of(req, match)
    return SandboxResponse(200, _arm_key(req, vault, key))


def list_arm_key_versions(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault, key = _arm_key_of(req, match)
    return SandboxResponse(
        200, {"value": [_arm_key(req, vault, key, v) for v in key.versions], "nextLink": None}
    )


def get_arm_key_version(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault, key = _arm_key_of(req, match)
    version = key.version(match["version"])
    if version is None:
        raise not_found(f"{ARM_TYPES[vault.kind]}/keys/versions", match["version"], vault.resource_group)
    return SandboxResponse(200, _arm_key(req, vault, key, version))

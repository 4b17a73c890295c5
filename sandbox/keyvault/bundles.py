"""Key Vault data-plane JSON: key bundles, list items, deleted keys, rotation policies (Host-based URLs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ppcmk_sandbox.keyvault import material
from ppcmk_sandbox.keyvault.state import Key, KeyVersion, Vault

DEFAULT_ROTATION_POLICY: dict[str, Any] = {
    "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
    "attributes": {},
}


def epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def kid(base_url: str, key: Key, version: KeyVersion | None = None) -> str:
    suffix = f"/{version.version}" if version else ""
    return f"{base_url}/keys/{key.name}{suffix}"


def attributes(vault: Vault, version: KeyVersion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "enabled": version.enabled,
        "created": epoch(version.created),
        "updated": epoch(version.updated),
        "recoveryLevel": "Recoverable" if vault.purge_protection else "Recoverable+Purgeable",
        "recoverableDays": vault.retention.days,
        "exportable": False,
    }
    if version.nbf:
        body["nbf"] = epoch(version.nbf)
    if version.exp:
        body["exp"] = epoch(version.exp)
    return body


def key_bundle(base_url: str, vault: Vault, key: Key, version: KeyVersion) -> dict[str, Any]:
    jwk: dict[str, Any] = {"kid": kid(base_url, key, version), "kty": version.kty, "key_ops": version.key_ops}
    if version.curve:
        jwk["crv"] = version.curve
    jwk.update(material.public_jwk(version.private_key()))
    return {"key": jwk, "attributes": attributes(vault, version), "tags": version.tags}


def key_item(base_url: str, vault: Vault, key: Key, version: KeyVersion | None = None) -> dict[str, Any]:
    """A list entry: the key (current attributes) or one of its versions."""
    shown = version or key.current
    return {"kid": kid(base_url, key, version), "attributes": attributes(vault, shown), "tags": shown.tags}


def deleted_fields(base_url: str, vault: Vault, key: Key) -> dict[str, Any]:
    assert key.deleted_at is not None
    return {
        "recoveryId": f"{base_url}/deletedkeys/{key.name}",
        "deletedDate": epoch(key.deleted_at),
        "scheduledPurgeDate": epoch(key.deleted_at + vault.retention),
    }


def rotation_policy(base_url: str, key: Key) -> dict[str, Any]:
    policy = key.rotation_policy or DEFAULT_ROTATION_POLICY
    return {"id": f"{base_url}/keys/{key.name}/rotationpolicy", **policy}

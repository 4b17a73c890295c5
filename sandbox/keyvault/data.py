"""Key Vault keys data plane (any api-version): create, import, get, list, update, rotate, rotation policy,
crypto operations, delete / recover / purge. Served on each vault's (or managed HSM's) own origin."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from ppcmk_sandbox.clock import parse_instant
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, kv_error
from ppcmk_sandbox.keyvault import bundles, material
from ppcmk_sandbox.keyvault.authz import authorize
from ppcmk_sandbox.keyvault.state import DEFAULT_KEY_OPS, Key, KeyVersion, Vault, parse_duration

RSA_SIZES = (2048, 3072, 4096)
KEY_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
PAGE_SIZE = 25
CRYPTO_OPERATIONS = {
    "wrapkey": "wrapKey",
    "unwrapkey": "unwrapKey",
    "encrypt": "encrypt",
    "decrypt": "decrypt",
}


def bad(message: str) -> SandboxHttpError:
    return SandboxHttpError(kv_error(400, "BadParameter", message))


def _vault(req: SandboxRequest) -> Vault:
    assert req.vault is not None, "keyvault routes are served on vault origins only"
    return req.vault


def _allowed(req: SandboxRequest, operation: str, key_name: str | None = None) -> Vault:
    vault = _vault(req)
    authorize(req.world, vault, req.caller, operation, key_name)
    return vault


def _key(vault: Vault, name: str) -> Key:
    key = vault.key(name)
    if key is None:
        raise SandboxHttpError(
            kv_error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        )
    return key


def _version(vault: Vault, name: str, version: str | None) -> tuple[Key, KeyVersion]:
    key = _key(vault, name)
    if not version:
        return key, key.current
    found = key.version(version)
    if found is None:
        raise SandboxHttpError(
            kv_error(
                404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found in this key vault."
            )
        )
    return key, found


def _instant(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=parse_instant("1970-01-01").tzinfo)
    except (TypeError, ValueError) as exc:
        raise bad(f"attributes.{field} must be a Unix time in seconds") from exc


def _apply_attributes(version: KeyVersion, body: dict[str, Any]) -> None:
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise bad("attributes must be an object")
    if "enabled" in attributes:
        version.enabled = bool(attributes["enabled"])
    if "nbf" in attributes:
        version.nbf = _instant(attributes["nbf"], "nbf")
    if "exp" in attributes:
        version.exp = _instant(attributes["exp"], "exp")
    if body.get("key_ops") is not None:
        version.key_ops = [str(op) for op in body["key_ops"]]
    if body.get("tags") is not None:
        version.tags = {str(k): str(v) for k, v in body["tags"].items()}


def _page(req: SandboxRequest, items: list[dict[str, Any]], path: str) -> SandboxResponse:
    try:
        size = min(int(req.query.get("maxresults", PAGE_SIZE)), PAGE_SIZE)
        skip = int(req.query.get("skip", 0))
    except ValueError as exc:
        raise bad("maxresults and skip must be integers") from exc
    if size < 1:
        raise bad("maxresults must be between 1 and 25")
    page = items[skip : skip + size]
    more = skip + size < len(items)
    next_link = f"{req.base_url}{path}?maxresults={size}&skip={skip + size}" if more else None
    return SandboxResponse(200, {"value": page, "nextLink": next_link})


def _bundle(req: SandboxRequest, vault: Vault, key: Key, version: KeyVersion) -> SandboxResponse:
    return SandboxResponse(200, bundles.key_bundle(req.base_url, vault, key, version))


def _new_version(vault: Vault, name: str, now: datetime) -> Key | None:
    """The existing live key a new version joins, or None for a new key; a soft-deleted name is a conflict."""
    if not KEY_NAME.fullmatch(name):
        raise bad(f"Key name {name!r} is invalid: use 1-127 letters, digits and dashes.")
    existing = vault.key(name, include_deleted=True)
    if existing is not None and existing.deleted:
        raise SandboxHttpError(
            kv_error(
                409,
                "Conflict",
                f"Key {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the key can only be recovered or purged.",
            )
        )
    return existing


def _add(vault: Vault, name: str, existing: Key | None, version: KeyVersion) -> Key:
    if existing is not None:
        existing.versions.append(version)
        return existing
    key = Key(name=name, versions=[version])
    vault.keys[name.lower()] = key
    return key


def create_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "create", name)
    body = req.json_object(lambda m: kv_error(400, "BadParameter", m))
    now = req.world.clock.now()
    existing = _new_version(vault, name, now)
    kty = str(body.get("kty", ""))
    size: int | None = None
    curve: str | None = None
    if kty in ("RSA", "RSA-HSM"):
        size = int(body.get("key_size") or 2048)
        if size not in RSA_SIZES:
            raise bad(f"key_size {size} is not supported; use 2048, 3072 or 4096.")
    elif kty in ("EC", "EC-HSM"):
        curve = str(body.get("crv") or "P-256")
        if curve not in material.CURVES:
            raise bad(f"crv {curve!r} is not supported; use one of {', '.join(material.CURVES)}.")
    else:
        raise bad(f"kty {kty!r} is not supported; use RSA, RSA-HSM, EC or EC-HSM.")
    if vault.kind == "managedHSM" and not kty.endswith("-HSM"):
        kty += "-HSM"  # a managed HSM only holds HSM-protected keys
    version = _fresh_version(kty, size, curve, body.get("key_ops"), now)
    _apply_attributes(version, body)
    key = _add(vault, name, existing, version)
    return _bundle(req, vault, key, version)


def _fresh_version(kty: str, size: int | None, curve: str | None, key_ops: Any, now: datetime) -> KeyVersion:
    """A new enabled version without activation or expiry (the request's attributes are applied after)."""
    return KeyVersion(
        version=uuid.uuid4().hex,
        kty=kty,
        size=size,
        curve=curve,
        key_ops=[str(op) for op in key_ops or DEFAULT_KEY_OPS],
        enabled=True,
        nbf=None,
        exp=None,
        created=now,
        updated=now,
    )


def import_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "import", name)
    body = req.json_object(lambda m: kv_error(400, "BadParameter", m))
    jwk = body.get("key")
    if not isinstance(jwk, dict):
        raise bad("key: give the key material as a JSON Web Key")
    try:
        private = material.private_from_jwk(jwk)
    except (KeyError, ValueError) as exc:
        raise bad(f"key: not a complete private JWK ({exc})") from exc
    now = req.world.clock.now()
    existing = _new_version(vault, name, now)
    kty = str(jwk["kty"])
    if body.get("hsm") or vault.kind == "managedHSM":
        kty = kty if kty.endswith("-HSM") else f"{kty}-HSM"
    size = private.key_size if kty.startswith("RSA") else None
    version = _fresh_version(kty, size, jwk.get("crv"), jwk.get("key_ops"), now)
    material.remember(version.version, private)
    _apply_attributes(version, {"attributes": body.get("attributes"), "tags": body.get("tags")})
    key = _add(vault, name, existing, version)
    return _bundle(req, vault, key, version)


def get_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "get", name)
    key, version = _version(vault, name, match["version"])
    return _bundle(req, vault, key, version)


def update_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "update", name)
    key, version = _version(vault, name, match["version"])
    _apply_attributes(version, req.json_object(lambda m: kv_error(400, "BadParameter", m)))
    version.updated = req.world.clock.now()
    return _bundle(req, vault, key, version)


def list_keys(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _allowed(req, "list")
    items = [bundles.key_item(req.base_url, vault, k) for k in vault.keys.values() if not k.deleted]
    return _page(req, items, "/keys")


def list_versions(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "list", name)
    key = _key(vault, name)
    items = [bundles.key_item(req.base_url, vault, key, v) for v in key.versions]
    return _page(req, items, f"/keys/{key.name}/versions")


def rotate_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "rotate", name)
    key = _key(vault, name)
    version = key.add_version(key.current, req.world.clock.now(), key.policy_expiry())
    return _bundle(req, vault, key, version)


def get_rotation_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "getrotationpolicy", name)
    return SandboxResponse(200, bundles.rotation_policy(req.base_url, _key(vault, name)))


def _validated_policy(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("lifetimeActions") or []
    if not isinstance(actions, list) or len(actions) > 2:
        raise bad("lifetimeActions must be a list of at most two actions (one Rotate, one Notify)")
    for index, action in enumerate(actions):
        kind = str((action.get("action") or {}).get("type", ""))
        if kind.lower() not in ("rotate", "notify"):
            raise bad(f"lifetimeActions[{index}].action.type must be Rotate or Notify")
        trigger = action.get("trigger") or {}
        given = [t for t in ("timeAfterCreate", "timeBeforeExpiry") if trigger.get(t)]
        if len(given) != 1:
            raise bad(
                f"lifetimeActions[{index}].trigger needs exactly one of timeAfterCreate, timeBeforeExpiry"
            )
        if kind.lower() == "notify" and given[0] == "timeAfterCreate":
            raise bad(f"lifetimeActions[{index}]: Notify only supports timeBeforeExpiry")
        try:
            parse_duration(trigger[given[0]])
        except ValueError as exc:
            raise bad(f"lifetimeActions[{index}].trigger.{given[0]}: {exc}") from exc
    expiry = (body.get("attributes") or {}).get("expiryTime")
    if expiry:
        try:
            if parse_duration(expiry).days < 28:
                raise bad("attributes.expiryTime must be at least 28 days (P28D)")
        except ValueError as exc:
            raise bad(f"attributes.expiryTime: {exc}") from exc
    return {"lifetimeActions": actions, "attributes": {"expiryTime": expiry} if expiry else {}}


def set_rotation_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "setrotationpolicy", name)
    key = _key(vault, name)
    policy = _validated_policy(req.json_object(lambda m: kv_error(400, "BadParameter", m)))
    stamp = bundles.epoch(req.world.clock.now())
    created = (key.rotation_policy or {}).get("attributes", {}).get("created", stamp)
    policy["attributes"].update({"created": created, "updated": stamp})
    key.rotation_policy = policy
    return SandboxResponse(200, bundles.rotation_policy(req.base_url, key))


def crypto_operation(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name, operation = match["name"], CRYPTO_OPERATIONS[match["operation"].lower()]
    vault = _allowed(req, operation, name)
    key, version = _version(vault, name, match["version"])
    now = req.world.clock.now()
    if not version.enabled:
        raise SandboxHttpError(
            kv_error(403, "Forbidden", f"Operation {operation} is not allowed on a disabled key.")
        )
    if not version.usable_at(now):
        raise SandboxHttpError(
            kv_error(
                403, "Forbidden", f"Operation {operation} is not allowed on an expired or not yet active key."
            )
        )
    if operation not in version.key_ops:
        raise SandboxHttpError(
            kv_error(403, "Forbidden", f"Operation {operation} is not permitted for this key.")
        )
    body = req.json_object(lambda m: kv_error(400, "BadParameter", m))
    alg, value = str(body.get("alg", "")), body.get("value")
    if not isinstance(value, str):
        raise bad("value: the base64url input is required")
    try:
        data = material.b64url_decode(value)
        if operation in ("encrypt", "wrapKey"):
            result = material.rsa_encrypt(version.private_key(), alg, data)
        else:
            result = material.rsa_decrypt(version.private_key(), alg, data)
    except ValueError as exc:
        raise bad(f"{operation} failed: {exc}") from exc
    return SandboxResponse(
        200, {"kid": bundles.kid(req.base_url, key, version), "value": material.b64url(result)}
    )


def _deleted_bundle(req: SandboxRequest, vault: Vault, key: Key) -> dict[str, Any]:
    return {
        **bundles.key_bundle(req.base_url, vault, key, key.current),
        **bundles.deleted_fields(req.base_url, vault, key),
    }


def delete_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "delete", name)
    key = _key(vault, name)
    key.deleted_at = req.world.clock.now()
    return SandboxResponse(200, _deleted_bundle(req, vault, key))


def _deleted_key(vault: Vault, name: str) -> Key:
    key = vault.key(name, include_deleted=True)
    if key is None or not key.deleted:
        raise SandboxHttpError(kv_error(404, "KeyNotFound", f"Deleted Key not found: {name}"))
    return key


def get_deleted_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "get", name)
    return SandboxResponse(200, _deleted_bundle(req, vault, _deleted_key(vault, name)))


def list_deleted_keys(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    vault = _allowed(req, "list")
    items = [
        {**bundles.key_item(req.base_url, vault, k), **bundles.deleted_fields(req.base_url, vault, k)}
        for k in vault.keys.values()
        if k.deleted
    ]
    return _page(req, items, "/deletedkeys")


def recover_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "recover", name)
    key = _deleted_key(vault, name)
    key.deleted_at = None
    return _bundle(req, vault, key, key.current)


def purge_key(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    name = match["name"]
    vault = _allowed(req, "purge", name)
    key = _deleted_key(vault, name)
    if vault.purge_protection:
        raise SandboxHttpError(
            kv_error(
                403,
                "Forbidden",
                f"Operation 'purge' is not allowed on key {name} because purge protection "
                "is enabled for this vault. Key Vault purges it after the retention period has passed.",
            )
        )
    del vault.keys[key.name.lower()]
    return SandboxResponse(204)

"""Key Vault state: vaults and managed HSMs (ARM properties), keys, versions, rotation policies."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from ppcmk_sandbox.clock import instant_or_none
from ppcmk_sandbox.keyvault import material
from ppcmk_sandbox.keyvault.hsm_roles import LocalRoleAssignment, assignment_from_dict
from ppcmk_sandbox.resource_ids import resource_id
from ppcmk_sandbox.saved import saved_fields

if TYPE_CHECKING:
    from ppcmk_sandbox.world import World

VaultKind = Literal["vault", "managedHSM"]
ARM_TYPES: dict[str, str] = {
    "vault": "Microsoft.KeyVault/vaults",
    "managedHSM": "Microsoft.KeyVault/managedHSMs",
}
DEFAULT_KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """ISO-8601 duration as Key Vault uses it (P90D, P1Y, P2M, PT12H); a year is 365 days, a month 30."""
    found = _DURATION.fullmatch(text.strip())
    if not found or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as P90D or P1Y")
    parts = {k: int(v) for k, v in found.groupdict().items() if v}
    days = (
        parts.get("years", 0) * 365
        + parts.get("months", 0) * 30
        + parts.get("weeks", 0) * 7
        + parts.get("days", 0)
    )
    return timedelta(
        days=days,
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass
class KeyVersion:
    version: str
    kty: str
    size: int | None
    curve: str | None
    key_ops: list[str]
    enabled: bool
    nbf: datetime | None
    exp: datetime | None
    created: datetime
    updated: datetime
    tags: dict[str, str] = field(default_factory=dict)

    def private_key(self) -> material.PrivateKey:
        return material.private_key_for(self.version, self.kty, self.size, self.curve)

    def usable_at(self, now: datetime) -> bool:
        """Enabled, active (nbf passed) and not expired."""
        return self.enabled and (self.nbf is None or self.nbf <= now) and (self.exp is None or self.exp > now)

    def to_dict(self) -> dict[str, Any]:
        data = saved_fields(self)
        if material.is_materialised(self.version):
            data["pem"] = material.to_pem(self.private_key())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_created: datetime) -> KeyVersion:
        created = instant_or_none(data.get("created")) or default_created
        version = KeyVersion(
            version=data.get("version") or uuid.uuid4().hex,
            kty=data.get("kty", "RSA"),
            size=data.get("size"),
            curve=data.get("curve"),
            key_ops=list(data.get("key_ops", DEFAULT_KEY_OPS)),
            enabled=bool(data.get("enabled", True)),
            nbf=instant_or_none(data.get("nbf")),
            exp=instant_or_none(data.get("exp")),
            created=created,
            updated=instant_or_none(data.get("updated")) or created,
            tags=dict(data.get("tags", {})),
        )
        if data.get("pem"):
            material.remember(version.version, material.from_pem(data["pem"]))
        return version


@dataclass
class Key:
    name: str
    versions: list[KeyVersion]  # oldest -> newest; the last one is current
    deleted_at: datetime | None = None
    rotation_policy: dict[str, Any] | None = None  # Key Vault JSON shape (lifetimeActions, attributes)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def current(self) -> KeyVersion:
        return self.versions[-1]

    def version(self, version: str) -> KeyVersion | None:
        return next((v for v in self.versions if v.version.lower() == version.lower()), None)

    def add_version(self, template: KeyVersion, created: datetime, expiry: timedelta | None) -> KeyVersion:
        """A new current version with the same type/size/ops (rotation), expiring per the rotation policy."""
        new = KeyVersion(
            version=uuid.uuid4().hex,
            kty=template.kty,
            size=template.size,
            curve=template.curve,
            key_ops=list(template.key_ops),
            enabled=True,
            nbf=None,
            exp=created + expiry if expiry else None,
            created=created,
            updated=created,
            tags=dict(template.tags),
        )
        self.versions.append(new)
        return new

    def policy_expiry(self) -> timedelta | None:
        expiry = (self.rotation_policy or {}).get("attributes", {}).get("expiryTime")
        return parse_duration(expiry) if expiry else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [v.to_dict() for v in self.versions],
            "deleted_at": _iso(self.deleted_at),
            "rotation_policy": self.rotation_policy,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], now: datetime) -> Key:
        versions = [KeyVersion.from_dict(v, now) for v in data.get("versions", [])]
        if not versions:
            raise ValueError(f"keyvault: key {data.get('name')!r} needs at least one version")
        return cls(
            name=data["name"],
            versions=versions,
            deleted_at=instant_or_none(data.get("deleted_at")),
            rotation_policy=data.get("rotation_policy"),
        )


@dataclass
class Vault:
    """A vault or managed HSM; ``properties`` is the ARM ``properties`` object (URIs added per request)."""

    name: str
    subscription_id: str
    resource_group: str
    kind: VaultKind
    location: str
    properties: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    keys: dict[str, Key] = field(default_factory=dict)  # by lower-case name
    deleted_at: datetime | None = None
    # Managed HSM local RBAC, by lower-case assignment name (vaults keep theirs in ARM).
    role_assignments: dict[str, LocalRoleAssignment] = field(default_factory=dict)

    @property
    def arm_id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, ARM_TYPES[self.kind], self.name)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def purge_protection(self) -> bool:
        return bool(self.properties.get("enablePurgeProtection"))

    @property
    def rbac_authorization(self) -> bool:
        # Managed HSMs only have (local) RBAC.
        return self.kind == "managedHSM" or bool(self.properties.get("enableRbacAuthorization"))

    @property
    def retention(self) -> timedelta:
        return timedelta(days=int(self.properties.get("softDeleteRetentionInDays", 90)))

    def key(self, name: str, include_deleted: bool = False) -> Key | None:
        key = self.keys.get(name.lower())
        if key is None or (key.deleted and not include_deleted):
            return None
        return key

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "kind": self.kind,
            "location": self.location,
            "properties": self.properties,
            "tags": self.tags,
            "deleted_at": _iso(self.deleted_at),
            "keys": [k.to_dict() for k in self.keys.values()],
            "role_assignments": [a.to_dict() for a in self.role_assignments.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], world: World) -> Vault:
        keys = [Key.from_dict(k, world.clock.now()) for k in data.get("keys", [])]
        assignments = [
            assignment_from_dict(entry, world.identities, world.settings)
            for entry in data.get("role_assignments", [])
        ]
        return cls(
            name=data["name"],
            subscription_id=data.get("subscription_id", world.subscription_id),
            resource_group=data["resource_group"],
            kind=data.get("kind", "vault"),
            location=data.get("location", "westus"),
            properties=dict(data.get("properties", {})),
            tags=dict(data.get("tags", {})),
            keys={k.name.lower(): k for k in keys},
            deleted_at=instant_or_none(data.get("deleted_at")),
            role_assignments={a.name.lower(): a for a in assignments},
        )


class VaultOrigins(Protocol):
    """Gives each vault its own origin (port); the server provides it, a bare World has none."""

    def ensure(self, vault_name: str) -> int | None: ...


class NoOrigins:
    def ensure(self, vault_name: str) -> int | None:
        return None


def origin_url(base_url: str, port: int | None) -> str:
    """A vault's origin as seen by a request that came in on ``base_url`` (same host, the vault's port)."""
    host = urlsplit(base_url).hostname or "127.0.0.1"
    return f"https://{host}:{port}/" if port else f"https://{host}/"


class KeyVaultState:
    def __init__(self, vaults: list[Vault]) -> None:
        self.vaults: dict[str, Vault] = {v.name.lower(): v for v in vaults}
        self.origins: VaultOrigins = NoOrigins()

    @classmethod
    def load(cls, section: dict[str, Any], world: World) -> KeyVaultState:
        return cls([Vault.from_dict(v, world) for v in section.get("vaults", [])])

    def to_dict(self) -> dict[str, Any]:
        return {"vaults": [v.to_dict() for v in self.vaults.values()]}

    def find_vault(self, arm_id: str) -> Vault | None:
        """A live vault or managed HSM by ARM id (case-insensitive)."""
        wanted = arm_id.rstrip("/").lower()
        return next((v for v in self.vaults.values() if v.arm_id.lower() == wanted and not v.deleted), None)

    def get(self, name: str, include_deleted: bool = False) -> Vault | None:
        vault = self.vaults.get(name.lower())
        return vault if vault and (include_deleted or not vault.deleted) else None

    def add(self, vault: Vault) -> Vault:
        self.vaults[vault.name.lower()] = vault
        self.origins.ensure(vault.name)
        return vault

    def url_for(self, vault: Vault, base_url: str) -> str:
        """``vaultUri`` / ``hsmUri``: the vault's own origin, on the host name the caller used."""
        return origin_url(base_url, self.origins.ensure(vault.name))

    def reconcile(self, world: World) -> None:
        """Fire due rotation policies and purge soft-deleted keys and vaults whose retention has passed."""
        now = world.clock.now()
        for vault in list(self.vaults.values()):
            if vault.deleted_at and now >= vault.deleted_at + vault.retention:
                del self.vaults[vault.name.lower()]
                continue
            for key in list(vault.keys.values()):
                if key.deleted_at:
                    if now >= key.deleted_at + vault.retention:
                        del vault.keys[key.name.lower()]
                    continue
                _apply_rotation_policy(key, now)


def _rotation_due(key: Key, now: datetime) -> datetime | None:
    """When the Rotate action of the key's policy fires for the current version, if that is not after now."""
    for action in (key.rotation_policy or {}).get("lifetimeActions", []):
        if str(action.get("action", {}).get("type", "")).lower() != "rotate":
            continue
        trigger = action.get("trigger", {})
        current = key.current
        if trigger.get("timeAfterCreate"):
            due = current.created + parse_duration(trigger["timeAfterCreate"])
        elif trigger.get("timeBeforeExpiry") and current.exp:
            due = current.exp - parse_duration(trigger["timeBeforeExpiry"])
        else:
            continue
        if due <= now:
            return max(due, current.created)
    return None


def _apply_rotation_policy(key: Key, now: datetime) -> None:
    # A big clock jump may cover several rotation periods: rotate once per elapsed period, each version
    # stamped with the instant it was due, as the service would have done.
    while (due := _rotation_due(key, now)) is not None:
        key.add_version(key.current, due, key.policy_expiry())
        if due == key.versions[-2].created:
            break  # a zero-length period would loop forever

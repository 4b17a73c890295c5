"""Key rotation tasks: a new version now (through Key Vault, or created with an expiry), the rotation
policy, and the versions a key has had.

`tasks.keyvault` holds the vault and the key as they are (and the reads the doctor shares); this module
what changes over the key's life. Each task re-reads before it writes, so running it twice changes
nothing the second time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.cloud.transport import service_errors
from ppcmk.errors import ConfigError
from ppcmk.models.azure import KeyInfo, KeyVersions, RotationPolicyInfo, iso_days
from ppcmk.safety.retry import cmk_task
from ppcmk.safety.validation import check_rotation
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import (
    _policy_info,
    create_key_version,
    key_client,
    key_info,
    read_key,
    read_key_versions,
    read_rotation_policy,
    require_target_shape,
)

MIN_EXPIRY_AFTER_ROTATION = timedelta(days=28)  # the previous version must stay usable 28 days after rotation


def _already_rotated(current: KeyInfo, since: datetime | None) -> bool:
    return since is not None and current.created_on is not None and current.created_on >= since


@cmk_task(task_run_name="rotate-key-now-{target.key_name}")
def rotate_key_now(
    conn: ConnectionSettings, target: TargetSettings, since: datetime | None = None
) -> KeyInfo:
    """Rotate through Key Vault (new version per the rotation policy's expiry).

    `since` makes the rotation idempotent: when the current version was created at or after it (a previous
    attempt of the same change already rotated), nothing happens. Without it every call rotates.
    """
    factory = ClientFactory.for_settings(conn)
    current = read_key(factory, target.vault_id, target.key_name)
    if current is None:
        raise ConfigError(
            "key_name",
            f"key {target.key_name!r} does not exist in the vault",
            "run onboarding (create_or_adopt_key) first, or fix key_name",
        )
    if _already_rotated(current, since):
        return current
    with service_errors():
        rotated = key_client(factory, target.vault_id).rotate_key(target.key_name)
    return key_info(target.vault_id, rotated, created=True)


@cmk_task(task_run_name="new-key-version-{target.key_name}")
def new_key_version(
    conn: ConnectionSettings,
    target: TargetSettings,
    since: datetime | None = None,
    expires_on: datetime | None = None,
) -> KeyInfo:
    """Create a new version with the target's type and size (and an optional expiry); `since` as in rotate."""
    factory = ClientFactory.for_settings(conn)
    current = read_key(factory, target.vault_id, target.key_name)
    if current is not None:
        require_target_shape(target, current)
        if _already_rotated(current, since):
            return current
    if expires_on is not None and expires_on <= factory.now() + MIN_EXPIRY_AFTER_ROTATION:
        raise ConfigError(
            "expires_on",
            f"{expires_on.isoformat()} is less than 28 days away",
            "set an expiry at least 28 days out (the previous version must outlive rotation)",
        )
    return create_key_version(factory, target, expires_on)


@cmk_task(task_run_name="set-rotation-policy-{target.key_name}")
def set_rotation_policy(
    conn: ConnectionSettings,
    target: TargetSettings,
    rotate_after_days: int = 90,
    expire_after_days: int | None = 365,
    notify_before_days: int = 30,
) -> RotationPolicyInfo:
    """Rotate every N days; versions expire >= 28 days after the next rotation. Writes only on change."""
    check_rotation(rotate_after_days, expire_after_days, notify_before_days)
    wanted = RotationPolicyInfo(
        rotate_after_create=timedelta(days=rotate_after_days),
        notify_before_expiry=timedelta(days=notify_before_days) if expire_after_days else None,
        expires_after=timedelta(days=expire_after_days) if expire_after_days else None,
    )
    factory = ClientFactory.for_settings(conn)
    current = read_rotation_policy(factory, target.vault_id, target.key_name)
    if current.model_dump(exclude={"changed"}) == wanted.model_dump(exclude={"changed"}):
        return current
    actions = [
        KeyRotationLifetimeAction(
            KeyRotationPolicyAction.rotate, time_after_create=iso_days(rotate_after_days)
        )
    ]
    if expire_after_days:
        actions.append(
            KeyRotationLifetimeAction(
                KeyRotationPolicyAction.notify, time_before_expiry=iso_days(notify_before_days)
            )
        )
    policy = KeyRotationPolicy(
        lifetime_actions=actions, expires_in=iso_days(expire_after_days) if expire_after_days else None
    )
    with service_errors():
        written = key_client(factory, target.vault_id).update_key_rotation_policy(target.key_name, policy)
    return _policy_info(written).model_copy(update={"changed": True})


@cmk_task(task_run_name="list-key-versions-{target.key_name}")
def list_key_versions(conn: ConnectionSettings, target: TargetSettings) -> KeyVersions:
    """Every version of the key, newest first, with its age on the cloud's clock."""
    return read_key_versions(ClientFactory.for_settings(conn), target.vault_id, target.key_name)

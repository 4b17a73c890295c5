"""Hold tags as tasks: the key version's and the enterprise policy's `ppcmk-hold-until` are writes like any
other, so they are retried on transient failures (a dropped connection on the PATCH included: tagging is
idempotent), fail naming the step and the object, and never persist an SDK error."""

from __future__ import annotations

from datetime import timedelta

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.safety import holds
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_key_versions


@cmk_task(task_run_name="hold-key-{key_name}-version-{version}")
def hold_key_version(conn: ConnectionSettings, vault_id: str, key_name: str, version: str,
                     duration: timedelta, reason: str) -> holds.Hold:
    """Tag the key version with a hold ending `duration` from now (an existing later end is kept)."""
    return holds.hold_key_version(conn, vault_id, key_name, version, duration, reason)


@cmk_task(task_run_name="hold-policy-{policy_name}")
def hold_policy(conn: ConnectionSettings, resource_group: str, policy_name: str, duration: timedelta,
                reason: str) -> holds.Hold:
    """Tag the enterprise policy (covering its identity's vault access) with a hold."""
    return holds.hold_policy(conn, resource_group, policy_name, duration, reason)


@cmk_task(task_run_name="ensure-rotation-hold-{target.key_name}")
def ensure_rotation_hold(conn: ConnectionSettings, target: TargetSettings, version: str) -> holds.Hold | None:
    """The version that `version` succeeded keeps its 28-day hold from the rotation on: placed when it is
    missing (a re-run after a crash between the new version and the hold repairs it), read otherwise.
    None when `version` has no predecessor, or the retention ended unheld."""
    factory = ClientFactory.for_settings(conn)
    versions = read_key_versions(factory, target.vault_id, target.key_name).versions  # newest first
    position = next((i for i, v in enumerate(versions) if v.version == version), None)
    if position is None or position + 1 >= len(versions):
        return None
    successor, previous = versions[position], versions[position + 1]
    ends = (successor.created_on or factory.now()) + holds.ROTATION_HOLD
    existing = holds.key_version_hold(conn, target.vault_id, target.key_name, previous.version)
    if (existing is not None and existing.until >= ends) or ends <= factory.now():
        return existing  # held, or the rotation is older than the retention
    return holds.hold_key_version(conn, target.vault_id, target.key_name, previous.version,
                                  ends - factory.now(), f"previous version after rotation to {version}")

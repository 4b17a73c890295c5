"""Hold windows that survive a restart: recorded on the objects themselves and in the audit log.

The docs require keeping the previous key version for at least 28 days after a rotation, and the old key,
its vault access and the old policy for 30 days after a revert or a change of policy (database restores need
them). A hold is a tag `ppcmk-hold-until` (ISO time, UTC) on the key version or the enterprise policy, plus
an audit entry. Checks use the cloud's clock (`ClientFactory.now()`, virtual in the sandbox), never the
local one. Placing a hold never shortens an existing one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from ppcmk.audit import trail as audit
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import HoldActive
from ppcmk.services.factory import ClientFactory

HOLD_TAG = "ppcmk-hold-until"
REASON_TAG = "ppcmk-hold-reason"
ROTATION_HOLD = timedelta(days=28)
CHANGE_HOLD = timedelta(days=30)


class Hold(BaseModel):
    subject: str
    until: datetime
    reason: str

    def active(self, now: datetime) -> bool:
        return now < self.until

    def enforce(self, now: datetime) -> None:
        """Raise HoldActive (saying until when) if the hold has not expired at `now` (the cloud's time)."""
        if self.active(now):
            raise HoldActive(self.until, f"{self.subject} is on hold ({self.reason})")


def _hold_from_tags(subject: str, tags: dict[str, str] | None) -> Hold | None:
    if not tags or HOLD_TAG not in tags:
        return None
    return Hold(subject=subject, until=datetime.fromisoformat(tags[HOLD_TAG]),
                reason=tags.get(REASON_TAG, "hold recorded by ppcmk"))


def _merged(tags: dict[str, str] | None, until: datetime, reason: str) -> tuple[dict[str, str], datetime]:
    existing = _hold_from_tags("", tags)
    if existing is not None and existing.until >= until:
        return dict(tags or {}), existing.until
    return {**(tags or {}), HOLD_TAG: until.isoformat(), REASON_TAG: reason[:250]}, until


def key_version_hold(
    connection: ConnectionSettings, vault_id: str, key_name: str, version: str
) -> Hold | None:
    factory = ClientFactory.for_settings(connection)
    key = factory.key_client(factory.vault_url(vault_id)).get_key(key_name, version)
    return _hold_from_tags(f"key {key_name} version {version}", key.properties.tags)


def hold_key_version(connection: ConnectionSettings, vault_id: str, key_name: str, version: str,
                     duration: timedelta, reason: str) -> Hold:
    """Tag one key version with a hold ending `duration` from now (cloud time); keeps a later existing end."""
    factory = ClientFactory.for_settings(connection)
    client = factory.key_client(factory.vault_url(vault_id))
    current = client.get_key(key_name, version)
    tags, until = _merged(current.properties.tags, factory.now() + duration, reason)
    if tags != (current.properties.tags or {}):
        client.update_key_properties(key_name, version, tags=tags)
    hold = Hold(subject=f"key {key_name} version {version}", until=until, reason=tags[REASON_TAG])
    _record(hold, vault_id=vault_id, key=key_name, version=version)
    return hold


def policy_hold(connection: ConnectionSettings, resource_group: str, policy_name: str) -> Hold | None:
    policy = ClientFactory.for_settings(connection).powerplatform_mgmt().enterprise_policies.get(
        policy_name, resource_group)
    return _hold_from_tags(f"enterprise policy {policy_name}", policy.tags)


def hold_policy(connection: ConnectionSettings, resource_group: str, policy_name: str,
                duration: timedelta, reason: str) -> Hold:
    """Tag an enterprise policy (covering its identity's vault access) with a hold; keeps a later end."""
    factory = ClientFactory.for_settings(connection)
    policies = factory.powerplatform_mgmt().enterprise_policies
    current = policies.get(policy_name, resource_group)
    tags, until = _merged(current.tags, factory.now() + duration, reason)
    if tags != (current.tags or {}):
        policies.update(policy_name, resource_group, {"tags": tags})
    hold = Hold(subject=f"enterprise policy {policy_name}", until=until, reason=tags[REASON_TAG])
    _record(hold, resource_group=resource_group, policy=policy_name)
    return hold


def _record(hold: Hold, **where: str) -> None:
    audit.record({"event": "hold-recorded", "subject": hold.subject, "until": hold.until.isoformat(),
                  "reason": hold.reason, **where})

"""The legacy bring-your-own-key (BYOK) after its end of support, 2026-01-06.

Documented (cmk-migrate-from-byok): BYOK could not be applied to production environments from 2025-06-01,
its support ended on 2026-01-06, and environments not migrated to a customer-managed key by then were
reverted to Microsoft-managed keys. A BYOK environment still listed with `keyManagedBy`
CustomerViaMicrosoft and no policy is a leftover; a migrated one keeps CustomerViaMicrosoft with its policy.
How the platform's revert shows is inferred: a `RevertToMicrosoftKey` lifecycle operation that no user
requested (the service did). Only an environment that existed at the end of support can have been
reverted, so only such environments' operations are read for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ppcmk.models.environments import BYOK_KEY_MANAGER, Environment, EnvironmentOperation

END_OF_SUPPORT = datetime(2026, 1, 6, tzinfo=UTC)
REVERT_OPERATION = "reverttomicrosoftkey"
ENDED = ("BYOK support ended on 2026-01-06: BYOK environments not migrated by then were reverted to "
         "Microsoft-managed keys, and a BYOK key can no longer be applied")
LEFTOVER = (f"{ENDED}; this one is still on its BYOK key: migrate it (migrate_byok) to keep it on a "
            "customer-managed key")
MIGRATED = "migrated from BYOK to a customer-managed key policy (keyManagedBy stays CustomerViaMicrosoft)"


REVERTED_FIX = "link it to a customer-managed key policy (onboard) to have it on a customer-managed key again"


def reverted_message(at: datetime) -> str:
    return f"reverted to the Microsoft-managed key by the platform on {at:%Y-%m-%d} (BYOK's end of support)"


def reverted_note(at: datetime) -> str:
    return f"{reverted_message(at)}: {REVERTED_FIX}"


def may_have_been_reverted(env: Environment) -> bool:
    """On the Microsoft key now, and old enough to have been on BYOK at its end of support."""
    microsoft = (env.key_managed_by or "microsoft").lower() == "microsoft" and env.cmk is None
    return microsoft and env.created_time is not None and env.created_time < END_OF_SUPPORT


def reverted_at(operations: Iterable[EnvironmentOperation]) -> datetime | None:
    """When the platform reverted the environment to the Microsoft key (no user asked for that revert)."""
    for operation in operations:
        by_service = operation.requested_by is None or not operation.requested_by.user_id
        if ((operation.name or "").lower() == REVERT_OPERATION and operation.status.lower() == "succeeded"
                and by_service):
            return operation.end_time or operation.start_time
    return None


def byok_note(env: Environment, reverted: datetime | None = None) -> str:
    """What BYOK means for this environment now ("" when nothing)."""
    if env.on_byok:
        return LEFTOVER
    if (env.key_managed_by or "").lower() == BYOK_KEY_MANAGER:
        return MIGRATED
    return reverted_note(reverted) if reverted is not None else ""

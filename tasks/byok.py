"""Which environments the platform reverted to the Microsoft-managed key at BYOK's end of support: the
lifecycle operations of the environments that existed then and are on the Microsoft key now
(`ppcmk.checks.byok` says why only those, and what the revert looks like)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ppcmk.checks.byok import may_have_been_reverted, reverted_at
from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY, bounded_map
from ppcmk.models.environments import Environment
from ppcmk.services.factory import ClientFactory


def platform_reverts(factory: ClientFactory, environments: Sequence[Environment]) -> dict[str, datetime]:
    """Environment id → when the platform reverted it; an environment whose operations cannot be read is
    left out (the other readers say why a read fails)."""
    candidates = [env for env in environments if may_have_been_reverted(env)]
    read = bounded_map(lambda env: factory.pp_api().environment_operations(env.id), candidates,
                       DEFAULT_CONCURRENCY)
    found = {}
    for env, operations in zip(candidates, read, strict=True):
        if not isinstance(operations, BaseException) and (at := reverted_at(operations)) is not None:
            found[env.id] = at
    return found

"""The session sandbox's world changed the way an admin (or an accident) would change the cloud, and the
default scenario's objects in it by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.scenario import KEY, LINKED_POLICY, VAULT


def change(cloud: Any, mutate: Callable[[Any], None]) -> None:
    """Change the sandbox world as its services would, then let it reconcile (locks, health)."""
    with cloud.world.lock:
        mutate(cloud.world)
        cloud.world.after_change()


def vault(world: Any, name: str = VAULT) -> Any:
    return world.keyvault.get(name)


def current_version(world: Any, key: str = KEY) -> Any:
    """The current version of the scenario's key (in VAULT)."""
    return vault(world).keys[key].current


def linked_policy(world: Any) -> Any:
    """The enterprise policy the scenario links (Finance on CMK is on it)."""
    return world.arm.find_policy_by_name(LINKED_POLICY)

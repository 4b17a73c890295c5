"""Settling the Power Platform state through its indexes: locks reach every environment linked to a policy
that lost its key and no other, deletions come when their countdown ends (restarted by a relock), and a link
changed in place is followed, whoever changes it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from ppcmk_sandbox.world import World
from tests.support.scenario import FINANCE, LINKED_POLICY

FLEET = 20


@pytest.fixture
def world() -> World:
    return World.from_scenario(f"fleet:{FLEET}")


def _change(world: World, mutate: Callable[[World], Any]) -> None:
    with world.lock:
        mutate(world)
        world.after_change()


def _fleet(world: World) -> list[Any]:
    assert world.powerplatform is not None
    return [e for e in world.powerplatform.environments.values() if e.display_name.startswith("Fleet")]


def _grants(world: World) -> list[Any]:
    assert world.rbac is not None and world.arm is not None
    principal = world.arm.find_policy_by_name(LINKED_POLICY).principal_id
    return [a for a in world.rbac.assignments.values() if a.principal_id == principal]


def _revoke(world: World) -> list[Any]:
    removed = _grants(world)
    _change(world, lambda w: [w.rbac.remove(a) for a in removed])  # type: ignore[union-attr]
    return removed


def _link(world: World, environments: list[Any]) -> None:
    assert world.arm is not None
    policy = world.arm.find_policy_by_name(LINKED_POLICY)
    for environment in environments:
        _change(world, lambda w, e=environment: start_operation(w, e, OperationType.LINK, 60, None,
                                                                {"policy_id": policy.arm_id}))
    world.clock.advance(timedelta(minutes=2))


def _alive(world: World, environment_id: str) -> bool:
    assert world.powerplatform is not None
    return world.powerplatform.environment(environment_id) is not None


def test_a_lock_reaches_every_environment_linked_to_the_policy_and_only_those(world: World) -> None:
    fleet = _fleet(world)
    linked, unlinked = fleet[: FLEET // 2], fleet[FLEET // 2:]
    _link(world, linked)
    assert all(e.cmk is not None and e.locked_at is None for e in linked)
    _revoke(world)
    locked_at = world.clock.now()
    assert all(e.locked_at == locked_at for e in linked)
    assert all(e.locked_at is None for e in unlinked)

    world.clock.advance(timedelta(days=7))
    assert {e.id for e in linked if _alive(world, e.id)} == {e.id for e in linked if e.sku != "Sandbox"}
    world.clock.advance(timedelta(days=23))
    assert not any(_alive(world, e.id) for e in linked) and not _alive(world, FINANCE)
    assert all(_alive(world, e.id) for e in unlinked)


def test_an_unlock_keeps_the_environment_and_a_relock_starts_the_countdown_again(world: World) -> None:
    assert world.powerplatform is not None and world.rbac is not None
    finance = world.powerplatform.environment(FINANCE)
    assert finance is not None and finance.sku != "Sandbox"  # 30 days
    removed = _revoke(world)
    world.clock.advance(timedelta(days=20))
    _change(world, lambda w: [w.rbac.add(a) for a in removed])  # type: ignore[union-attr]
    _change(world, lambda w: start_operation(w, finance, OperationType.REENABLE, 60, None))
    world.clock.advance(timedelta(minutes=2))
    assert finance.locked_at is None
    _revoke(world)
    relocked = world.clock.now()
    assert finance.locked_at == relocked

    world.clock.advance(timedelta(days=11))  # past the first lock's deletion time
    assert _alive(world, FINANCE)
    world.clock.advance(relocked + timedelta(days=30) - world.clock.now())
    assert not _alive(world, FINANCE)


def test_a_link_changed_in_place_is_followed(world: World) -> None:
    assert world.powerplatform is not None and world.arm is not None
    finance = world.powerplatform.environment(FINANCE)
    policy = world.arm.find_policy_by_name(LINKED_POLICY)
    assert finance is not None and finance.cmk is not None
    link = finance.cmk
    finance.cmk = None  # as saved state or a test may set it, outside settle
    assert world.powerplatform.environments_using(policy) == []
    removed = _revoke(world)
    assert finance.locked_at is None  # no longer linked: not locked

    _change(world, lambda w: [w.rbac.add(a) for a in removed])  # type: ignore[union-attr]
    finance.cmk = link
    assert world.powerplatform.environments_using(policy) == [FINANCE]
    _revoke(world)
    assert finance.locked_at == world.clock.now()


def test_the_lifecycle_rules_do_not_import_the_state_at_run_time() -> None:
    probe = ("import sys, sandbox.powerplatform.lifecycle; "
             "assert 'ppcmk_sandbox.powerplatform.state' not in sys.modules, 'lifecycle imports the state'")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

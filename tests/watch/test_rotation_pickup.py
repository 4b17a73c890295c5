"""A new key version taken up by the linked environments within 24 hours (the sandbox plays the service's
RotateCustomerManagedKey operation), and one that an environment has not taken up: one finding with its fix,
reported until it is taken up, also after the version has aged out of the window watch reads it in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ppcmk.watch.rotation_pickup import NOT_PICKED_UP
from ppcmk_flows.watch import WatchResult
from tests.support.scenario import FINANCE, KEY, VAULT
from tests.support.world import change, vault

Watch = Callable[..., WatchResult]


def new_version(world: Any) -> None:
    """What `az keyvault key rotate` does: a new current version of the scenario's key."""
    key = vault(world).keys[KEY]
    key.add_version(key.current, world.clock.now(), None)


def pickups(cloud: Any) -> list[Any]:
    operations = cloud.world.powerplatform.operations_of(FINANCE)
    return [o for o in operations if o.type == "RotateCustomerManagedKey"]


def not_picked_up(result: WatchResult) -> list[Any]:
    return [d for d in result.drifts if d.kind == NOT_PICKED_UP]


def test_a_new_version_taken_up_is_no_finding(cloud: Any, run_watch: Watch) -> None:
    before = len(pickups(cloud))
    change(cloud, new_version)
    cloud.advance(timedelta(hours=25))
    result = run_watch()
    assert not_picked_up(result) == []
    assert len(pickups(cloud)) == before + 1  # the service's pickup, which watch read


def test_a_new_version_not_taken_up_after_24_hours_is_one_finding_with_its_fix(cloud: Any,
                                                                               run_watch: Watch) -> None:
    change(cloud, lambda world: setattr(world.settings, "rotation_pickup_stalled", ["Finance on CMK"]))
    change(cloud, new_version)
    version = vault(cloud.world).keys[KEY].current.version
    cloud.advance(timedelta(hours=12))
    assert not_picked_up(run_watch()) == []  # still inside the documented 24 hours
    cloud.advance(timedelta(hours=13))
    (finding,) = not_picked_up(run_watch())
    assert finding.object == "Finance on CMK" and finding.object_id == FINANCE
    assert finding.severity == "warning" and f"{version} of {VAULT}/{KEY}" in finding.message
    assert "support case" in finding.fix and version in finding.fix and "no cleanup" in finding.fix
    cloud.advance(timedelta(days=30))  # older than the 28 days watch reads new versions' pickups in
    assert [d.object_id for d in not_picked_up(run_watch())] == [FINANCE]
    change(cloud, lambda world: setattr(world.settings, "rotation_pickup_stalled", []))
    cloud.advance(timedelta(minutes=1))
    assert not_picked_up(run_watch()) == []

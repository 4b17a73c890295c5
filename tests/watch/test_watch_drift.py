"""Each drift kind, produced by changing the sandbox the way an admin (or an accident) would, found by the
watch runbook with the right severity and fix."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ppcmk.watch.drift import Drift
from ppcmk_flows.watch import WatchResult
from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY, PP_ADMIN, VAULT
from tests.support.scenario import PRODUCTION as CONTOSO_PRODUCTION
from tests.support.watching import fix_runs_unlock_on
from tests.support.world import change, current_version, linked_policy, vault

Watch = Callable[..., WatchResult]


def only(result: WatchResult, kind: str, obj: str | None = None) -> Drift:
    found = [d for d in result.drifts if d.kind == kind and (obj is None or d.object == obj)]
    assert len(found) == 1, f"{kind}: {[(d.kind, d.object) for d in result.drifts]}"
    return found[0]


def remove_policy_grant(world: Any) -> None:
    principal = linked_policy(world).principal_id
    for assignment in [a for a in world.rbac.assignments.values() if a.principal_id == principal]:
        world.rbac.remove(assignment)


def test_the_default_estate_is_healthy(run_watch: Watch) -> None:
    result = run_watch()
    assert result.drifts == []
    assert result.environments == 12 and result.policies == 1


def test_removed_role_assignment_is_critical_locks_and_unhealthy(cloud: Any, run_watch: Watch) -> None:
    change(cloud, remove_policy_grant)
    result = run_watch()
    removed = only(result, "access.key_removed")
    assert removed.severity == "critical" and removed.object == LINKED_POLICY
    assert fix_runs_unlock_on(removed.fix, LINKED_POLICY)
    assert "it gives the identity its key access back" in removed.fix
    assert only(result, "policy.unhealthy").severity == "error"
    locked = only(result, "env.locked", "Finance on CMK")
    assert locked.severity == "critical" and locked.tier == "locked"
    assert fix_runs_unlock_on(locked.fix, LINKED_POLICY) and " before " in locked.fix
    assert "30 days left" in locked.message and "by the service's lastModifiedTime" in locked.message
    assert result.has_errors


def disable(version: Any, now: Any) -> None:
    """Disable a key version as the service does: its update time moves too."""
    version.enabled, version.updated = False, now


def test_disabled_current_version_is_critical(cloud: Any, run_watch: Watch) -> None:
    disabled_at = cloud.clock.now()
    change(cloud, lambda world: disable(current_version(world), disabled_at))
    disabled = only(run_watch(), "key.disabled")
    assert disabled.severity == "critical" and disabled.object == f"{VAULT}/{KEY}"
    assert fix_runs_unlock_on(disabled.fix, LINKED_POLICY) and "it enables the version" in disabled.fix
    assert only(run_watch(), "env.locked").since == disabled_at


def test_deleted_key_is_critical(cloud: Any, run_watch: Watch) -> None:
    change(cloud, lambda world: setattr(vault(world).keys[KEY], "deleted_at", world.clock.now()))
    deleted = only(run_watch(), "key.deleted")
    assert deleted.severity == "critical"
    assert fix_runs_unlock_on(deleted.fix, LINKED_POLICY) and "it recovers the key" in deleted.fix


def test_not_yet_valid_version_is_an_error(cloud: Any, run_watch: Watch) -> None:
    change(cloud, lambda world: setattr(current_version(world), "nbf", world.clock.now() + timedelta(days=2)))
    assert only(run_watch(), "key.not_yet_valid").severity == "error"


@pytest.mark.parametrize(("days", "severity", "tier"), [
    (59, "warning", "60d"), (29, "warning", "30d"), (8, "warning", "30d"), (6, "error", "7d"),
    (-1, "critical", "expired")])
def test_expiry_tiers(cloud: Any, run_watch: Watch, days: int, severity: str, tier: str) -> None:
    change(cloud, lambda world: setattr(current_version(world), "exp",
                                        world.clock.now() + timedelta(days=days, hours=1)))
    expiry = only(run_watch(), "key.expiry")
    assert (expiry.severity, expiry.tier) == (severity, tier)
    # expired, it locks: unlock repairs it; before that, rotating in time is the fix
    assert ("run unlock" if tier == "expired" else "run rotate") in expiry.fix


def test_rotation_overdue_against_a_cadence(run_watch: Watch) -> None:
    overdue = only(run_watch(rotation_cadence_days=20), "key.rotation_overdue")  # version is 30 days old
    assert overdue.severity == "warning" and overdue.since is not None
    assert overdue.since.date().isoformat() == "2026-11-21"


def test_reader_removed_is_an_error(cloud: Any, run_watch: Watch) -> None:
    change(cloud, lambda world: world.rbac.remove(next(a for a in world.rbac.assignments.values()
                                                       if a.name == "a0a0a0a0-0000-4000-8000-00000000a005")))
    reader = only(run_watch(), "access.reader_removed")
    assert reader.severity == "error" and reader.object == f"{PP_ADMIN} on {LINKED_POLICY}"
    assert "--role Reader" in reader.fix


def test_closed_firewall_without_bypass(cloud: Any, run_watch: Watch) -> None:
    def close(world: Any) -> None:
        props = vault(world).properties
        props["publicNetworkAccess"] = "Disabled"
        props["networkAcls"] = {"defaultAction": "Deny", "bypass": "None", "ipRules": [],
                                "virtualNetworkRules": []}

    change(cloud, close)
    result = run_watch()
    firewall = only(result, "vault.firewall")
    assert firewall.severity == "error" and fix_runs_unlock_on(firewall.fix, LINKED_POLICY)
    assert only(result, "env.locked", "Finance on CMK").severity == "critical"


def test_purge_protection_off(cloud: Any, run_watch: Watch) -> None:
    change(cloud, lambda world: vault(world).properties.update(enablePurgeProtection=False))
    off = only(run_watch(), "vault.purge_protection")
    assert off.severity == "error" and "--enable-purge-protection true" in off.fix


def test_lock_countdown_reads_the_days_left(cloud: Any, run_watch: Watch) -> None:
    change(cloud, lambda world: setattr(world.powerplatform.environment(FINANCE), "sku", "Sandbox"))
    change(cloud, remove_policy_grant)
    assert only(run_watch(), "env.locked").tier == "7d"
    cloud.clock.advance(timedelta(days=5))
    locked = only(run_watch(), "env.locked")
    assert locked.tier == "3d" and "2 days left" in locked.message
    cloud.clock.advance(timedelta(days=2, minutes=1))  # the service deletes it, as the countdown said
    assert cloud.world.powerplatform.environment(FINANCE) is None


def test_link_running_too_long_is_a_warning(cloud: Any, run_watch: Watch) -> None:
    def start_long_link(world: Any) -> None:
        env = world.powerplatform.environment(CONTOSO_PRODUCTION)
        policy = linked_policy(world)
        start_operation(world, env, OperationType.LINK, 86400, None, target={"policy_id": policy.arm_id})

    change(cloud, start_long_link)
    cloud.clock.advance(timedelta(hours=7))
    slow = only(run_watch(), "env.link_slow")
    assert slow.severity == "warning" and slow.object == "Contoso Production"


def test_previous_version_disabled_inside_its_hold(cloud: Any, run_watch: Watch) -> None:
    def rotate_and_disable_previous(world: Any) -> None:
        key = vault(world).keys[KEY]
        previous = key.current
        key.add_version(previous, world.clock.now(), None)
        previous.enabled = False

    change(cloud, rotate_and_disable_previous)
    disabled = only(run_watch(), "key.previous_version_disabled")
    assert disabled.severity == "error" and "3c1f0e2a" in disabled.object
    assert "--version 3c1f0e2a9b8d4c7e8f6a5b4c3d2e1f00 --enabled true" in disabled.fix


def test_hold_about_to_end(cloud: Any, run_watch: Watch) -> None:
    until = cloud.clock.now() + timedelta(days=3)
    change(cloud, lambda world: linked_policy(world).tags.update(
        {"ppcmk-hold-until": until.isoformat(), "ppcmk-hold-reason": "revert"}))
    ending = only(run_watch(), "hold.ending")
    assert ending.severity == "info" and "in 3 days" in ending.message and "cleanup" in ending.fix


def test_a_fresh_grant_may_not_have_propagated(cloud: Any, run_watch: Watch) -> None:
    def regrant(world: Any) -> None:
        for assignment in [a for a in world.rbac.assignments.values()
                           if a.principal_id == linked_policy(world).principal_id]:
            world.rbac.remove(assignment)
            world.rbac.add(replace(assignment, name=str(uuid.uuid4()), created_at=world.clock.now()))

    change(cloud, regrant)
    pending = only(run_watch(), "access.not_propagated")
    assert pending.severity == "warning" and pending.since == cloud.clock.now()
    cloud.clock.advance(timedelta(minutes=11))
    assert "access.not_propagated" not in {d.kind for d in run_watch().drifts}


def test_a_failed_link_of_a_desired_environment(cloud: Any, run_watch: Watch, tmp_path: Path) -> None:
    def start_doomed_link(world: Any) -> None:
        policy = linked_policy(world)
        remove_policy_grant(world)
        production = world.powerplatform.environment(CONTOSO_PRODUCTION)
        start_operation(world, production, OperationType.LINK, 60, None, target={"policy_id": policy.arm_id})

    change(cloud, start_doomed_link)
    cloud.clock.advance(timedelta(minutes=2))
    desired = tmp_path / "desired.yaml"
    desired.write_text("policies:\n  - {name: ep-existing, target: existing, key: other-key,\n"
                       "     environments: [Contoso Production, Finance on CMK, Nowhere]}\n"
                       "  - {name: ep-absent, target: t}\n", encoding="utf-8")
    result = run_watch(desired_state=str(desired))
    failed = only(result, "env.link_failed", "Contoso Production")
    assert failed.severity == "error" and CONTOSO_PRODUCTION in failed.fix
    assert only(result, "env.unlinked", "Contoso Production").severity == "error"
    assert "other-key" in only(result, "policy.key_changed").message
    assert only(result, "desired.policy_missing").object == "ep-absent"
    assert only(result, "desired.unknown_environment").object == "Nowhere"

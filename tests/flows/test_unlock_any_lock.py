"""Unlock recovers a lock made outside ppcmk, whatever caused it. For each cause the sandbox emulates: the
lock is made by hand (or by accident), watch finds it with the service's deadline and advice that names
unlock, the admin follows that advice as written (repairs by hand, then unlock) or runs unlock alone, and
Finance on CMK ends Enabled after one re-enable: no second outage, nothing deleted, all in virtual time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from ppcmk_flows.unlock import unlock
from tests.support.runs import approve_next, completed, start_with_sandbox_blocks
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY, PP_ADMIN_2, REQUESTER_ID, VAULT
from tests.support.watching import clear_watch_state, fix_runs_unlock_on, run_watch
from tests.support.world import change, current_version, linked_policy, vault

pytestmark = pytest.mark.usefixtures("prefect_backend")
Undo = Callable[[Any], None]
CMK_KEY_PERMISSIONS = ["get", "wrapKey", "unwrapKey"]


def identity(world: Any) -> str:
    return str(linked_policy(world).principal_id)


def remove_role(world: Any) -> Undo:
    removed = [a for a in world.rbac.assignments.values() if a.principal_id == identity(world)]
    for assignment in removed:
        world.rbac.remove(assignment)

    def assign_again(world: Any) -> None:  # az role assignment create ... (a new assignment, propagating)
        for assignment in removed:
            world.rbac.add(replace(assignment, created_at=world.clock.now()))

    return assign_again


def use_access_policies(world: Any) -> None:
    """kv-cmk-prod on the vault access policy model: the identity's access is an entry, not a role."""
    props = vault(world).properties
    props["enableRbacAuthorization"] = False
    props["accessPolicies"] = [
        {"tenantId": world.tenant_id, "objectId": identity(world),
         "permissions": {"keys": CMK_KEY_PERMISSIONS}},
        {"tenantId": world.tenant_id, "objectId": REQUESTER_ID, "permissions": {"keys": ["all"]}}]
    remove_role(world)


def remove_access_policy(world: Any) -> Undo:
    props = vault(world).properties
    entry = next(p for p in props["accessPolicies"] if p["objectId"] == identity(world))
    props["accessPolicies"].remove(entry)
    return lambda world: vault(world).properties["accessPolicies"].append(entry)


def set_enabled(version: Any, enabled: bool, now: Any) -> None:
    version.enabled, version.updated = enabled, now  # the service moves the update time with it


def disable_key(world: Any) -> Undo:
    set_enabled(current_version(world), False, world.clock.now())
    return lambda world: set_enabled(current_version(world), True, world.clock.now())


def pin_and_rotate(world: Any) -> None:
    """The policy pins today's version; a rotation makes a newer one current."""
    pinned = current_version(world)
    linked_policy(world).key_version = pinned.version
    vault(world).keys[KEY].add_version(pinned, world.clock.now(), None)


def disable_pinned_version(world: Any) -> Undo:
    pinned = vault(world).keys[KEY].version(linked_policy(world).key_version)
    set_enabled(pinned, False, world.clock.now())
    return lambda world: set_enabled(pinned, True, world.clock.now())


def delete_key(world: Any) -> Undo:
    vault(world).keys[KEY].deleted_at = world.clock.now()
    return lambda world: setattr(vault(world).keys[KEY], "deleted_at", None)  # az keyvault key recover


def delete_vault(world: Any) -> Undo:
    vault(world).deleted_at = world.clock.now()
    return lambda world: setattr(world.keyvault.get(VAULT, include_deleted=True), "deleted_at", None)


def close_network(world: Any) -> Undo:
    props = vault(world).properties
    props["publicNetworkAccess"] = "Disabled"
    props["networkAcls"] = {"defaultAction": "Deny", "bypass": "None", "ipRules": [],
                            "virtualNetworkRules": []}
    return lambda world: vault(world).properties["networkAcls"].update(bypass="AzureServices")


def nothing(world: Any) -> None:
    return None


@dataclass(frozen=True)
class Cause:
    name: str
    lock: Callable[[Any], Undo]  # what an admin (or an accident) does; returns the repair by hand
    finding: str  # watch's finding on the cause, whose fix names unlock
    prepare: Callable[[Any], None] = nothing  # how the estate looked before


CAUSES = [
    Cause("role assignment removed", remove_role, "access.key_removed"),
    Cause("access policy removed", remove_access_policy, "access.key_removed", use_access_policies),
    Cause("key disabled", disable_key, "key.disabled"),
    Cause("key version disabled", disable_pinned_version, "policy.unhealthy", pin_and_rotate),
    Cause("key deleted and recoverable", delete_key, "key.deleted"),
    Cause("vault deleted and recoverable", delete_vault, "vault.deleted"),
    Cause("public network access off without the bypass", close_network, "vault.firewall"),
]


def lock_by_hand(cloud: Any, cause: Cause) -> Undo:
    change(cloud, cause.prepare)
    undo: list[Undo] = []
    change(cloud, lambda world: undo.append(cause.lock(world)))
    assert cloud.world.powerplatform.environment(FINANCE).locked_at == cloud.clock.now()
    return undo[0]


def environment_posts(cloud: Any, since: int) -> list[str]:
    """The lifecycle calls made on environments after the `since`-th request, by their last path segment."""
    return [e.path.rstrip("/").rsplit("/", 1)[-1] for e in cloud.log.entries[since:]
            if e.method == "POST" and "/environments/" in e.path.lower()]


@pytest.mark.parametrize("advice", ["followed as written", "unlock alone"])
@pytest.mark.parametrize("cause", CAUSES, ids=[c.name for c in CAUSES])
def test_unlock_recovers_a_lock_made_outside_ppcmk(cloud: Any, sandbox_blocks: dict[str, str], cause: Cause,
                                                    advice: str) -> None:
    clear_watch_state()
    repair_by_hand = lock_by_hand(cloud, cause)
    locked_at = cloud.clock.now()
    cloud.clock.advance(timedelta(hours=2))

    found = {d.kind: d for d in run_watch(sandbox_blocks).drifts}
    locked = found["env.locked"]
    deadline = locked_at + timedelta(days=30)  # a Production environment, from the service's lastModifiedTime
    assert (locked.object_id, locked.severity, locked.until) == (FINANCE, "critical", deadline)
    assert fix_runs_unlock_on(locked.fix, LINKED_POLICY) and " before " in locked.fix
    assert fix_runs_unlock_on(found[cause.finding].fix, LINKED_POLICY)
    if advice == "followed as written":
        change(cloud, repair_by_hand)

    requests_before = len(cloud.log.entries)
    running = start_with_sandbox_blocks(unlock, sandbox_blocks)
    pending = approve_next(running, PP_ADMIN_2)
    assert "re-enable" in pending.description
    outcome = completed(running)

    finance = cloud.world.powerplatform.environment(FINANCE)
    assert finance is not None and finance.locked_at is None and finance.cmk is not None
    assert environment_posts(cloud, requests_before) == ["enable"]  # one re-enable: no unlink, no link
    assert outcome.status == "completed" and cloud.clock.now() < locked_at + timedelta(days=1)
    repairs = [row["now"] for row in outcome.rows if row["name"] == "repaired"]
    assert bool(repairs) == (advice == "unlock alone"), repairs  # what the admin left, unlock repaired
    after = run_watch(sandbox_blocks)
    assert [d.kind for d in after.drifts if d.severity == "critical"] == []
    assert cause.finding not in {d.kind for d in after.drifts}  # repaired, by hand or by unlock
    assert "env.locked" in {c.kind for c in after.changes if c.change == "resolved"}


def test_a_key_behind_a_closed_firewall_needs_a_worker_inside_its_network(
        cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    """The bypass lets Power Platform through, not the runbook: enabling the key from outside the vault's
    network cannot work, so the plan says where to run it instead, and nothing is changed."""
    change(cloud, close_network)
    lock_by_hand(cloud, Cause("key disabled", disable_key, "key.disabled"))
    writes_before = len([e for e in cloud.log.entries if e.method != "GET"])
    outcome = start_with_sandbox_blocks(unlock, sandbox_blocks).state()
    assert outcome.is_failed()
    message = str(outcome.message)
    assert "[vault.unreachable]" in message and "a worker inside the vault's network" in message
    assert "run unlock again" in message
    writes = [e for e in cloud.log.entries if e.method != "GET"]
    assert [e.path for e in writes[writes_before:] if "oauth2" not in e.path] == []

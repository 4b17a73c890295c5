"""Drift kinds produced by changing the sandbox, found by the watch runbook with the right severity and fix:
a vault without soft delete, and an environment moved onto another policy than the desired one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from ppcmk.watch.drift import Drift
from ppcmk_flows.watch import WatchResult
from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from tests.support.scenario import FINANCE, LINKED_POLICY, VAULT

MOVED_TO = "ep-moved"


def _change(cloud: Any, mutate: Callable[[Any], None]) -> None:
    with cloud.world.lock:
        mutate(cloud.world)
        cloud.world.after_change()


def _found(result: WatchResult, kind: str) -> list[Drift]:
    return [d for d in result.drifts if d.kind == kind]


def test_a_vault_without_soft_delete_is_an_error_with_the_command(
    cloud: Any, run_watch: Callable[..., WatchResult]
) -> None:
    # A vault from before soft delete was on by default: ARM refuses to turn it off, so it is seeded off.
    _change(cloud, lambda world: world.keyvault.get(VAULT).properties.update(
        enableSoftDelete=False, enablePurgeProtection=False))
    result = run_watch()
    (soft_delete,) = _found(result, "vault.soft_delete")
    assert soft_delete.severity == "error" and soft_delete.object == VAULT
    assert soft_delete.fix == f"az keyvault update --name {VAULT} --enable-soft-delete true"
    assert _found(result, "vault.purge_protection")  # which needs soft delete
    assert result.has_errors


def _move_finance_to_another_policy(world: Any) -> None:
    """A second policy on the same key and identity, and Finance linked to it (a swap through link)."""
    existing = world.arm.find_policy_by_name(LINKED_POLICY)
    moved = replace(existing, name=MOVED_TO, system_guid=str(uuid.uuid4()), tags={})
    world.arm.add_policy(moved)
    start_operation(world, world.powerplatform.environment(FINANCE), OperationType.LINK, 60, None,
                    target={"policy_id": moved.arm_id, "system_id": moved.system_id})


def test_an_environment_on_another_policy_than_desired_is_an_error_with_change_policy(
    cloud: Any, run_watch: Callable[..., WatchResult], tmp_path: Path
) -> None:
    desired = tmp_path / "desired.yaml"
    desired.write_text(f"policies:\n  - {{name: {LINKED_POLICY}, target: existing, environments: "
                       "[Finance on CMK]}\n", encoding="utf-8")
    assert not _found(run_watch(desired_state=str(desired)), "env.other_policy")

    _change(cloud, _move_finance_to_another_policy)
    cloud.clock.advance(timedelta(minutes=2))
    assert cloud.world.powerplatform.environment(FINANCE).cmk.policy_id.endswith(MOVED_TO)
    result = run_watch(desired_state=str(desired))
    (moved,) = _found(result, "env.other_policy")
    assert moved.severity == "error" and moved.object == "Finance on CMK"
    assert f"linked to {MOVED_TO}; the desired state puts it on {LINKED_POLICY}" in moved.message
    assert moved.fix == f"ppcmk converge (change_policy from {MOVED_TO} to {LINKED_POLICY})"

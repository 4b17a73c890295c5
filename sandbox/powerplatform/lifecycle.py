"""Lifecycle operations on the virtual clock, and the CMK lock rules. `settle(world)` runs after every change.

An operation is NotStarted for its first tenth (at most 10 s), Running until its duration has passed, then
Succeeded or Failed. Link, unlink and re-enable decide their outcome at completion by asking
`sandbox.access.policy_key_access`, so a grant that propagates during the operation still counts.

Lock semantics (documented by Microsoft; the runtime reason code is inferred): when a linked policy's identity
loses use of its key, every environment linked to it is locked (runtime Disabled, CustomerManagedKeyLocked);
restoring access does not unlock by itself, re-enabling does. A locked environment is deleted after 7 days
(Sandbox) or 30 days (other types) on the virtual clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.access import policy_key_access
from ppcmk_sandbox.powerplatform.records import (
    GOVERNANCE_TYPES,
    OUTAGE_TYPES,
    CmkLink,
    Environment,
    LifecycleOperation,
    OperationType,
)
from ppcmk_sandbox.powerplatform.rotation import pick_up_rotations

if TYPE_CHECKING:
    from ppcmk_sandbox.http import SandboxRequest
    from ppcmk_sandbox.identity.principals import Principal
    from ppcmk_sandbox.powerplatform.state import PowerPlatformState
    from ppcmk_sandbox.world import World

STAGES = (("Validate", 0.0), ("Prepare", 0.1), ("Run", 0.2), ("Finalize", 0.9))  # name, start fraction


def setting(world: World, name: str, default: float) -> float:
    """A timing from settings.json; scenario files may add keys the settings model does not declare."""
    return float(getattr(world.settings, name, default))


def start_operation(
    world: World,
    environment: Environment,
    operation_type: str,
    duration_seconds: float,
    caller: Principal | None,
    target: dict[str, str] | None = None,
) -> LifecycleOperation:
    state = _state(world)
    operation = LifecycleOperation(
        id=str(uuid.uuid4()),
        environment_id=environment.id,
        type=operation_type,
        created_at=world.clock.now(),
        duration_seconds=duration_seconds,
        requested_by={
            "id": caller.object_id if caller else "",
            "displayName": caller.display_name if caller else "",
            "type": caller.kind if caller else "User",
        },
        target=dict(target or {}),
    )
    state.add_operation(operation)
    return operation


FAILING_STAGE = "Run"  # where a recorded Failed operation failed; the stages after it never start


def stage_states(operation: LifecycleOperation, now: datetime) -> list[dict[str, Any]]:
    """Each stage's state at `now`, with when it began and last acted (`firstActionDateTime`,
    `lastActionDateTime`, datetimes for the view to format); a stage that has not begun has neither."""
    stages = []
    for index, (name, fraction) in enumerate(STAGES):
        begins = operation.created_at + timedelta(seconds=operation.duration_seconds * fraction)
        following = STAGES[index + 1][1] if index + 1 < len(STAGES) else 1.0
        ends = operation.created_at + timedelta(seconds=operation.duration_seconds * following)
        state = _stage_state(operation, name, now, begins, ends)
        stage: dict[str, Any] = {"id": name, "name": name, "state": {"id": state}}
        if state != "NotStarted":
            stage["firstActionDateTime"] = begins
            stage["lastActionDateTime"] = min(now, ends)
        stages.append(stage)
    return stages


def _stage_state(operation: LifecycleOperation, name: str, now: datetime, begins: datetime,
                 ends: datetime) -> str:
    if operation.state == "Failed":
        failing = [stage for stage, _ in STAGES].index(FAILING_STAGE)
        here = [stage for stage, _ in STAGES].index(name)
        return "Succeeded" if here < failing else "Failed" if here == failing else "NotStarted"
    if operation.state == "Succeeded" or now >= ends:
        return "Succeeded"
    if now >= begins and operation.state == "Running":
        return "Running"
    return "NotStarted"


def settle_once(req: SandboxRequest) -> None:
    """Settle before a handler reads the state, once per request: a handler asks several times, and on a
    running clock the front door has already settled (each settle walks every running operation)."""
    if not req.settled:
        settle(req.world)
        req.settled = True


def settle(world: World) -> None:
    """Bring operations, locks and lock deletions up to the current virtual time."""
    state = _state(world)
    now = world.clock.now()
    # Settle runs before every request on a running clock while a fleet keeps hundreds of operations
    # active: one pass over the running ones; sorting only those that are due.
    due = []
    for operation in state.active_operations():
        if now >= operation.ends_at:
            due.append(operation)
        elif operation.state != "Running" and now >= operation.starts_at:
            operation.state = "Running"
    for operation in sorted(due, key=lambda o: o.ends_at):
        _complete(world, state, operation)
    _apply_locks(world, state, now)
    pick_up_rotations(world, state, now)


def _complete(world: World, state: PowerPlatformState, operation: LifecycleOperation) -> None:
    operation.finished_at = operation.ends_at
    state.operation_finished(operation)
    environment = state.environment(operation.environment_id)
    if environment is None:  # deleted meanwhile
        operation.state, operation.error = "Failed", "The environment no longer exists."
        return
    reasons = _outcome(world, environment, operation)
    operation.state = "Failed" if reasons else "Succeeded"
    if not reasons:
        environment.modified_at = operation.ends_at
    operation.error = "; ".join(reasons) if reasons else None


def _outcome(world: World, environment: Environment, operation: LifecycleOperation) -> list[str]:
    """Apply a finished operation; the reasons it failed, if it did (then nothing changes)."""
    if operation.type in GOVERNANCE_TYPES:
        environment.protection_level = operation.target.get("protection_level", "Standard")
        return []
    policy_id = operation.target.get("policy_id") or (environment.cmk.policy_id if environment.cmk else "")
    policy = world.arm.get_policy(policy_id) if world.arm else None
    if policy is None:
        return [f"The enterprise policy {policy_id} no longer exists."]
    verdict = policy_key_access(world, policy)
    if not verdict.ok:
        return [f"The enterprise policy {policy.name} cannot use its key: {r}" for r in verdict.reasons]
    if operation.type == OperationType.LINK:
        environment.cmk = CmkLink(policy.arm_id, policy.system_id, policy.location)
        # A migrated BYOK environment keeps CustomerViaMicrosoft (cmk-migrate-from-byok), also after a swap.
        migrated = world.settings.byok_migrated_key_managed_by
        byok = environment.key_managed_by in ("CustomerViaMicrosoft", migrated)
        environment.key_managed_by = migrated if byok else "Customer"
        environment.locked_at = None
    elif operation.type == OperationType.UNLINK:
        environment.cmk = None
        environment.key_managed_by = "Microsoft"
        environment.locked_at = None
    elif operation.type == OperationType.REENABLE:
        environment.locked_at = None
        environment.admin_disabled = False
    return []


def _apply_locks(world: World, state: PowerPlatformState, now: datetime) -> None:
    """Delete the environments locked long enough, then lock those whose policy can no longer use its key.
    Runs before every request on a running clock: the state's indexes make it cost the locks that come due
    and one access verdict per policy in use, whatever the number of environments."""
    for key in state.due_deletions(now):
        state.remove_environment(key)
    for policy_id in state.policies_with_unlocked_links():
        policy = world.arm.get_policy(policy_id) if world.arm else None
        if policy is None or not policy_key_access(world, policy).ok:
            for environment in state.unlocked_links(policy_id):
                environment.locked_at = environment.modified_at = now


def runtime(state: PowerPlatformState, environment: Environment, now: datetime) -> tuple[str, str]:
    """(states.runtime.id, runtimeReasonCode) as the admin API reports them."""
    if environment.locked_at is not None:
        return "Disabled", "CustomerManagedKeyLocked"
    operation = state.active_operation(environment.id)
    if operation and operation.type in OUTAGE_TYPES and now >= operation.starts_at:
        return "Disabled", "CustomerManagedKeyOperationInProgress"
    if environment.admin_disabled:
        return "Disabled", "AdminDisabled"
    return "Enabled", "NotSpecified"


def _state(world: World) -> PowerPlatformState:
    if world.powerplatform is None:
        raise RuntimeError("the Power Platform state is not loaded")
    return world.powerplatform

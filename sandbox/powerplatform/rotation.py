"""Environments taking up a new key version: a lifecycle operation the service itself requests.

Documented: a new version of a policy's (versionless) key is picked up by every linked environment
automatically, "it can take 24 hours". How the service shows the pickup is **inferred**: a
`RotateCustomerManagedKey` operation (an id of `lifecycleOperationsEnforcement`) on each linked environment,
requested by the service, listed once it has finished, `rotation_pickup_seconds` after the version was
created. It is recorded finished, never running, so it holds up no link or unlink (whether the real one does
is not known). Environments in `rotation_pickup_stalled` (ids or names) never pick a version up: a scenario's
way to play a pickup that does not happen.

Settling asks once per policy in use whether its key has a version its environments have not been given
yet; only then does it look at those environments.
"""

from __future__ import annotations

import uuid
import weakref
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ppcmk_sandbox.powerplatform.records import Environment, LifecycleOperation, OperationType

if TYPE_CHECKING:
    from ppcmk_sandbox.arm.state import EnterprisePolicy
    from ppcmk_sandbox.keyvault.state import KeyVersion
    from ppcmk_sandbox.powerplatform.state import PowerPlatformState
    from ppcmk_sandbox.world import World

PICKUP_SECONDS = 1800.0  # how long the pickup itself runs (inferred)
SERVICE = {"id": "", "displayName": "Microsoft", "type": "Service"}  # requested by the platform (inferred)

# Per state: policy id -> the key version every environment linked at its due time was given.
_given: weakref.WeakKeyDictionary[PowerPlatformState, dict[str, str]] = weakref.WeakKeyDictionary()


def service_operation(environment: Environment, kind: str, ended: datetime,
                      seconds: float) -> LifecycleOperation:
    """A finished operation the service ran on its own on the environment."""
    return LifecycleOperation(id=str(uuid.uuid4()), environment_id=environment.id, type=kind,
                              created_at=ended - timedelta(seconds=seconds), duration_seconds=seconds,
                              requested_by=dict(SERVICE), state="Succeeded", finished_at=ended)


def _current_version(world: World, policy: EnterprisePolicy) -> KeyVersion | None:
    if policy.key_version:  # pinned: the environments stay on that version
        return None
    vault = world.keyvault.find_vault(policy.key_vault_id)
    key = vault.key(policy.key_name) if vault is not None and not vault.deleted else None
    return key.current if key is not None else None


def _stalled(world: World, environment: Environment) -> bool:
    stalled = {name.lower() for name in world.settings.rotation_pickup_stalled}
    return bool({environment.id.lower(), environment.display_name.lower()} & stalled)


def _has_taken(state: PowerPlatformState, environment: Environment, created: datetime) -> bool:
    """The environment is on the version created at `created`: it picked it up, or was linked after it."""
    return any(o.state == "Succeeded" and o.finished_at is not None and o.finished_at >= created
               and o.type in (OperationType.ROTATE, OperationType.LINK)
               for o in state.operations_of(environment.id))


def pick_up_rotations(world: World, state: PowerPlatformState, now: datetime) -> None:
    """Give each linked, unlocked environment the current version of its policy's key once it is due."""
    given = _given.setdefault(state, {})
    delay = timedelta(seconds=world.settings.rotation_pickup_seconds)
    for policy_id in state.policies_with_unlocked_links():
        policy = world.arm.get_policy(policy_id) if world.arm else None
        version = _current_version(world, policy) if policy is not None else None
        if version is None or given.get(policy_id) == version.version or now < version.created + delay:
            continue
        complete = True
        for environment in state.unlocked_links(policy_id):
            if _stalled(world, environment):
                complete = False
            elif not _has_taken(state, environment, version.created):
                state.add_operation(service_operation(environment, OperationType.ROTATE,
                                                      version.created + delay, PICKUP_SECONDS))
        if complete:
            given[policy_id] = version.version

"""The runbooks the fault matrix drives, one row each: the flow and its parameters as an operator starts it,
who answers its approvals, and what the sandbox must hold before it runs (a lock for unlock, holds past
their end for cleanup). `world_summary` is the end state the matrix compares, read from the sandbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.states import Crashed, State

from ppcmk.fleet.selection import FleetSelector
from ppcmk.safety import holds
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._lock_record import LockRecord, load_lock_record, save_lock_record
from ppcmk_flows.change_policy import change_policy
from ppcmk_flows.cleanup import cleanup
from ppcmk_flows.lock import PROCEDURE as LOCK
from ppcmk_flows.lock import lock
from ppcmk_flows.migrate_byok import migrate_byok
from ppcmk_flows.onboard import onboard
from ppcmk_flows.revert import revert
from ppcmk_flows.rotate import rotate
from ppcmk_flows.unlock import unlock
from ppcmk_tasks.policy import ensure_provider_registered
from tests.support.arm import linked_policy_grant_id, policy_id, vault_id
from tests.support.runs import answer, start, wait_for_approval
from tests.support.sandbox import connection, save_target
from tests.support.scenario import (
    FINANCE,
    LINKED_POLICY,
    PP_ADMIN,
    PP_ADMIN_2,
    REQUESTER,
    UNMANAGED,
    VAULT,
)
from tests.support.world import change, current_version, linked_policy

Blocks = dict[str, str]
MATRIX_TARGET = "fault-matrix-target"  # a key and a policy of the matrix's own, created by onboard
CLEANUP_TARGET = "fault-matrix-cleanup"


@dataclass(frozen=True)
class Runbook:
    """One runbook as the matrix runs it: `parameters(blocks)` for the flow, each approval answered by the
    next of `approvers` (persona, answer fields; cycling when a re-plan asks again), after `prepare`."""

    name: str
    flow: Callable[..., Any]
    parameters: Callable[[Blocks], dict[str, Any]]
    approvers: tuple[tuple[str, dict[str, str]], ...] = ()
    prepare: Callable[[Any, Blocks], None] = lambda cloud, blocks: None

    def run(self, blocks: Blocks, crashing: bool = False) -> State:
        """Start the flow and answer its approvals until it ends (a failing run may end before asking).
        `crashing`: the run's process dies (the matrix cuts it off from the cloud): no end-of-run hook runs,
        so its claims stay, and its state is Crashed, as the server marks a run whose process is gone."""
        running = start(without_hooks(self.flow) if crashing else self.flow, **self.parameters(blocks))
        asked = 0
        while self.approvers:
            try:
                pending = wait_for_approval(running, timeout=120)
            except AssertionError:  # the run ended without asking (again)
                break
            persona, fields = self.approvers[asked % len(self.approvers)]
            answer(pending, approve=True, approver=persona, confirmation=fields.get("confirmation"))
            asked += 1
        state = running.state(timeout=300)
        if not crashing:
            return state
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(state.state_details.flow_run_id, Crashed(), force=True)
        return Crashed()


def without_hooks(flow: Flow[..., Any]) -> Flow[..., Any]:
    """The flow as a killed process runs it: its end-of-run hooks never run."""
    copy = flow.with_options()
    for hooks in ("on_completion_hooks", "on_failure_hooks", "on_cancellation_hooks", "on_crashed_hooks"):
        setattr(copy, hooks, [])
    return copy


# ------------------------------------------------------------------------------------------ preparing


def forget_runbook_variables() -> None:
    """The Prefect Variables runs leave (lock records, claims, unfinished moves): each cell starts clean."""
    named = {"variables": {"name": {"like_": "ppcmk-%"}}, "limit": 200}
    with get_client(sync_client=True) as client:
        while found := client.request("POST", "/variables/filter", json=named).json():
            for variable in found:
                client.delete_variable_by_name(variable["name"])


def save_matrix_target(cloud: Any, blocks: Blocks) -> None:
    save_target(cloud, MATRIX_TARGET, key_name="cmk-matrix", key_size=2048, policy_name="ep-matrix")


_lock_record: dict[str, LockRecord] = {}


def locked(cloud: Any, blocks: Blocks) -> None:
    """LINKED_POLICY as the lock runbook leaves it: its identity's key grant deleted, Finance locked, the lock
    record saying what was revoked (taken from one real lock run, then replayed)."""
    if not _lock_record:
        assert LOCK_RUNBOOK.run(blocks).is_completed()
        record = load_lock_record(policy_id(cloud))
        assert record is not None
        _lock_record["record"] = record
        cloud.reset()
    kv = ClientFactory.for_settings(connection(cloud, "kv-admin"))
    kv.authorization().role_assignments.delete_by_id(linked_policy_grant_id(cloud))
    cloud.advance(timedelta(minutes=1))
    principal = cloud.world.arm.get_policy(policy_id(cloud)).principal_id  # each reset makes a new identity
    record = _lock_record["record"]
    revoked = [g.model_copy(update={"principal_id": principal}) for g in record.revoked]
    save_lock_record(record.model_copy(update={"locked_at": kv.now(), "principal_id": principal,
                                               "revoked": revoked}), LOCK)


def locked_by_hand(cloud: Any, blocks: Blocks) -> None:
    """LINKED_POLICY locked outside ppcmk, two ways at once and with no lock record: its identity's role
    assignment removed and its key's current version disabled (one repair through ARM, one on the vault)."""
    def break_both(world: Any) -> None:
        principal = linked_policy(world).principal_id
        for assignment in [a for a in world.rbac.assignments.values() if a.principal_id == principal]:
            world.rbac.remove(assignment)
        version = current_version(world)
        version.enabled, version.updated = False, world.clock.now()

    change(cloud, break_both)
    cloud.advance(timedelta(hours=1))


def held_versions_and_policy(cloud: Any, blocks: Blocks) -> None:
    """Two versions of a key of its own (the older one's 28 days over) and LINKED_POLICY left by Finance
    more than 30 days ago (its hold tag ended)."""
    save_target(cloud, CLEANUP_TARGET, key_name="cmk-cleanup", key_size=2048, policy_name=LINKED_POLICY)
    conn = connection(cloud, "kv-admin")
    factory = ClientFactory.for_settings(conn)
    keys = factory.key_client(factory.vault_url(vault_id(cloud)))
    keys.create_rsa_key("cmk-cleanup", size=2048)
    cloud.advance(timedelta(days=2))
    keys.create_rsa_key("cmk-cleanup", size=2048)
    with cloud.world.lock:
        cloud.world.powerplatform.environment(FINANCE).cmk = None
    ensure_provider_registered(conn)
    holds.hold_policy(conn, "rg-cmk", LINKED_POLICY, holds.CHANGE_HOLD, "environments left")
    cloud.advance(timedelta(days=31))


# -------------------------------------------------------------------------------------------- the table


def _two_half(blocks: Blocks, **extra: Any) -> dict[str, Any]:
    return {"kv_connection": blocks["kv-admin"], "pp_connection": blocks["pp-admin"], "pp_admin": PP_ADMIN,
            "requester": REQUESTER, "approval_poll_s": 1, **extra}


HANDOFF: tuple[tuple[str, dict[str, str]], ...] = ((PP_ADMIN, {}),)
LOCK_RUNBOOK = Runbook(
    "lock", lock,
    lambda b: {"kv_connection": b["kv-admin"], "pp_connection": b["pp-admin"], "target": b["target"],
               "requester": REQUESTER, "approval_poll_s": 1},
    approvers=((PP_ADMIN, {"confirmation": LINKED_POLICY}), (PP_ADMIN_2, {"confirmation": LINKED_POLICY})),
)

RUNBOOKS: list[Runbook] = [
    Runbook("rotate", rotate, lambda b: {"connection": b["kv-admin"], "target": b["target"],
                                         "requester": REQUESTER, "set_policy": True}),
    Runbook("onboard", onboard,
            lambda b: _two_half(b, target=MATRIX_TARGET, selector=FleetSelector(environment_ids=[UNMANAGED])),
            HANDOFF, save_matrix_target),
    Runbook("change_policy", change_policy,
            lambda b: _two_half(b, target=b["target"], new_policy_name="ep-new", new_key_name="cmk-new"),
            HANDOFF),
    Runbook("migrate_byok", migrate_byok, lambda b: _two_half(b, target=b["target"]), HANDOFF),
    Runbook("revert", revert, lambda b: {"connection": b["runbook"], "target": b["target"],
                                         "requester": REQUESTER, "approval_poll_s": 1},
            ((PP_ADMIN, {}),)),
    LOCK_RUNBOOK,
    Runbook("unlock", unlock,
            lambda b: {"kv_connection": b["kv-admin"], "pp_connection": b["pp-admin"], "target": b["target"],
                       "requester": REQUESTER, "approval_poll_s": 1},
            ((PP_ADMIN_2, {}),), locked),
    Runbook("unlock-without-record", unlock,
            lambda b: {"kv_connection": b["kv-admin"], "pp_connection": b["pp-admin"], "target": b["target"],
                       "requester": REQUESTER, "approval_poll_s": 1},
            ((PP_ADMIN_2, {}),), locked_by_hand),
    Runbook("cleanup", cleanup,
            lambda b: {"kv_connection": b["kv-admin"], "pp_connection": b["runbook"],
                       "target": CLEANUP_TARGET, "old_policy": LINKED_POLICY, "requester": REQUESTER,
                       "approval_poll_s": 1},
            ((PP_ADMIN, {}),), held_versions_and_policy),
]


# ------------------------------------------------------------------------------------------ end state


def _hold_after_next(versions: list[Any], index: int) -> bool | None:
    """Whether the version's hold tag ends 28 days after the next version was made (None: no tag)."""
    until = versions[index].tags.get(holds.HOLD_TAG)
    if until is None:
        return None
    made = versions[index + 1].created if index + 1 < len(versions) else None
    return made is not None and abs(datetime.fromisoformat(until) - (made + holds.ROTATION_HOLD)) < timedelta(
        minutes=1)


def world_summary(cloud: Any) -> dict[str, Any]:
    """What the runbooks change, without the ids and times each run makes anew: environments, keys
    (versions enabled, holds), policies (key, hold), role assignments (scope, role, whose), rotation."""
    world = cloud.world
    names = {p.principal_id: f"identity of {p.name}" for p in world.arm.policies.values()}
    by_policy_id = {p.arm_id.lower(): p.name for p in world.arm.policies.values()}

    def scope(value: str) -> str:
        return by_policy_id.get(value.lower(), value.lower())

    vault = world.keyvault.get(VAULT)
    return {
        "environments": sorted(
            (e.id, e.protection_level, e.cmk.policy_id.rsplit("/", 1)[-1] if e.cmk else None,
             e.key_managed_by, e.locked_at is None) for e in world.powerplatform.environments.values()),
        "keys": {k.name: [(v.enabled, _hold_after_next(k.versions, i)) for i, v in enumerate(k.versions)]
                 for k in vault.keys.values()},
        "rotation": {k.name: bool(k.rotation_policy) for k in vault.keys.values()},
        "policies": sorted((p.name, p.key_name, holds.HOLD_TAG in p.tags)
                           for p in world.arm.policies.values()),
        "grants": sorted(Counter((scope(a.scope), a.role_guid, names.get(a.principal_id, a.principal_id))
                                 for a in world.rbac.assignments.values()).items()),
    }




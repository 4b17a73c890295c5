"""The fault matrix: for a runbook, the write calls of a clean run (read from the sandbox's request log), and
for each of them a transient fault, a persistent one and a crash right after it.

- transient (one 503): the run converges to the clean run's end state with no write made twice;
- persistent (500 on every attempt): the run fails naming the step and its object; once the fault is
  cleared a re-run converges;
- crash (the write is applied, the connection drops before the answer): the run, or its re-run, converges,
  and no non-idempotent write (a POST: a key version, a Managed Environment change, a link) is made twice.

Two runbooks: rotate (Key Vault: rotation policy, new version, the previous version's hold) and the Power
Platform half of onboarding for one environment (Managed Environment, then the link). One sandbox, reset
between cases; the virtual clock carries the four-hour link in no real time.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from prefect import flow
from prefect.states import State

from flows.rotate import rotate
from ppcmk.clients import ClientFactory
from ppcmk.holds import HOLD_TAG, ROTATION_HOLD
from tasks.environments import link
from tests.support.arm import vault_id
from tests.support.sandbox import connection
from tests.support.scenario import REQUESTER

pytestmark = pytest.mark.usefixtures("prefect_backend")

READS = ("GET", "HEAD")
NOT_CLOUD = ("/_sandbox", "/oauth2/token", "/metadata/identity")
DROPPED = 0
UNMANAGED = "e1000000-0000-4000-8000-000000000009"
Write = tuple[str, str]  # method, path


def successful_writes(cloud: Any) -> Counter[Write]:
    return Counter((e.method, e.path) for e in cloud.log.entries
                   if e.method not in READS and not e.path.lower().startswith(NOT_CLOUD)
                   and (e.status == DROPPED or e.status < 400))


def _held_from(tags: dict[str, str] | None, rotated: datetime) -> bool:
    until = (tags or {}).get(HOLD_TAG)
    return until is not None and abs(datetime.fromisoformat(until) - (rotated + ROTATION_HOLD)) < timedelta(
        minutes=1)


class Runbook:
    """How to run one runbook on a fresh sandbox and read the end state it leaves."""

    name: str

    def run(self, cloud: Any, blocks: dict[str, str]) -> State: ...

    def end_state(self, cloud: Any) -> Any: ...


class Rotate(Runbook):
    name = "rotate"

    def run(self, cloud: Any, blocks: dict[str, str]) -> State:
        return rotate(connection=blocks["kv-admin"], target=blocks["target"], requester=REQUESTER,
                      set_policy=True, return_state=True)

    def end_state(self, cloud: Any) -> Any:
        factory = ClientFactory.for_settings(connection(cloud, "kv-admin"))
        keys = factory.key_client(factory.vault_url(vault_id(cloud, "kv-cmk-prod")))
        current = keys.get_key("cmk-prod").properties
        versions = keys.list_properties_of_key_versions("cmk-prod")
        # each earlier version held for 28 days from the rotation (when that was depends on the faults)
        held = [_held_from(p.tags, current.created_on) for p in versions if p.version != current.version]
        policy = keys.get_key_rotation_policy("cmk-prod")
        actions = sorted(str(a.action) + str(a.time_after_create) for a in policy.lifetime_actions)
        return len(held) + 1, held, actions, policy.expires_in


class PowerPlatformHalf(Runbook):
    name = "power-platform-half"

    def run(self, cloud: Any, blocks: dict[str, str]) -> State:
        pp = connection(cloud, "pp-admin")
        system_id = cloud.world.arm.find_policy_by_name("ep-existing").system_id

        @flow(name="fault-matrix-link")
        def link_one() -> Any:
            change = link(pp, UNMANAGED, system_id, ensure_managed=True)
            if not change.done:
                raise RuntimeError(f"link {change.status}")
            return change

        return link_one(return_state=True)

    def end_state(self, cloud: Any) -> Any:
        env = cloud.world.powerplatform.environment(UNMANAGED)
        return env.protection_level, env.cmk.policy_id if env.cmk else None, env.key_managed_by


RUNBOOKS = [Rotate(), PowerPlatformHalf()]
_clean: dict[str, tuple[Any, Counter[Write]]] = {}


def clean_run(runbook: Runbook, cloud: Any, blocks: dict[str, str]) -> tuple[Any, Counter[Write]]:
    """The end state and the writes of a fault-free run (once per runbook and session)."""
    if runbook.name not in _clean:
        cloud.reset()
        assert runbook.run(cloud, blocks).is_completed()
        _clean[runbook.name] = (runbook.end_state(cloud), successful_writes(cloud))
    return _clean[runbook.name]


def _matrix() -> list[tuple[Runbook, str]]:
    return [(runbook, kind) for runbook in RUNBOOKS for kind in ("transient", "persistent", "crash")]


def _fault(cloud: Any, kind: str, method: str, path: str) -> None:
    pattern = f"^{re.escape(path)}$"
    if kind == "transient":
        cloud.faults.add(method, pattern, status=503, times=1)
    elif kind == "persistent":
        cloud.faults.add(method, pattern, status=500, times=None)
    else:
        cloud.faults.add(method, pattern, drop_after=True, times=1)


def _case(runbook: Runbook, kind: str, write: Write, cloud: Any, blocks: dict[str, str],
          clean: tuple[Any, Counter[Write]]) -> list[str]:
    """Run one cell; the problems it shows (empty: the cell passed)."""
    cloud.reset()
    method, path = write
    _fault(cloud, kind, method, path)
    state = runbook.run(cloud, blocks)
    problems: list[str] = []
    if kind == "persistent":
        message = str(state.message or "") + repr(state.result(raise_on_failure=False))
        if state.is_completed():
            problems.append("a persistent fault did not stop the run")
        elif "failed:" not in message or "re-run" not in message:
            problems.append(f"the failure does not name the step: {message[:300]}")
    if not state.is_completed():
        cloud.faults.clear()
        state = runbook.run(cloud, blocks)
    if not state.is_completed():
        return [*problems, f"the re-run did not converge: {state.message}"]
    end, writes = runbook.end_state(cloud), successful_writes(cloud)
    if end != clean[0]:
        problems.append(f"end state {end} differs from the clean run's {clean[0]}")
    doubled = [w for w, n in writes.items() if n > clean[1][w] and (kind == "transient" or w[0] == "POST")]
    if doubled:
        problems.append(f"written twice: {doubled}")
    return problems


@pytest.mark.parametrize(("runbook", "kind"), _matrix(), ids=[f"{r.name}-{k}" for r, k in _matrix()])
def test_every_write_survives_its_fault(
    runbook: Runbook, kind: str, cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    clean = clean_run(runbook, cloud, sandbox_blocks)
    assert clean[1], "the clean run wrote nothing"
    failures = {f"{m} {p}": problems for m, p in clean[1]
                if (problems := _case(runbook, kind, (m, p), cloud, sandbox_blocks, clean))}
    assert failures == {}, f"{len(failures)} of {len(clean[1])} write steps failed"


def test_the_matrix_covers_each_write_of_each_runbook(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    rotate_writes, link_writes = (sorted(clean_run(r, cloud, sandbox_blocks)[1]) for r in RUNBOOKS)
    assert [m for m, _ in rotate_writes] == ["PATCH", "POST", "PUT"]  # hold, new version, rotation policy
    assert [m for m, _ in link_writes] == ["POST", "POST"]  # Managed Environment, link
